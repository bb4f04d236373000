"""Read-only facts of a host: failed units, load, CPUs, memory, disk, uptime, system.

The one producer of facts, whichever way a host is reached: the listener runs
it with a runner of local commands, the SSH and local transports with theirs,
so every host answers in one shape (:data:`FACT_KEYS`). Every fact is a plain
command that a NixOS unit's PATH has (coreutils, findutils, grep, systemd),
and all of them run at once.

Nothing here takes input from a request: the commands name only the host's
own settings (its units directory and disk paths).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from hlplay.deploy.contract import ExecContext, Executor
from hlplay.proc import CommandResult, CommandRunner

__all__ = [
    "COMMAND_TIMEOUT",
    "FACT_KEYS",
    "collect_facts",
    "disk_paths_of",
    "failed_units",
    "parse_df",
    "parse_failed_units",
    "parse_loadavg",
    "parse_meminfo",
    "parse_nproc",
    "parse_uptime",
]

#: The keys of every host's facts. Transports add ``transport``; the listener
#: adds ``busy`` and ``protocol``.
FACT_KEYS = frozenset(
    {
        "hostname",
        "tier",
        "roles",
        "time",
        "failed_units",
        "failed_units_source",
        "load",
        "cpus",
        "memory",
        "disk",
        "uptime",
        "generation",
        "revision",
        "store_path",
        "generation_age",
        "system",
        "executor",
    }
)

#: The longest one fact's command may take; a runner with a deadline (the
#: transports') shortens it to the time left.
COMMAND_TIMEOUT = 10.0
SYSTEMD_RUNTIME = "/run/systemd/system"
SYSTEMCTL_FAILED = ("systemctl", "--failed", "--plain", "--no-legend", "--no-pager")
# With -z grep reads a whole file as one record and -x anchors the pattern to
# all of it: a unit is failed when its file says ``failed`` and nothing else.
FAILED_CONTENT = "[[:space:]]*failed[[:space:]]*"

_T = TypeVar("_T")


async def collect_facts(
    ctx: ExecContext,
    executor: Executor,
    *,
    units_dir: str | None = None,
    disk_paths: Sequence[str] = ("/",),
) -> dict[str, Any]:
    """Every fact of the host, read through ``ctx.runner``, as one JSON-ready dictionary."""
    run = ctx.runner
    (units, source), (load, memory, uptime, cpus), system, disks = await asyncio.gather(
        failed_units(run, units_dir),
        asyncio.gather(
            _read(run, ["cat", "/proc/loadavg"], parse_loadavg),
            _read(run, ["cat", "/proc/meminfo"], parse_meminfo),
            _read(run, ["cat", "/proc/uptime"], parse_uptime),
            _read(run, ["nproc"], parse_nproc),
        ),
        _current(ctx, executor),
        _disks(run, disk_paths),
    )
    gen_time = system.get("generation_time")
    now = time.time()
    return {
        "hostname": ctx.hostname,
        "tier": ctx.tier,
        "roles": list(ctx.roles),
        "time": now,
        "failed_units": units,
        "failed_units_source": source,
        "load": load,
        "cpus": cpus,
        "memory": memory,
        "disk": disks,
        "uptime": uptime,
        "generation": system.get("generation"),
        "revision": system.get("revision"),
        "store_path": system.get("store_path"),
        "generation_age": round(now - gen_time, 1) if isinstance(gen_time, int | float) else None,
        # the profile's generations as the executor reads them (``hlplay generations``)
        "system": system,
        "executor": executor.name,
    }


async def failed_units(run: CommandRunner, units_dir: str | None) -> tuple[list[str] | None, str]:
    """``(failed unit names, source)``; the names are ``None`` when nothing can tell.

    Hosts without systemd keep one file per unit (``web.service``) in their
    units directory, whose content is the unit's state.
    """
    if units_dir:
        # find would read a leading dash as an expression, not a path
        start = f"./{units_dir}" if units_dir.startswith("-") else units_dir
        found = await run(
            ["find", start, "-maxdepth", "1", "-type", "f",
             "-exec", "grep", "-l", "-s", "-z", "-x", "-E", FAILED_CONTENT, "--", "{}", "+"],
            COMMAND_TIMEOUT,
        )  # fmt: skip
        # grep says 1 when no unit failed; only find complains of a missing or
        # unreadable directory (grep -s keeps quiet about single files).
        if found.timed_out or (found.rc != 0 and found.stderr.strip()):
            return None, "units-dir"
        names = sorted(line.rsplit("/", 1)[-1] for line in found.stdout.splitlines() if line)
        return names, "units-dir"
    booted, listed = await asyncio.gather(
        run(["test", "-d", SYSTEMD_RUNTIME], COMMAND_TIMEOUT),
        run(list(SYSTEMCTL_FAILED), COMMAND_TIMEOUT),
    )
    if booted.rc != 0 or listed.rc != 0:
        return None, "unavailable"
    return parse_failed_units(listed.stdout), "systemd"


def disk_paths_of(host_vars: Mapping[str, Any] | None) -> list[str]:
    """The disks a host reports: its ``hlplay_disk_paths`` (a list), or the root file system."""
    paths = (host_vars or {}).get("hlplay_disk_paths")
    if isinstance(paths, Sequence) and not isinstance(paths, str | bytes) and paths:
        return [str(p) for p in paths]
    return ["/"]


async def _read(
    run: CommandRunner, argv: list[str], parse: Callable[[str], _T | None]
) -> _T | None:
    result = await run(argv, COMMAND_TIMEOUT)
    return parse(result.stdout) if result.rc == 0 else None


async def _disks(run: CommandRunner, paths: Sequence[str]) -> list[dict[str, Any]]:
    async def one(path: str) -> dict[str, Any]:
        res = await run(["df", "-P", "-k", "--", path], COMMAND_TIMEOUT)
        return parse_df(path, res.rc, res.stdout, res.stderr)

    return list(await asyncio.gather(*(one(p) for p in paths)))


async def _current(ctx: ExecContext, executor: Executor) -> dict[str, Any]:
    """The executor's view of the deployed system, or why it has none."""
    failures: list[Exception] = []

    async def runner(argv: Sequence[str], timeout: float | None) -> CommandResult:
        try:
            return await ctx.runner(argv, timeout)
        except Exception as exc:
            failures.append(exc)
            raise

    try:
        return dict(await executor.current(dataclasses.replace(ctx, runner=runner)))
    except Exception as exc:
        # A runner that cannot reach the host fails the host (Unreachable over
        # SSH), as every other fact's command would; anything else is the
        # executor's, and the other facts stay useful without a generation.
        if any(exc is failure for failure in failures):
            raise
        return {"error": f"{type(exc).__name__}: {exc}"}


