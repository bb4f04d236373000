"""Health checks run after an activation: the gate that decides on a rollback.

A check is a small declarative spec, never a command, so a request arriving
over NATS cannot make a host run anything it chooses::

    - unit_active: nginx.service          # systemctl is-active (or the units dir)
    - tcp: 127.0.0.1:22                   # a TCP connect succeeds
    - http: http://127.0.0.1:8080/health  # status 2xx/3xx (or ``status: 200``)
    - path_exists: /run/nginx/nginx.pid

Each may add ``retries`` (default 2), ``delay`` (seconds between tries,
default 1), ``timeout`` (per try, default 5) and ``from: controller`` (run by
the playbook module on the controller instead of on the host). A check is a
probe of :mod:`hlplay.probes` plus this gate's retries, run through a command
runner, so the same code checks a host from its listener, over SSH, or locally.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hlplay.probes import KINDS as KINDS
from hlplay.probes import Probe, ProbeResult, ProbeSpecError, probe, probe_argv, validate_target
from hlplay.probes import split_hostport as split_hostport
from hlplay.probes import split_url as split_url
from hlplay.proc import CommandRunner

SIDES = ("host", "controller")
MAX_CHECKS = 50
MAX_RETRIES = 30

#: A health check spec that is malformed; the message says which and why.
HealthSpecError = ProbeSpecError


@dataclass(frozen=True)
class HealthCheck:
    kind: str
    target: str
    retries: int = 2
    delay: float = 1.0
    timeout: float = 5.0
    side: str = "host"
    status: int | None = None  # http: the exact status wanted

    @property
    def probe(self) -> Probe:
        return Probe(self.kind, self.target, self.timeout, self.status)

    def describe(self) -> str:
        return self.probe.describe()

    def to_spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {self.kind: self.target, "retries": self.retries}
        out.update(delay=self.delay, timeout=self.timeout)
        if self.side != "host":
            out["from"] = self.side
        if self.status is not None:
            out["status"] = self.status
        return out


@dataclass
class CheckOutcome:
    check: HealthCheck
    ok: bool
    message: str = ""
    tries: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check.describe(),
            "ok": self.ok,
            "message": self.message,
            "tries": self.tries,
        }


@dataclass
class HealthReport:
    outcomes: list[CheckOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    @property
    def failed(self) -> list[CheckOutcome]:
        return [o for o in self.outcomes if not o.ok]

    def summary(self) -> str:
        bad = self.failed
        if not bad:
            return f"{len(self.outcomes)} health check(s) passed"
        return "; ".join(
            f"{o.check.describe()} failed" + (f" ({o.message})" if o.message else "") for o in bad
        )

    def to_list(self) -> list[dict[str, Any]]:
        return [o.to_dict() for o in self.outcomes]


def parse_checks(specs: object) -> list[HealthCheck]:
    """Validate a list of check specs (from a playbook or a request)."""
    if specs is None:
        return []
    if not isinstance(specs, Sequence) or isinstance(specs, (str, bytes)):
        raise HealthSpecError("health must be a list of checks")
    if len(specs) > MAX_CHECKS:
        raise HealthSpecError(f"at most {MAX_CHECKS} health checks")
    return [parse_check(spec, i) for i, spec in enumerate(specs)]


def parse_check(spec: object, index: int = 0) -> HealthCheck:
    where = f"health check #{index + 1}"
    if isinstance(spec, HealthCheck):
        return spec
    if not isinstance(spec, Mapping):
        raise HealthSpecError(f"{where} must be a mapping such as {{tcp: '127.0.0.1:22'}}")
    kinds = [k for k in spec if k in KINDS]
    unknown = [
        str(k)
        for k in spec
        if k not in KINDS and k not in ("retries", "delay", "timeout", "from", "status")
    ]
    if unknown:
        raise HealthSpecError(
            f"{where}: unknown key {unknown[0]!r}; expected one of {', '.join(KINDS)}"
            " (with retries, delay, timeout, from, status)"
        )
    if len(kinds) != 1:
        raise HealthSpecError(f"{where} must name exactly one of {', '.join(KINDS)}")
    kind = kinds[0]
    target = spec[kind]
    if not isinstance(target, (str, int)) or isinstance(target, bool):
        raise HealthSpecError(f"{where}: {kind} needs a string")
    target = str(target).strip()
    validate_target(kind, target, where)
    retries = _number(spec.get("retries", 2), f"{where}: retries", int, 0, MAX_RETRIES)
    delay = _number(spec.get("delay", 1.0), f"{where}: delay", float, 0, 60)
    timeout = _number(spec.get("timeout", 5.0), f"{where}: timeout", float, 0.1, 300)
    side = spec.get("from", "host")
    if side not in SIDES:
        raise HealthSpecError(f"{where}: from must be 'host' or 'controller', got {side!r}")
    status = spec.get("status")
    if status is not None:
        if kind != "http":
            raise HealthSpecError(f"{where}: status applies to http checks only")
        status = _number(status, f"{where}: status", int, 100, 599)
    return HealthCheck(
        kind=kind,
        target=target,
        retries=int(retries),
        delay=float(delay),
        timeout=float(timeout),
        side=str(side),
        status=int(status) if status is not None else None,
    )


def _number(value: object, what: str, kind: type, low: float, high: float) -> float:
    if isinstance(value, bool):
        raise HealthSpecError(f"{what} must be a number")
    try:
        num = kind(value)
    except (TypeError, ValueError):
        raise HealthSpecError(f"{what} must be a number, got {value!r}") from None
    if not low <= num <= high:
        raise HealthSpecError(f"{what} must be between {low:g} and {high:g}")
    return float(num)


def check_argv(check: HealthCheck, units_dir: str | None = None) -> list[str]:
    """The argument vector that performs one try of ``check`` on the host."""
    return probe_argv(check.probe, units_dir)


async def run_check(
    runner: CommandRunner, check: HealthCheck, *, units_dir: str | None = None
) -> CheckOutcome:
    """``check``'s probe, tried once and then ``retries`` more times, ``delay`` apart."""
    result = ProbeResult(False)
    for attempt in range(check.retries + 1):
        if attempt:
            await asyncio.sleep(check.delay)
        result = await probe(runner, check.probe, units_dir=units_dir)
        if result.ok:
            return CheckOutcome(check, True, "", attempt + 1)
    return CheckOutcome(check, False, result.message, check.retries + 1)


async def run_checks(
    runner: CommandRunner,
    checks: Sequence[HealthCheck],
    *,
    units_dir: str | None = None,
) -> HealthReport:
    """Run checks concurrently; the report keeps their order."""
    outcomes = await asyncio.gather(*(run_check(runner, c, units_dir=units_dir) for c in checks))
    return HealthReport(list(outcomes))
