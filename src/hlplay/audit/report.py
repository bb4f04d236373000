"""Render an audit report: text for people, JSON for tools, GitHub workflow
annotations for CI, and SARIF 2.1.0 for code-scanning dashboards."""

from __future__ import annotations

import json
from typing import Any

from hlplay.audit.findings import AuditReport, Finding, Severity
from hlplay.audit.rules import RULES

FORMATS = ("text", "json", "github", "sarif")

_COLORS = {
    Severity.CRITICAL: "\x1b[1;31m",
    Severity.HIGH: "\x1b[31m",
    Severity.MEDIUM: "\x1b[33m",
    Severity.LOW: "\x1b[36m",
    Severity.INFO: "\x1b[2m",
}
_RESET = "\x1b[0m"


def render(report: AuditReport, fmt: str, color: bool = False) -> str:
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2)
    if fmt == "github":
        return github(report)
    if fmt == "sarif":
        return json.dumps(sarif(report), indent=2)
    return text(report, color)


def summary(report: AuditReport) -> str:
    files = f"{report.files} file{'s' if report.files != 1 else ''}"
    if not report.findings:
        return f"no findings in {files}"
    counts = ", ".join(f"{n} {sev}" for sev, n in report.counts().items() if n)
    total = len(report.findings)
    blocking = len(report.blocking)
    return (
        f"{total} finding{'s' if total != 1 else ''} in {files}: {counts} "
        f"({blocking} at or above {report.threshold.label})"
    )


def text(report: AuditReport, color: bool = False) -> str:
    lines: list[str] = []
    for f in report.findings:
        sev = f.severity.label
        if color:
            sev = f"{_COLORS[f.severity]}{sev}{_RESET}"
        lines.append(f"{f.file}:{f.line}:{f.column}: {sev} [{f.rule}] {f.message}")
        if f.hint:
            lines.append(f"    fix: {f.hint}")
    lines.append(summary(report))
    return "\n".join(lines)


def _escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")


def _github_level(f: Finding, threshold: Severity) -> str:
    if f.severity >= threshold:
        return "error"
    return "notice" if f.severity == Severity.INFO else "warning"


def github(report: AuditReport) -> str:
    """``::error file=…,line=…,col=…,title=…::message`` lines; blocking findings are errors."""
    lines = []
    for f in report.findings:
        level = _github_level(f, report.threshold)
        props = ",".join(
            [
                f"file={_escape_property(f.file)}",
                f"line={f.line}",
                f"col={f.column}",
                f"title={_escape_property(f'{f.rule} ({f.severity.label})')}",
            ]
        )
        message = f.message + (f" (fix: {f.hint})" if f.hint else "")
        lines.append(f"::{level} {props}::{_escape_data(message)}")
    lines.append(summary(report))
    return "\n".join(lines)


def _sarif_level(sev: Severity) -> str:
    if sev >= Severity.HIGH:
        return "error"
    return "warning" if sev == Severity.MEDIUM else "note"


def sarif(report: AuditReport) -> dict[str, Any]:
    used = sorted({f.rule for f in report.findings})
    rules = [
        {
            "id": rid,
            "shortDescription": {"text": RULES[rid].summary},
            "help": {"text": RULES[rid].hint},
            "defaultConfiguration": {"level": _sarif_level(RULES[rid].severity)},
            "properties": {"severity": RULES[rid].severity.label, "family": RULES[rid].family},
        }
        for rid in used
    ]
    results = [
        {
            "ruleId": f.rule,
            "level": _sarif_level(f.severity),
            "message": {"text": f.message},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": f.file},
                        "region": {"startLine": f.line, "startColumn": f.column},
                    }
                }
            ],
        }
        for f in report.findings
    ]
    return {
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "hlplay-audit",
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }
