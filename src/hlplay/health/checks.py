"""Single health checks with morph-style retries: try every ``period`` seconds
until one try passes or ``timeout`` seconds have gone by.

Kinds:

* ``reachable``: the host answers (its facts arrive).
* ``units``: no failed units; ``unit_active`` (``target``: a unit): the unit is
  active — the deploy gate's probe (:mod:`hlplay.probes`) over SSH and
  locally, the listener's failed-unit list over NATS (which cannot tell a
  stopped unit from a running one, only a failed one).
* ``disk`` (``target``: a reported path, default the fullest), ``memory``,
  ``load``: the facts against the host's thresholds.
* ``tcp`` (``target``: ``HOST:PORT``, or ``PORT`` for the host's own address):
  a connection from the controller opens.
* ``http`` (``target``: a URL): the controller gets a 2xx/3xx status, or
  exactly ``status``.
* ``host``: every fact-based measure at once — the fleet report's row.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hlplay.health.evaluate import BAD, Measure, measure_disk, measure_load, measure_memory
from hlplay.health.evaluate import measure_units as _measure_units
from hlplay.health.facts import gather_facts
from hlplay.health.http import HttpError, http_get
from hlplay.health.thresholds import Thresholds
from hlplay.inventory.model import Host, Inventory
from hlplay.probes import Probe, ProbeSpecError, probe, split_hostport, validate_target
from hlplay.proc import CommandResult, CommandRunner
from hlplay.transports.base import NotSupported, Transport, Unreachable

KINDS = ("reachable", "units", "unit_active", "disk", "memory", "load", "tcp", "http", "host")
FACT_KINDS = ("reachable", "units", "disk", "memory", "load", "host")


class CheckError(ValueError):
    """A check whose arguments do not make sense (the message says why)."""


@dataclass
class Attempt:
    """One try: passed or not, why, and what it measured."""

    ok: bool
    message: str = ""
    value: Any = None
    unreachable: bool = False
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class CheckResult:
    kind: str
    target: str | None
    last: Attempt
    attempts: int
    elapsed: float

    @property
    def ok(self) -> bool:
        return self.last.ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.kind,
            "target": self.target,
            "ok": self.ok,
            "attempts": self.attempts,
            "elapsed": self.elapsed,
            "value": self.last.value,
            "last_error": None if self.ok else self.last.message,
            **self.last.data,
        }


async def retry(
    once: Callable[[float], Awaitable[Attempt]],
    *,
    period: float = 2.0,
    timeout: float = 0.0,
    try_timeout: float = 5.0,
) -> tuple[Attempt, int, float]:
    """Run ``once(seconds allowed)`` until it passes or ``timeout`` is spent.

    ``timeout`` 0 means a single try. Each try gets ``try_timeout`` seconds,
    less when the deadline is nearer. Returns the last attempt, the number
    of tries and the seconds spent.
    """
    start = time.monotonic()
    deadline = start + max(0.0, timeout)
    tries = 0
    while True:
        tries += 1
        left = deadline - time.monotonic()
        allowed = try_timeout if timeout <= 0 else max(0.1, min(try_timeout, left))
        try:
            attempt = await asyncio.wait_for(once(allowed), allowed + 1.0)
        except TimeoutError:
            attempt = Attempt(False, f"timed out after {allowed:g}s")
        if attempt.ok or time.monotonic() + period >= deadline:
            return attempt, tries, round(time.monotonic() - start, 3)
        await asyncio.sleep(period)


@dataclass
class CheckTarget:
    """Where a check runs: the host, how to reach it, and its variables."""

    host: Host
    inventory: Inventory
    transport: Transport
    vars: Mapping[str, Any]
    thresholds: Thresholds


def _from_measure(m: Measure, bad_when_unknown: bool = True) -> Attempt:
    ok = bool(m.ok) if m.ok is not None else not bad_when_unknown
    return Attempt(ok, m.message, m.value)


async def _facts_attempt(
    t: CheckTarget, allowed: float, judge: Callable[[dict[str, Any]], Attempt]
) -> Attempt:
    try:
        facts = await gather_facts(t.transport, t.host, t.inventory, timeout=allowed)
    except Unreachable as exc:
        return Attempt(False, str(exc) or "unreachable", unreachable=True)
    except NotSupported as exc:
        return Attempt(False, f"no facts from this host: {exc}")
    return judge(facts)


def _unit_from_facts(unit: str) -> Callable[[dict[str, Any]], Attempt]:
    def judge(facts: dict[str, Any]) -> Attempt:
        m = _measure_units(facts, unit)
        return _from_measure(m)

    return judge


def host_runner(t: CheckTarget) -> CommandRunner:
    """Run commands on ``t``'s host through its transport (probes take a runner)."""

    async def run(argv: Sequence[str], timeout: float | None) -> CommandResult:
        return await t.transport.run(t.host, argv, timeout=timeout)

    return run


