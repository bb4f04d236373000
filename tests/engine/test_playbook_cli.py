"""The playbook command, run as users run it: flags, output, exit codes, Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

INVENTORY = """
hosts:
  h1: {tier: test, roles: [web], transport: local}
  h2: {tier: test, roles: [db], transport: local}
  p1: {tier: prod, roles: [web], transport: local}
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "inventory.yml").write_text(INVENTORY)
    return tmp_path


def hlplay(cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HLPLAY_NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "hlplay.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def write(site: Path, text: str, name: str = "site.yml") -> str:
    (site / name).write_text(textwrap.dedent(text))
    return name


def test_default_command_runs_a_playbook_with_limit_and_extra_vars(site: Path) -> None:
    pb = write(
        site,
        """
        - hosts: all
          tasks:
            - name: hello
              command: echo {{ greeting }} {{ inventory_hostname }}
              register: out
            - debug: var=out.stdout
        """,
    )
    proc = hlplay(site, pb, "-i", "inventory.yml", "-l", "tier=test", "-e", "greeting=hi")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "PLAY [all] ****" in out
    assert "TASK [hello] ****" in out
    assert "changed: [h1]" in out and "changed: [h2]" in out and "p1" not in out
    assert '"out.stdout": "hi h1"' in out
    assert "PLAY RECAP" in out
    assert (
        "h1                         : ok=2    changed=1    unreachable=0    failed=0    "
        "skipped=0    rescued=0    ignored=0" in out
    )
    assert "\x1b[" not in out  # no colour when not on a terminal


def test_exit_code_2_on_failure_and_json_is_one_document(site: Path) -> None:
    pb = write(
        site,
        """
        - hosts: tier=test
          tasks:
            - name: fails on h2
              command: "{{ '/bin/false' if inventory_hostname == 'h2' else '/bin/true' }}"
        """,
    )
    proc = hlplay(site, pb, "-i", "inventory.yml", "--json")
    assert proc.returncode == 2
    doc = json.loads(proc.stdout)  # the whole of stdout is one JSON document
    assert doc["exit_code"] == 2
    assert doc["stats"]["h2"]["failures"] == 1 and doc["stats"]["h1"]["changed"] == 1
    task = doc["plays"][0]["tasks"][0]
    assert task["task"]["name"] == "fails on h2"
    assert task["hosts"]["h2"]["status"] == "failed" and task["hosts"]["h2"]["rc"] == 1


def test_load_errors_are_one_line_with_location_and_exit_1(site: Path) -> None:
    pb = write(
        site,
        """
        - hosts: all
          tasks:
            - name: typo
              comand: ls
        """,
    )
    proc = hlplay(site, pb, "-i", "inventory.yml")
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "ERROR: site.yml:5:7: unknown module 'comand' (did you mean 'command'?)"
    )
    assert "Traceback" not in proc.stderr
    bad_pattern = write(site, "- hosts: tier=staging\n  tasks: []\n", "p.yml")
    proc = hlplay(site, bad_pattern, "-i", "inventory.yml")
    assert proc.returncode == 1 and "p.yml:1:3" in proc.stderr and "Traceback" not in proc.stderr


def test_bad_options_exit_5(site: Path) -> None:
    pb = write(site, "- hosts: all\n  tasks: []\n")
    proc = hlplay(site, pb, "-i", "inventory.yml", "--forks", "0")
    assert proc.returncode == 5


def test_syntax_check_list_hosts_list_tasks(site: Path) -> None:
    pb = write(
        site,
        """
        - name: web play
          hosts: role=web
          tasks:
            - {name: a, debug: {msg: a}, tags: [x]}
            - {name: b, command: /bin/false}
        """,
    )
    proc = hlplay(site, pb, "-i", "inventory.yml", "--syntax-check")
    assert proc.returncode == 0 and "playbook: site.yml" in proc.stdout
    proc = hlplay(site, pb, "-i", "inventory.yml", "--list-hosts", "-l", "tier=test")
    assert proc.returncode == 0
    assert "hosts (1):\n      h1\n" in proc.stdout
    proc = hlplay(site, pb, "-i", "inventory.yml", "--list-tasks", "--tags", "x")
    assert "      a\tTAGS: [x]" in proc.stdout and "      b\t" not in proc.stdout
    proc = hlplay(site, pb, "-i", "inventory.yml", "--list-hosts", "--json")
    assert json.loads(proc.stdout)["plays"][0]["hosts"] == ["h1", "p1"]


def test_check_mode_flag(site: Path) -> None:
    marker = site / "marker"
    pb = write(site, f"- hosts: h1\n  tasks:\n    - command: touch {marker}\n")
    proc = hlplay(site, pb, "-i", "inventory.yml", "--check")
    assert proc.returncode == 0 and not marker.exists()
    assert "skipping: [h1]" in proc.stdout


def _running(arg: str) -> list[int]:
    """Processes whose command line has ``arg`` as a word."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                words = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if arg.encode() in words:
                found.append(int(entry.name))
    return found


async def test_ctrl_c_lets_running_tasks_finish_prints_recap_exits_99(site: Path) -> None:
    pb = write(
        site,
        """
        - hosts: tier=test
          tasks:
            - name: slow
              command: sleep 1.517
            - name: never started
              debug: msg=x
        """,
    )
    env = dict(os.environ, HLPLAY_NO_COLOR="1")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hlplay.cli.main",
        pb,
        "-i",
        "inventory.yml",
        cwd=site,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    seen = b""
    while b"TASK [slow]" not in seen:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line, "the playbook ended before its first task started"
        seen += line
    # wait until both hosts' commands are running: Ctrl-C must let those finish
    for _ in range(600):
        if len(_running("1.517")) >= 2:
            break
        await asyncio.sleep(0.05)
    assert len(_running("1.517")) >= 2, "the slow commands never started"
    os.kill(proc.pid, signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    text = (seen + out).decode()
    assert proc.returncode == 99
    assert "changed: [h1]" in text and "changed: [h2]" in text  # running tasks finished
    assert "never started" not in text
    assert "PLAY RECAP" in text
    assert "interrupted" in err.decode().lower()


def test_a_mistyped_command_is_not_taken_for_a_playbook(site: Path) -> None:
    proc = hlplay(site, "inventroy")
    assert proc.returncode == 5
    assert "did you mean 'inventory'" in proc.stderr
    proc = hlplay(site, "missing.yml")
    assert proc.returncode == 1 and proc.stderr.strip() == "ERROR: missing.yml: no such file"
