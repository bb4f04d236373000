"""Engine benchmarks, measured side by side in one run.

1. Engine overhead: 200 local hosts x 20 tasks of a no-op controller-side
   module, in-process. Reports microseconds per host-task (target < 200 us),
   with and without console output.
2. ansible-playbook vs hlplay, both from the command line, on one playbook of
   5 ``command: /bin/true`` tasks over 20 hosts on the local connection.
   Reports both wall times and the ratio (target: hlplay >= 10x faster).

ansible-core comes from PyPI, installed into a venv of its own under the cache
directory (``$XDG_CACHE_HOME/hlplay-bench``) unless ``ANSIBLE_PLAYBOOK`` points
at an ansible-playbook already installed.

    python bench/engine.py [--quick]
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path
from typing import Any, ClassVar

from hlplay.engine.api import run_playbook
from hlplay.inventory.loader import load_inventory
from hlplay.modules import registry
from hlplay.modules.base import Module, ModuleResult, TaskContext
from hlplay.report.console import ConsoleReporter

HOSTS = 200
TASKS = 20
CMP_HOSTS = 20
CMP_TASKS = 5


class NoOp(Module):
    """Does nothing, on the controller: what is left is the engine's own cost."""

    name = "bench_noop"
    controller_side = True
    supports_check = True
    args: ClassVar[dict[str, Any]] = {}

    async def run(self, ctx: TaskContext, args: dict[str, Any]) -> ModuleResult:
        return ModuleResult()


def write_inventory(path: Path, hosts: int) -> None:
    lines = ["hosts:"]
    lines += [f"  h{i:03d}: {{tier: test, transport: local}}" for i in range(hosts)]
    path.write_text("\n".join(lines) + "\n")


def write_playbook(path: Path, tasks: int, action: str) -> None:
    lines = ["- hosts: all", "  gather_facts: false", "  tasks:"]
    lines += [f"    - name: task {i}\n      {action}" for i in range(tasks)]
    path.write_text("\n".join(lines) + "\n")


async def overhead(work: Path, action: str, console: bool, rounds: int) -> float:
    inv_path, pb = work / "inv200.yml", work / "pb200.yml"
    write_inventory(inv_path, HOSTS)
    write_playbook(pb, TASKS, action)
    inventory = load_inventory(inv_path)
    best = float("inf")
    for _ in range(rounds):
        reporters = [ConsoleReporter(io.StringIO(), color=False)] if console else []
        start = time.perf_counter()
        result = await run_playbook(pb, inventory, reporters=reporters)
        elapsed = time.perf_counter() - start
        assert result.exit_code == 0, result.document
        best = min(best, elapsed)
    return best / (HOSTS * TASKS) * 1e6


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hlplay-bench"


def ansible_playbook() -> Path:
    given = os.environ.get("ANSIBLE_PLAYBOOK")
    if given:
        return Path(given)
    env_dir = cache_dir() / "ansible-venv"
    exe = env_dir / "bin" / "ansible-playbook"
    if not exe.exists():
        print(f"installing ansible-core from PyPI into {env_dir} ...", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
        subprocess.run(
            [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "ansible-core"],
            check=True,
        )
    return exe


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-2000:])
        raise SystemExit(f"{argv[0]} failed with exit code {proc.returncode}")
    return elapsed


def compare(work: Path, rounds_ansible: int, rounds_hlplay: int) -> tuple[float, float]:
    exe = ansible_playbook()
    py = exe.parent / "python"
    pb = work / "true5.yml"
    pb.write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        + "".join(f"    - name: true {i}\n      command: /bin/true\n" for i in range(CMP_TASKS))
    )
    ans_inv = work / "ansible-hosts.yml"
    ans_inv.write_text(
        "all:\n  vars:\n    ansible_connection: local\n"
        f"    ansible_python_interpreter: {py}\n  hosts:\n"
        + "".join(f"    h{i:02d}:\n" for i in range(CMP_HOSTS))
    )
    hl_inv = work / "hlplay-hosts.yml"
    write_inventory(hl_inv, CMP_HOSTS)
    tmp = work / "ansible-tmp"
    tmp.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.update(
        ANSIBLE_HOME=str(tmp),
        ANSIBLE_LOCAL_TEMP=str(tmp / "local"),
        ANSIBLE_REMOTE_TMP=str(tmp / "remote"),
        ANSIBLE_SSH_CONTROL_PATH_DIR=str(tmp / "cp"),
        ANSIBLE_HOST_KEY_CHECKING="False",
        ANSIBLE_NOCOWS="1",
        ANSIBLE_RETRY_FILES_ENABLED="False",
        HLPLAY_NO_COLOR="1",
    )
    forks = str(CMP_HOSTS)
    ansible_times = [
        timed([str(exe), "-i", str(ans_inv), "-f", forks, str(pb)], env, work)
        for _ in range(rounds_ansible)
    ]
    hlplay = [sys.executable, "-m", "hlplay.cli.main", str(pb), "-i", str(hl_inv), "-f", forks]
    hlplay_times = [timed(hlplay, env, work) for _ in range(rounds_hlplay)]
    return statistics.median(ansible_times), statistics.median(hlplay_times)


def main() -> None:
    quick = "--quick" in sys.argv
    registry.register(NoOp)
    work = Path(tempfile.mkdtemp(prefix="hlplay-bench-engine-"))
    try:
        rounds = 2 if quick else 5
        noop = asyncio.run(overhead(work, "bench_noop:", console=False, rounds=rounds))
        noop_console = asyncio.run(overhead(work, "bench_noop:", console=True, rounds=rounds))
        debug_console = asyncio.run(
            overhead(work, "debug: {msg: hello}", console=True, rounds=rounds)
        )
        print(f"engine overhead, {HOSTS} hosts x {TASKS} tasks (local, controller-side no-op):")
        print(f"  no-op module, no output         : {noop:7.1f} us per host-task")
        print(f"  no-op module, console output    : {noop_console:7.1f} us per host-task")
        print(f"  debug module, console output    : {debug_console:7.1f} us per host-task")
        verdict = "met" if noop_console < 200 else "NOT met"
        print(f"  target < 200 us per host-task   : {verdict}")
        print()
        ans, hl = compare(work, 1 if quick else 3, 3 if quick else 5)
        print(
            f"{CMP_TASKS} x 'command: /bin/true' over {CMP_HOSTS} hosts, local connection,"
            f" forks {CMP_HOSTS}, wall time from the command line (median):"
        )
        print(f"  ansible-playbook : {ans:7.3f} s")
        print(f"  hlplay           : {hl:7.3f} s")
        ratio = ans / hl
        print(
            f"  ratio            : {ratio:7.1f}x faster  (target >= 10x: "
            f"{'met' if ratio >= 10 else 'NOT met'})"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
