"""A play for a tier or role this fleet does not have runs on no hosts, with a warning;
any other pattern that matches nothing stays an error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

INVENTORY = """\
hosts:
  web1: {tier: test, roles: [web], transport: local}
"""

PLAYBOOK = """\
- name: test first
  hosts: tier_test
  tasks:
    - debug: {msg: "on {{ inventory_hostname }}"}
- name: then prod
  hosts: tier_prod
  tasks:
    - debug: {msg: never}
"""


def _run(tmp: Path, book: str, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp / "inv.yml").write_text(INVENTORY)
    (tmp / "site.yml").write_text(book)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "hlplay.cli.main",
            str(tmp / "site.yml"),
            "-i",
            str(tmp / "inv.yml"),
            *args,
        ],
        capture_output=True,
        text=True,
    )


def test_a_tier_the_fleet_lacks_is_a_warning_and_an_empty_play(tmp_path: Path) -> None:
    res = _run(tmp_path, PLAYBOOK)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "on web1" in res.stdout
    assert "never" not in res.stdout
    assert "tier_prod" in res.stderr and "the play has no hosts" in res.stderr


def test_a_misspelt_host_pattern_is_still_an_error(tmp_path: Path) -> None:
    res = _run(tmp_path, PLAYBOOK.replace("tier_prod", "wbe*"))
    assert res.returncode != 0
    assert "wbe*" in res.stderr and "Traceback" not in res.stderr


def test_a_bad_limit_is_still_an_error_with_tier_plays(tmp_path: Path) -> None:
    res = _run(tmp_path, PLAYBOOK, "-l", "tier=staging")
    assert res.returncode != 0
    assert "staging" in res.stderr
