"""Configuration audit: parse every ``.nix`` file of a configuration with a
real Nix parser (tree-sitter) and report anti-patterns and security problems
with file:line:column, rule id, severity and a fix hint.

Entry points: :func:`audit` (paths -> :class:`AuditReport`),
:func:`audit_source` (one file's bytes), :data:`RULES` (the catalogue,
documented in docs/audit-rules.md). tree-sitter loads on the first parse.
"""

from __future__ import annotations

from hlplay.audit.findings import (
    DEFAULT_THRESHOLD,
    SEVERITY_LABELS,
    AuditReport,
    Finding,
    Severity,
)
from hlplay.audit.rules import RULES
from hlplay.audit.rules.base import Rule
from hlplay.audit.runner import (
    AuditError,
    AuditOptions,
    audit,
    audit_file,
    audit_source,
    discover,
    select_rules,
)

__all__ = [
    "DEFAULT_THRESHOLD",
    "RULES",
    "SEVERITY_LABELS",
    "AuditError",
    "AuditOptions",
    "AuditReport",
    "Finding",
    "Rule",
    "Severity",
    "audit",
    "audit_file",
    "audit_source",
    "discover",
    "select_rules",
]
