"""Audit files and trees: discover ``.nix`` files, parse, run the rules,
apply suppressions, and collect findings with 1-based positions."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hlplay.audit import parser, suppress
from hlplay.audit.findings import DEFAULT_THRESHOLD, AuditReport, Finding, Severity
from hlplay.audit.model import collect
from hlplay.audit.rules import PARSE_ERROR, RULES, run_checks
from hlplay.audit.rules.base import FileContext, Hit
from hlplay.errors import HlplayError, did_you_mean

# Directories that never hold configuration worth auditing.
SKIP_DIRS = frozenset({"node_modules", "result", "__pycache__"})


class AuditError(HlplayError):
    """The audit cannot run: a missing path, an unreadable file, an unknown rule."""


@dataclass(frozen=True)
class AuditOptions:
    """Which rules run and what fails the audit."""

    enabled: frozenset[str] = field(default_factory=lambda: frozenset(RULES))
    threshold: Severity = DEFAULT_THRESHOLD
    mkforce_limit: int = 5


def select_rules(
    rules: Iterable[str] | None = None, exclude: Iterable[str] | None = None
) -> frozenset[str]:
    """The enabled rule ids: ``rules`` (default all) minus ``exclude``; unknown ids raise."""
    chosen = set(RULES) if not rules else set(_check_ids(rules))
    return frozenset(chosen - set(_check_ids(exclude or ())))


def _check_ids(ids: Iterable[str]) -> list[str]:
    out: list[str] = []
    for raw in ids:
        for rule in (r.strip() for r in raw.split(",")):
            if not rule:
                continue
            if rule not in RULES:
                raise AuditError(f"unknown audit rule '{rule}'{did_you_mean(rule, RULES)}")
            out.append(rule)
    return out


def discover(root: Path) -> list[Path]:
    """``root`` itself when it is a file, else every ``*.nix`` below it, sorted.

    Hidden directories (.git, .direnv) and symlinked directories (``result``
    links into the Nix store) are not entered.
    """
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise AuditError(f"{root}: no such file or directory")
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=_walk_error):
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and d not in SKIP_DIRS
        )
        base = Path(dirpath)
        for name in sorted(filenames):
            # is_file() leaves out dangling symlinks and sockets named *.nix
            if name.endswith(".nix") and (base / name).is_file():
                found.append(base / name)
    return found


def _walk_error(exc: OSError) -> None:
    raise AuditError(f"{exc.filename}: cannot read directory: {exc.strerror}")


def audit_source(
    source: bytes, display: str, options: AuditOptions | None = None
) -> list[Finding]:
    """Every finding in one file's bytes, suppressions applied, sorted by position."""
    opts = options or AuditOptions()
    enabled = opts.enabled
    supp = suppress.scan(source)
    hits: list[Hit] = []
    parsed = parser.parse(source)
    if parsed.problem is not None:
        p = parsed.problem
        hits.append(Hit(PARSE_ERROR.id, _line_start(source, p.row) + p.byte_col, p.message))
    elif parsed.tree is not None:
        ctx = FileContext(source, collect(parsed.tree), mkforce_limit=opts.mkforce_limit)
        hits.extend(h for h in run_checks(ctx) if h.rule in enabled)
    if "bad-suppression" in enabled:
        for d in supp.directives:
            if d.rule not in RULES:
                hits.append(
                    Hit(
                        "bad-suppression",
                        d.byte,
                        f"suppression names unknown rule '{d.rule}'{did_you_mean(d.rule, RULES)}",
                    )
                )
    findings: list[Finding] = []
    seen: set[tuple[str, int]] = set()
    for h in hits:
        if h.rule not in enabled or (h.rule, h.byte) in seen:
            continue
        seen.add((h.rule, h.byte))
        line, column = position(source, h.byte)
        if supp.covers(h.rule, line):
            continue
        rule = RULES[h.rule]
        findings.append(
            Finding(display, line, column, h.rule, rule.severity, h.message, h.hint or rule.hint)
        )
    findings.sort()
    return findings


def audit_file(path: Path, display: str, options: AuditOptions | None = None) -> list[Finding]:
    try:
        source = path.read_bytes()
    except OSError as exc:
        raise AuditError(f"{display}: cannot read: {exc.strerror or exc}") from None
    return audit_source(source, display, options)


def audit(
    paths: Sequence[str | Path], options: AuditOptions | None = None
) -> AuditReport:
    """Audit files and directory trees; the report's ``root`` is the first path."""
    opts = options or AuditOptions()
    if not paths:
        paths = ["."]
    findings: list[Finding] = []
    seen: set[Path] = set()
    for raw in paths:
        root = Path(raw)
        if not root.exists():
            raise AuditError(f"{raw}: no such file or directory")
        for path in discover(root):
            real = path.resolve()
            if real in seen:  # overlapping arguments (`. hosts/`) audit a file once
                continue
            seen.add(real)
            findings.extend(audit_file(path, str(path), opts))
    count = len(seen)
    return AuditReport(str(paths[0]), count, findings, opts.threshold)


def position(source: bytes, byte: int) -> tuple[int, int]:
    """1-based line and column (in characters) of a byte offset."""
    line = source.count(b"\n", 0, byte) + 1
    start = source.rfind(b"\n", 0, byte) + 1
    column = len(source[start:byte].decode("utf-8", "replace")) + 1
    return line, column


def _line_start(source: bytes, row: int) -> int:
    pos = 0
    for _ in range(row):
        nl = source.find(b"\n", pos)
        if nl < 0:
            return len(source)
        pos = nl + 1
    return pos
