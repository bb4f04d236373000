"""Findings and their severities: what an audit reports."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from hlplay.errors import did_you_mean


class Severity(enum.IntEnum):
    """How bad a finding is; ordered so that thresholds compare with ``>=``."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        """``"medium"`` -> ``Severity.MEDIUM``; a ValueError names the choices otherwise."""
        key = text.strip().lower()
        for sev in cls:
            if sev.label == key:
                return sev
        labels = [s.label for s in cls]
        raise ValueError(
            f"unknown severity '{text}'{did_you_mean(key, labels)}; choose one of "
            + ", ".join(labels)
        )


SEVERITY_LABELS: tuple[str, ...] = tuple(s.label for s in Severity)
DEFAULT_THRESHOLD = Severity.MEDIUM


@dataclass(frozen=True, order=True)
class Finding:
    """One problem at one place. ``line`` and ``column`` are 1-based (column in characters)."""

    file: str
    line: int
    column: int
    rule: str
    severity: Severity
    message: str
    hint: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "rule": self.rule,
            "severity": self.severity.label,
            "message": self.message,
            "hint": self.hint,
        }


@dataclass
class AuditReport:
    """The result of auditing a tree: every finding, sorted by place."""

    root: str
    files: int
    findings: list[Finding]
    threshold: Severity = DEFAULT_THRESHOLD

    @property
    def blocking(self) -> list[Finding]:
        """Findings at or above the threshold: the ones that fail the audit."""
        return [f for f in self.findings if f.severity >= self.threshold]

    @property
    def failed(self) -> bool:
        return any(f.severity >= self.threshold for f in self.findings)

    def counts(self) -> dict[str, int]:
        out = {s.label: 0 for s in reversed(Severity)}
        for f in self.findings:
            out[f.severity.label] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "files": self.files,
            "threshold": self.threshold.label,
            "failed": self.failed,
            "counts": self.counts(),
            "blocking": len(self.blocking),
            "findings": [f.to_dict() for f in self.findings],
        }
