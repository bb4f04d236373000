"""Ctrl-C and SIGTERM stop a run that never waits, through the real ``hlplay`` process.

A CPU-bound template and an ``until`` loop with ``delay: 0`` keep the event
loop busy; signal handlers registered with the loop would never run. Each
case starts ``python -m hlplay.cli.main``, waits for the task to start, sends
one signal and expects exit code 99 with the recap within 2 s. (The signal
may land in the ``until`` condition's render: "interrupted while rendering".)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CPU_BOUND = """\
- hosts: localhost
  tasks:
    - name: spin
      debug:
        msg: "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
"""

# the same, in a variable rendered lazily from inside another template
CPU_BOUND_VAR = """\
- hosts: localhost
  vars:
    slow: "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
  tasks:
    - name: spin
      debug:
        msg: "{{ slow | default('') | length }}"
"""

# rendered while planning, before the run (and its signal handlers) starts
CPU_BOUND_NAME = """\
- hosts: localhost
  name: "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
  tasks:
    - debug: msg=never
"""

UNTIL_NO_DELAY = """\
- hosts: localhost
  tasks:
    - name: spin
      debug:
        msg: again
      register: r
      until: r.msg == 'never'
      retries: 1000000000
      delay: 0
"""

STARTED = 30.0  # seconds for the process to load and reach the task
STOPPED = 2.0  # seconds from the signal to the exit


def _start(tmp_path: Path, playbook: str) -> tuple[subprocess.Popen[bytes], Path, Path]:
    (tmp_path / "play.yml").write_text(playbook)
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HLPLAY_")}
    env.update(HLPLAY_NO_COLOR="1", PYTHONUNBUFFERED="1")
    # files, not pipes: an until loop prints a line per attempt and would fill a pipe
    with out.open("wb") as fo, err.open("wb") as fe:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hlplay.cli.main", "play.yml"],
            cwd=tmp_path,
            stdout=fo,
            stderr=fe,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    return proc, out, err


def _wait_for_task(proc: subprocess.Popen[bytes], out: Path) -> None:
    deadline = time.monotonic() + STARTED
    while "TASK [spin]" not in out.read_text(errors="replace"):
        assert proc.poll() is None, f"exited early: {out.read_text(errors='replace')}"
        assert time.monotonic() < deadline, "the task did not start"
        time.sleep(0.05)
    time.sleep(0.5)  # well inside the render or the retries


@pytest.mark.parametrize(
    ("playbook", "sig", "said"),
    [
        (CPU_BOUND, signal.SIGINT, "interrupted while rendering"),
        (CPU_BOUND, signal.SIGTERM, "interrupted while rendering"),
        (CPU_BOUND_VAR, signal.SIGINT, "interrupted while rendering"),
        (UNTIL_NO_DELAY, signal.SIGINT, "interrupted while"),
        (UNTIL_NO_DELAY, signal.SIGTERM, "interrupted while"),
    ],
    ids=[
        "template-sigint",
        "template-sigterm",
        "template-var-sigint",
        "until-sigint",
        "until-term",
    ],
)
def test_one_signal_stops_a_run_that_never_waits(
    tmp_path: Path, playbook: str, sig: signal.Signals, said: str
) -> None:
    proc, out, err = _start(tmp_path, playbook)
    try:
        _wait_for_task(proc, out)
        sent = time.monotonic()
        proc.send_signal(sig)
        try:
            code = proc.wait(timeout=STOPPED + 10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {STOPPED + 10:g}s after {sig.name}")
        elapsed = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stdout, stderr = out.read_text(errors="replace"), err.read_text(errors="replace")
    where = f"stdout: {stdout[-2000:]!r}\nstderr: {stderr!r}"
    assert code == 99, where
    assert elapsed < STOPPED, f"{elapsed:.2f}s after {sig.name}\n{where}"
    assert said in stdout, where
    assert "PLAY RECAP" in stdout, where
    assert "Traceback" not in stdout + stderr, where


def test_sigterm_while_loading_exits_99(tmp_path: Path) -> None:
    """Before the run starts (here: a play name rendered while planning)."""
    proc, _, err = _start(tmp_path, CPU_BOUND_NAME)
    try:
        time.sleep(3)  # loading and planning: the play's name never finishes rendering
        assert proc.poll() is None, err.read_text()
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=STOPPED + 10)
        elapsed = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = err.read_text(errors="replace")
    assert code == 99, stderr
    assert elapsed < STOPPED, stderr
    assert "Traceback" not in stderr, stderr
