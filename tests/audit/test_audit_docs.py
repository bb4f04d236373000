"""docs/audit-rules.md documents every rule, and its examples do what they say."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hlplay.audit import RULES, AuditOptions, audit_source

DOC = Path(__file__).resolve().parents[2] / "docs" / "audit-rules.md"
SECTION = re.compile(r"^### `([a-z-]+)` — ([a-z]+)$", re.M)


def _sections() -> dict[str, tuple[str, str]]:
    text = DOC.read_text()
    heads = list(SECTION.finditer(text))
    out: dict[str, tuple[str, str]] = {}
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        out[m.group(1)] = (m.group(2), text[m.end() : end])
    return out


def _example(body: str, label: str) -> str:
    m = re.search(label + r":\n```nix\n(.*?)```", body, re.S)
    assert m, f"no {label} example"
    return m.group(1)


def _rules_in(src: str, options: AuditOptions) -> list[str]:
    findings = audit_source(src.encode(), "example.nix", options)
    if any(f.rule == "parse-error" for f in findings):
        # a fragment of bindings: audit it inside an attribute set
        findings = audit_source(("{\n" + src + "\n}\n").encode(), "example.nix", options)
    return [f.rule for f in findings]


def test_every_rule_has_a_section_with_its_severity() -> None:
    sections = _sections()
    assert set(sections) == set(RULES)
    for rule_id, (severity, body) in sections.items():
        assert severity == RULES[rule_id].severity.label, rule_id
        assert "Suppress:" in body and "**Why**" in body and "**Catches**" in body


@pytest.mark.parametrize("rule_id", sorted(RULES))
def test_bad_example_triggers_and_good_example_does_not(rule_id: str) -> None:
    _, body = _sections()[rule_id]
    options = AuditOptions(mkforce_limit=0 if rule_id == "mkforce-pileup" else 5)
    bad, good = _example(body, "Bad"), _example(body, "Good")
    if rule_id == "parse-error":
        assert _rules_in(bad, options) == ["parse-error"]
        assert audit_source(good.encode(), "g.nix") == []
        return
    assert rule_id in _rules_in(bad, options)
    assert rule_id not in _rules_in(good, options)
