"""Read-only facts a listener reports: failed units, load, memory, disk, uptime.

Nothing here takes input from the request: the only command ever run is
``systemctl --failed``, and only where systemd is the init system.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hlplay.deploy.contract import ExecContext, Executor
from hlplay.proc import run_argv

SYSTEMD_RUNTIME = "/run/systemd/system"


async def failed_units(units_dir: str | None) -> tuple[list[str] | None, str]:
    """``(failed unit names, source)``; ``None`` when nothing can tell."""
    if units_dir:
        found: list[str] = []
        try:
            entries = sorted(Path(units_dir).iterdir())
        except OSError:
            return None, "units-dir"
        for entry in entries:
            try:
                if entry.is_file() and entry.read_text().strip() == "failed":
                    found.append(entry.name)
            except OSError:
                continue
        return found, "units-dir"
    if os.path.isdir(SYSTEMD_RUNTIME):
        result = await run_argv(
            ["systemctl", "--failed", "--plain", "--no-legend", "--no-pager"], timeout=10
        )
        if result.rc == 0:
            units = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
            return units, "systemd"
    return None, "unavailable"


def memory() -> dict[str, int] | None:
    values: dict[str, int] = {}
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in ("MemTotal", "MemAvailable"):
                    values[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    if "MemTotal" not in values:
        return None
    return {"total": values["MemTotal"], "available": values.get("MemAvailable", 0)}


def disks(paths: Sequence[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in paths:
        try:
            usage = shutil.disk_usage(path)
        except OSError as exc:
            out.append({"path": path, "error": exc.strerror or str(exc)})
            continue
        percent = round(100.0 * usage.used / usage.total, 1) if usage.total else 0.0
        out.append(
            {
                "path": path,
                "total": usage.total,
                "used": usage.used,
                "free": usage.free,
                "percent": percent,
            }
        )
    return out


def uptime() -> float | None:
    try:
        with open("/proc/uptime") as fh:
            return float(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


async def collect_facts(
    ctx: ExecContext,
    executor: Executor,
    *,
    units_dir: str | None = None,
    disk_paths: Sequence[str] = ("/",),
) -> dict[str, Any]:
    """Every fact of the host, as one JSON-ready dictionary."""
    units, source = await failed_units(units_dir)
    try:
        system = await executor.current(ctx)
    except Exception as exc:  # a broken fact source must not stop the others
        system = {"error": f"{type(exc).__name__}: {exc}"}
    gen_time = system.get("generation_time")
    now = time.time()
    return {
        "hostname": ctx.hostname,
        "tier": ctx.tier,
        "roles": list(ctx.roles),
        "time": now,
        "failed_units": units,
        "failed_units_source": source,
        "load": load(),
        "cpus": os.cpu_count(),
        "memory": memory(),
        "disk": disks(disk_paths),
        "uptime": uptime(),
        "generation": system.get("generation"),
        "revision": system.get("revision"),
        "store_path": system.get("store_path"),
        "generation_age": round(now - gen_time, 1) if isinstance(gen_time, int | float) else None,
        # the profile's generations as the executor reads them (``hlplay generations``)
        "system": system,
    }