async def _unit_active(t: CheckTarget, unit: str, allowed: float) -> Attempt:
    units_dir = t.vars.get("hlplay_units_dir")
    try:
        got = await probe(
            host_runner(t),
            Probe("unit_active", unit, timeout=allowed),
            units_dir=str(units_dir) if units_dir else None,
            run_timeout=allowed,
        )
    except NotSupported:  # a listener runs no commands: its failed-unit list must do
        return await _facts_attempt(t, allowed, _unit_from_facts(unit))
    except Unreachable as exc:
        return Attempt(False, str(exc) or "unreachable", unreachable=True)
    if got.ok:
        return Attempt(True, f"{unit} is active", "active")
    state = got.message
    return Attempt(False, f"{unit}: {state}" if not state.startswith(unit) else state, state)


def split_tcp_target(target: str, host: Host) -> tuple[str, int]:
    """``HOST:PORT`` or a bare ``PORT`` (the host's own address)."""
    text = target.strip()
    if text.isdigit():
        text = f"{host.reach}:{text}"
    try:
        return split_hostport(text, "tcp check")
    except ProbeSpecError as exc:
        raise CheckError(str(exc)) from None


async def tcp_attempt(address: str, port: int, allowed: float) -> Attempt:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(address, port), allowed)
    except TimeoutError:
        return Attempt(False, f"{address}:{port}: no answer within {allowed:g}s")
    except ConnectionRefusedError:
        return Attempt(False, f"{address}:{port}: connection refused")
    except OSError as exc:
        return Attempt(False, f"{address}:{port}: {exc.strerror or exc}")
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return Attempt(True, f"{address}:{port} accepts connections")


async def http_attempt(
    url: str, allowed: float, status: int | list[int] | None = None, body_regex: Any = None
) -> Attempt:
    """One GET: the status is ``status`` (or 2xx/3xx) and the body matches ``body_regex``."""
    try:
        resp = await http_get(url, timeout=allowed)
    except HttpError as exc:
        return Attempt(False, f"{url}: {exc}")
    data = {"status": resp.status, "elapsed_request": resp.elapsed}
    wanted = [status] if isinstance(status, int) else status
    if wanted:
        good = resp.status in wanted
        expect = " or ".join(str(s) for s in wanted)
    else:
        good = 200 <= resp.status < 400
        expect = "2xx or 3xx"
    if not good:
        return Attempt(
            False, f"{url}: HTTP {resp.status}, expected {expect}", resp.status, data=data
        )
    if body_regex is not None:
        match = body_regex.search(resp.text())
        if match is None:
            return Attempt(
                False, f"{url}: body does not match {body_regex.pattern!r}", resp.status, data=data
            )
        data["match"] = match.group(0)[:200]
    return Attempt(True, f"{url}: HTTP {resp.status}", resp.status, data=data)


async def run_check(
    t: CheckTarget,
    kind: str,
    target: str | None = None,
    *,
    status: int | None = None,
    period: float = 2.0,
    timeout: float = 0.0,
    try_timeout: float = 5.0,
) -> CheckResult:
    """One check of ``kind`` on ``t``, retried as :func:`retry` says."""
    if kind not in KINDS:
        raise CheckError(f"unknown check '{kind}'; expected one of {', '.join(KINDS)}")
    once = _one(t, kind, target, status)
    last, tries, elapsed = await retry(
        once, period=period, timeout=timeout, try_timeout=try_timeout
    )
    return CheckResult(kind, target, last, tries, elapsed)


def _one(
    t: CheckTarget, kind: str, target: str | None, status: int | None
) -> Callable[[float], Awaitable[Attempt]]:
    th = t.thresholds
    if kind == "unit_active":
        if not target:
            raise CheckError("unit_active needs target: the unit name (e.g. nginx.service)")
        try:
            validate_target("unit_active", target)
        except ProbeSpecError as exc:
            raise CheckError(str(exc)) from None
        unit = target
        return lambda allowed: _unit_active(t, unit, allowed)
    if kind == "tcp":
        if not target:
            raise CheckError("tcp needs target: HOST:PORT or PORT")
        address, port = split_tcp_target(target, t.host)
        return lambda allowed: tcp_attempt(address, port, allowed)
    if kind == "http":
        if not target:
            raise CheckError("http needs target: a URL")
        from hlplay.health.http import check_url

        url = check_url(target, "the http check's target")
        return lambda allowed: http_attempt(url, allowed, status)
    judges: dict[str, Callable[[dict[str, Any]], Attempt]] = {
        "reachable": lambda facts: Attempt(True, "the host answers", True),
        "units": lambda facts: _from_measure(_measure_units(facts)),
        "disk": lambda facts: _from_measure(measure_disk(facts, th.disk_max_percent, target)),
        "memory": lambda facts: _from_measure(measure_memory(facts, th.mem_min_percent)),
        "load": lambda facts: _from_measure(measure_load(facts, th.load_max_per_cpu)),
        "host": lambda facts: _host_attempt(t, facts),
    }
    judge = judges[kind]
    return lambda allowed: _facts_attempt(t, allowed, judge)


def _host_attempt(t: CheckTarget, facts: dict[str, Any]) -> Attempt:
    from hlplay.health.evaluate import evaluate

    health = evaluate(t.host, facts, t.thresholds)
    row = health.row()
    bad = [f for f in health.findings if f.level == BAD]
    message = health.notes or "healthy"
    return Attempt(not bad, message, health.verdict, data={"row": row})
