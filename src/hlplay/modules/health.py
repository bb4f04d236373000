"""``health``: one health check per call, retried morph-style.

::

    - health: {check: unit_active, target: nginx.service, period: 2, timeout: 60}
    - health: {check: tcp, target: 22}            # the host's own address
    - health: {check: http, target: "http://{{ inventory_hostname }}:8080/health"}
    - health: {check: disk, disk_max: 80}
    - health: {check: host}                       # the fleet report's row
    - health: {check: drift, rows: [...]}         # on the controller: rows -> drift
    - health: {check: thresholds, hosts: "{{ ansible_play_hosts_all }}"}  # contacts nobody

Tries every ``period`` seconds until the check passes or ``timeout`` seconds
have gone by (``timeout: 0``, the default, tries once). The result has
``attempts``, ``last_error``, ``value`` and, for ``host``, ``row``. A host
that never answers is *unreachable*, not failed. See docs/health.md.
"""

from __future__ import annotations

from typing import Any, ClassVar

from hlplay.modules.base import Arg, ArgError, Module, ModuleResult, TaskContext

KINDS = (
    "reachable", "units", "unit_active", "disk", "memory", "load", "tcp", "http", "host", "drift",
    "thresholds",
)  # fmt: skip


class Health(Module):
    name = "health"
    summary = "One health check (unit, tcp, http, disk, memory, load, host…) with retries."
    supports_check = True
    args: ClassVar[dict[str, Arg]] = {
        "check": Arg("str", required=True, choices=KINDS, help="what to check"),
        "target": Arg("str", help="unit name, HOST:PORT or PORT, URL, or disk path"),
        "status": Arg("int", help="http: the exact status wanted (default any 2xx/3xx)"),
        "period": Arg("float", default=2.0, help="seconds between tries"),
        "timeout": Arg("float", default=0.0, help="seconds to keep trying (0: one try)"),
        "try_timeout": Arg("float", default=5.0, help="seconds one try may take"),
        "disk_max": Arg("float", help="disk: used percent that is too much (default 90)"),
        "mem_min": Arg("float", help="memory: available percent that is too little (default 10)"),
        "load_max": Arg("float", help="load: 1-minute load per CPU that is too much (default 2)"),
        "rows": Arg("list", help="drift: report rows (the host check's `row`)"),
        "hosts": Arg("list", elements="str", help="thresholds: hosts to check (default: this)"),
    }

    async def run(self, ctx: TaskContext, args: dict[str, Any]) -> ModuleResult:
        kind = str(args["check"])
        if kind == "drift":
            return _drift(args)
        if kind == "thresholds":
            return _thresholds(ctx, args)
        from hlplay.health.checks import CheckError, CheckTarget, run_check
        from hlplay.health.evaluate import unreachable
        from hlplay.health.thresholds import ThresholdError, thresholds_for

        period = _bounded(args, "period", 2.0, 0.0, 3600.0)
        timeout = _bounded(args, "timeout", 0.0, 0.0, 86400.0)
        try_timeout = _bounded(args, "try_timeout", 5.0, 0.1, 3600.0)
        try:
            thresholds = thresholds_for(
                ctx.vars,
                {k: args.get(k) for k in ("disk_max", "mem_min", "load_max")},
            )
        except ThresholdError as exc:
            return ModuleResult(failed=True, msg=str(exc))
        host = ctx.exec_host
        target = CheckTarget(host, ctx.inventory, ctx.transport, ctx.vars, thresholds)
        try:
            result = await run_check(
                target,
                kind,
                args.get("target"),
                status=args.get("status"),
                period=period,
                timeout=timeout,
                try_timeout=try_timeout,
            )
        except CheckError as exc:
            return ModuleResult(failed=True, msg=f"{kind}: {exc}")
        data = result.to_dict()
        msg = result.last.message
        if result.attempts > 1:
            msg += f" ({result.attempts} tries in {result.elapsed:g}s)"
        if result.last.unreachable:
            if kind == "host":
                data["row"] = unreachable(host, result.last.message, thresholds).row()
            return ModuleResult(unreachable=True, msg=msg, data=data)
        return ModuleResult(failed=not result.ok, msg=msg, data=data)


def _bounded(args: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = args.get(key)
    num = float(default if value is None else value)
    if not low <= num <= high:
        raise ArgError(f"argument '{key}' must be between {low:g} and {high:g}, got {num:g}")
    return num


def _thresholds(ctx: TaskContext, args: dict[str, Any]) -> ModuleResult:
    """Every named host's thresholds, validated without contacting any host."""
    from hlplay.health.thresholds import ThresholdError, thresholds_for

    hostvars = ctx.vars.get("hostvars") or {}
    flags = {k: args.get(k) for k in ("disk_max", "mem_min", "load_max")}
    found: dict[str, dict[str, float]] = {}
    for name in args.get("hosts") or [ctx.host.name]:
        host_vars = ctx.vars if name == ctx.host.name else hostvars.get(name)
        if host_vars is None:
            return ModuleResult(failed=True, msg=f"thresholds: no host named {name!r}")
        try:
            found[name] = thresholds_for(host_vars, flags).to_dict()
        except ThresholdError as exc:
            return ModuleResult(failed=True, msg=f"host {name}: {exc}")
    distinct = {tuple(t.values()) for t in found.values()}
    msg = f"thresholds of {len(found)} host(s) are valid" + (
        " (they differ between hosts)" if len(distinct) > 1 else ""
    )
    return ModuleResult(msg=msg, data={"check": "thresholds", "thresholds": found, "ok": True})


def _drift(args: dict[str, Any]) -> ModuleResult:
    from hlplay.health.drift import drift_markdown, tier_drift

    rows = args.get("rows")
    if rows is None:
        return ModuleResult(failed=True, msg="drift needs rows: the host check's rows")
    drift = tier_drift(r for r in rows if isinstance(r, dict))
    md = drift_markdown(drift)
    return ModuleResult(
        failed=bool(drift),
        msg="; ".join(d["message"] for d in drift) or "no revision drift",
        data={"drift": drift, "markdown": md, "check": "drift", "ok": not drift},
    )
