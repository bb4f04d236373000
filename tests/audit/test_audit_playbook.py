"""playbooks/config-audit.yml end to end, through the playbook engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hlplay.engine.api import run_playbook

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks" / "config-audit.yml"
FIXTURES = Path(__file__).parent / "fixtures"


async def test_config_audit_reports_and_fails_on_the_seeded_configuration(
    tmp_path: Path,
) -> None:
    md, js = tmp_path / "audit.md", tmp_path / "audit.json"
    result = await run_playbook(
        PLAYBOOK,
        None,
        extra_vars={
            "audit_path": str(FIXTURES / "bad"),
            "audit_report": str(md),
            "audit_json": str(js),
        },
    )
    assert result.exit_code == 2
    assert result.stats["localhost"].failures == 1  # the final fail task, not the audit
    doc = json.loads(js.read_text())
    rows = {(Path(r["file"]).name, r["line"], r["column"], r["rule"]) for r in doc["rows"]}
    assert ("web1.nix", 8, 3, "firewall-disabled") in rows
    assert ("tool.nix", 8, 11, "fetchgit-without-rev") in rows
    assert len(doc["rows"]) == 35
    text = md.read_text()
    assert "| file | line | column | severity | rule | message | hint |" in text
    assert "35 findings in 9 files" in text


@pytest.mark.parametrize("check", [False, True])
async def test_config_audit_passes_on_a_clean_configuration(check: bool) -> None:
    result = await run_playbook(
        PLAYBOOK, None, check=check, extra_vars={"audit_path": str(FIXTURES / "clean")}
    )
    assert result.exit_code == 0
    assert result.stats["localhost"].failures == 0


async def test_config_audit_severity_variable(tmp_path: Path) -> None:
    # tool.nix has medium and info findings only: nothing reaches "high"
    result = await run_playbook(
        PLAYBOOK,
        None,
        extra_vars={
            "audit_path": str(FIXTURES / "bad" / "pkgs" / "tool.nix"),
            "audit_severity": "high",
        },
    )
    assert result.exit_code == 0


async def test_config_audit_fails_with_the_reason_when_the_audit_cannot_run(
    tmp_path: Path,
) -> None:
    result = await run_playbook(
        PLAYBOOK, None, extra_vars={"audit_path": str(tmp_path / "missing")}
    )
    assert result.exit_code == 2
    assert "no such file or directory" in json.dumps(result.document)