# -- parsers (plain text from the host, so they are testable alone) --------------


def parse_failed_units(text: str) -> list[str]:
    """``systemctl --failed --plain --no-legend``: the unit is the first word."""
    return [line.split()[0] for line in text.splitlines() if line.strip()]


def parse_loadavg(text: str) -> list[float] | None:
    try:
        load = [round(float(p), 2) for p in text.split()[:3]]
    except ValueError:
        return None
    return load if len(load) == 3 else None


def parse_meminfo(text: str) -> dict[str, int] | None:
    """Total and available memory in bytes."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("MemTotal", "MemAvailable"):
            try:
                values[key] = int(rest.split()[0]) * 1024
            except (ValueError, IndexError):
                return None
    if "MemTotal" not in values:
        return None
    return {"total": values["MemTotal"], "available": values.get("MemAvailable", 0)}


def parse_uptime(text: str) -> float | None:
    try:
        return float(text.split()[0])
    except (IndexError, ValueError):
        return None


def parse_nproc(text: str) -> int | None:
    word = text.strip()
    return int(word) if word.isdigit() and int(word) > 0 else None


def parse_df(path: str, rc: int, stdout: str, stderr: str) -> dict[str, Any]:
    """One ``df -P -k PATH``: total, used and free bytes (``statvfs``'s), and percent used."""
    lines = stdout.splitlines()
    words = lines[1].split() if rc == 0 and len(lines) > 1 else []
    try:
        total, used, free = (int(w) * 1024 for w in words[1:4])
    except ValueError:
        words = []
    if len(words) < 6:
        reason = stderr.strip().splitlines()[-1] if stderr.strip() else "df failed"
        return {"path": path, "error": reason.removeprefix("df: ")}
    return {
        "path": path,
        "total": total,
        "used": used,
        "free": free,
        "percent": round(100.0 * used / total, 1) if total else 0.0,
    }
