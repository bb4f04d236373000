"""Start detached lab processes and stop them again, by pid file.

Each process's pid file also records a marker that must appear in the
process's command line, so a recycled pid is never killed by mistake.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from hlplay.natsserver import port_open


def start(
    name: str,
    argv: Sequence[str],
    *,
    pid_dir: Path,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    marker: str | None = None,
) -> int:
    """Start ``argv`` in its own session, output to ``log_dir/name.log``; return the pid."""
    pid_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    with open(log_dir / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            start_new_session=True,
        )
    (pid_dir / f"{name}.pid").write_text(f"{proc.pid}\n{marker or argv[0]}\n")
    return proc.pid


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as gone
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def read_pid(pid_file: Path) -> tuple[int, str] | None:
    try:
        lines = pid_file.read_text().splitlines()
        return int(lines[0]), (lines[1] if len(lines) > 1 else "")
    except (OSError, ValueError, IndexError):
        return None


def running(pid_dir: Path) -> dict[str, int]:
    """Name -> pid of the lab processes that are still alive and are ours."""
    out: dict[str, int] = {}
    if not pid_dir.is_dir():
        return out
    for pf in sorted(pid_dir.glob("*.pid")):
        entry = read_pid(pf)
        if entry is None:
            continue
        pid, marker = entry
        if alive(pid) and marker in _cmdline(pid):
            out[pf.stem] = pid
    return out


def stop_all(
    pid_dir: Path, timeout: float = 10.0, *, last: Sequence[str] = ("nats-server",)
) -> dict[str, str]:
    """SIGTERM every lab process, SIGKILL what is left after ``timeout``; remove pid files.

    The processes named in ``last`` stop after the others are gone: a listener
    stopping drains its NATS subscriptions, and with the server already gone it
    would wait out its drain timeout instead.
    """
    result: dict[str, str] = {}
    procs = running(pid_dir)
    deadline = time.monotonic() + timeout
    first = {n: p for n, p in procs.items() if n not in last}
    for group in (first, {n: p for n, p in procs.items() if n in last}):
        for name, pid in group.items():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            result[name] = "stopped"
        while time.monotonic() < deadline and any(alive(p) for p in group.values()):
            time.sleep(0.05)
    for name, pid in procs.items():
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            result[name] = "killed"
    if pid_dir.is_dir():
        for pf in pid_dir.glob("*.pid"):
            pf.unlink(missing_ok=True)
    return result


def wait_port(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> bool:
    """Whether something listens on ``host:port`` within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return True
        time.sleep(0.02)
    return False
