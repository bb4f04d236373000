"""`hlplay deploy-all.yml` finds the shipped playbook from any directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _hlplay(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hlplay.cli.main", *args], cwd=cwd, capture_output=True, text=True
    )


def test_bare_name_finds_the_shipped_playbook(tmp_path: Path) -> None:
    res = _hlplay(tmp_path, "deploy-all.yml", "--syntax-check")
    assert res.returncode == 0, res.stderr
    assert "playbooks/deploy-all.yml" in res.stdout


def test_local_playbooks_dir_wins(tmp_path: Path) -> None:
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "deploy-all.yml").write_text(
        "- hosts: localhost\n  tasks:\n    - debug: {msg: mine}\n"
    )
    res = _hlplay(tmp_path, "deploy-all.yml")
    assert res.returncode == 0, res.stderr
    assert "mine" in res.stdout


def test_unknown_playbook_is_one_line(tmp_path: Path) -> None:
    res = _hlplay(tmp_path, "nosuch.yml")
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    assert res.stderr.strip().count("\n") == 0
