"""The fleet health check: every selected host at once, then the fleet as a whole.

Per host, the facts its transport reports (one NATS request to a listener,
a handful of commands over one SSH connection, or in-process for local hosts)
are measured against the host's thresholds. Alongside, the listeners are
discovered (one NATS request for all of them) and, when the inventory names
them, Prometheus targets and Alertmanager alerts are read. A host that does
not answer is reported as unreachable; the others are reported all the same.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hlplay.health.drift import tier_drift
from hlplay.health.evaluate import HostHealth, evaluate, unreachable
from hlplay.health.facts import gather_facts
from hlplay.health.http import check_url
from hlplay.health.monitoring import (
    AlertsReport,
    TargetsReport,
    alertmanager_alerts,
    prometheus_targets,
)
from hlplay.health.report import FleetReport
from hlplay.health.thresholds import ThresholdError, Thresholds, thresholds_for
from hlplay.inventory.model import Host, Inventory
from hlplay.transports.base import NotSupported, Transport, Unreachable

DISCOVERY_TIMEOUT = 1.0


@dataclass
class FleetOptions:
    """How to check: threshold flags, extra vars, time limits, monitoring URLs."""

    flags: Mapping[str, float | None] = field(default_factory=dict)
    extra_vars: Mapping[str, Any] = field(default_factory=dict)
    timeout: float = 10.0  # per host, for its facts
    prometheus_url: str | None = None  # overrides hlplay.monitoring.prometheus_url
    alertmanager_url: str | None = None
    strict: bool = False  # warnings count as unhealthy too
    discovery: bool = True


async def host_health(
    transport: Transport,
    host: Host,
    inventory: Inventory,
    thresholds: Thresholds,
    *,
    timeout: float = 10.0,
) -> tuple[HostHealth, dict[str, Any]]:
    """One host's health and the facts it was judged on (empty when unreachable)."""
    try:
        facts = await gather_facts(transport, host, inventory, timeout=timeout)
    except Unreachable as exc:
        return unreachable(host, str(exc) or "unreachable", thresholds), {}
    except NotSupported as exc:
        return unreachable(host, f"no facts: {exc}", thresholds), {}
    return evaluate(host, facts, thresholds), facts


async def check_fleet(
    inventory: Inventory, hosts: Sequence[str], options: FleetOptions | None = None
) -> FleetReport:
    """Check ``hosts`` (names, in report order) and the fleet around them."""
    from hlplay.inventory.variables import host_variables
    from hlplay.transports.factory import TransportPool

    opts = options or FleetOptions()
    start = time.monotonic()
    # every threshold is validated before anything is contacted
    limits: dict[str, Thresholds] = {}
    for name in hosts:
        try:
            limits[name] = thresholds_for(
                host_variables(inventory, name, opts.extra_vars), opts.flags
            )
        except ThresholdError as exc:
            raise ThresholdError(f"host {name}: {exc}") from None
    monitoring = inventory.settings.monitoring
    prom_url = opts.prometheus_url or monitoring.prometheus_url
    am_url = opts.alertmanager_url or monitoring.alertmanager_url
    # and the URLs: a bad one must stop the check before any host is contacted
    if prom_url:
        check_url(prom_url, "the Prometheus URL")
    if am_url:
        check_url(am_url, "the Alertmanager URL")
    pool = TransportPool(inventory)
    try:

        async def one(name: str) -> HostHealth:
            host = inventory.hosts[name]
            try:
                transport = pool.for_host(host)
            except Exception as exc:  # a transport that cannot load fails its hosts only
                return unreachable(host, str(exc), limits[name])
            health, _ = await host_health(
                transport, host, inventory, limits[name], timeout=opts.timeout
            )
            return health

        nats_selected = [n for n in hosts if inventory.hosts[n].has_listener]
        rows_task = asyncio.gather(*(one(n) for n in hosts), return_exceptions=True)
        disc_task = _discover(pool, inventory, nats_selected) if opts.discovery else _none()
        prom_task = prometheus_targets(prom_url, timeout=opts.timeout) if prom_url else _none()
        am_task = alertmanager_alerts(am_url, timeout=opts.timeout) if am_url else _none()
        # Every part runs to its end before an error goes up: a task abandoned while
        # it starts a process can hang the event loop's shutdown for good.
        parts = await asyncio.gather(
            rows_task, disc_task, prom_task, am_task, return_exceptions=True
        )
        for part in [*parts[0], *parts[1:]]:
            if isinstance(part, BaseException):
                raise part
        rows, discovery, prom, am = parts
    finally:
        await pool.close()
    return FleetReport(
        hosts=list(rows),
        drift=tier_drift(h.row() for h in rows),
        discovery=discovery if isinstance(discovery, dict) else None,
        prometheus=prom if isinstance(prom, TargetsReport) else None,
        alertmanager=am if isinstance(am, AlertsReport) else None,
        thresholds=_common(limits.values(), opts.flags),
        thresholds_vary=len(set(limits.values())) > 1,
        strict=opts.strict,
        duration=round(time.monotonic() - start, 3),
    )


def _common(limits: Iterable[Thresholds], flags: Mapping[str, float | None]) -> Thresholds:
    """The thresholds every host shares, else the defaults with the flags."""
    found = set(limits)
    if len(found) == 1:
        return found.pop()
    return Thresholds().with_flags(
        flags.get("disk_max"), flags.get("mem_min"), flags.get("load_max")
    )


async def _none() -> None:
    return None


async def _discover(
    pool: Any, inventory: Inventory, selected: Sequence[str]
) -> dict[str, Any] | None:
    """Which listeners answer discovery, and which answer but are not in the inventory."""
    if not selected:
        return None
    try:
        replies = await pool.for_kind("nats").discover(timeout=DISCOVERY_TIMEOUT)
    except Exception as exc:  # no NATS at all: each host's facts request says so too
        return {"answered": [], "missing": list(selected), "unknown": [], "error": str(exc)}
    names = [str(r.get("hostname")) for r in replies if isinstance(r, dict)]
    return {
        "answered": sorted(n for n in names if n in selected),
        "missing": [n for n in selected if n not in names],
        "unknown": sorted(n for n in names if n not in inventory.hosts),
        "error": None,
    }
