"""Health checks run after an activation: the gate that decides on a rollback.

A check is a small declarative spec, never a command, so a request arriving
over NATS cannot make a host run anything it chooses::

    - unit_active: nginx.service          # systemctl is-active (or the units dir)
    - tcp: 127.0.0.1:22                   # a TCP connect succeeds
    - http: http://127.0.0.1:8080/health  # status 2xx/3xx (or ``status: 200``)
    - path_exists: /run/nginx/nginx.pid

Each may add ``retries`` (default 2), ``delay`` (seconds between tries,
default 1), ``timeout`` (per try, default 5) and ``from: controller`` (run by
the playbook module on the controller instead of on the host). Checks run
through a command runner, so the same code checks a host from its listener,
over SSH, or locally.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from hlplay.proc import CommandRunner

KINDS = ("unit_active", "tcp", "http", "path_exists")
SIDES = ("host", "controller")
MAX_CHECKS = 50
MAX_RETRIES = 30

UNIT_RE = re.compile(r"^[A-Za-z0-9@._:\\-]+$")
HOSTNAME_RE = re.compile(r"^[A-Za-z0-9._-]+$|^\[[0-9A-Fa-f:.]+\]$")
URL_PATH_RE = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$")

# Fixed scripts; every value reaches them as a positional parameter.
UNIT_DIR_SCRIPT = (
    '[ -e "$1/$2.failed" ] && { echo "$2: failed"; exit 1; }; '
    '[ -e "$1/$2" ] || { echo "$2: not running"; exit 3; }; '
    's=$(cat -- "$1/$2"); case "$s" in ""|active) exit 0;; esac; echo "$2: $s"; exit 3'
)
TCP_SCRIPT = 'exec 3<>"/dev/tcp/$1/$2"'
HTTP_SCRIPT = (
    "if command -v curl >/dev/null 2>&1; then "
    'code=$(curl -s -o /dev/null -m "$5" -w "%{http_code}" -- "$1") || code=000; '
    "else "
    'case "$1" in https:*) echo "https needs curl on the host"; exit 2;; esac; '
    'exec 3<>"/dev/tcp/$2/$3" || exit 2; '
    'printf \'GET %s HTTP/1.0\\r\\nHost: %s\\r\\nConnection: close\\r\\n\\r\\n\' "$4" "$2" >&3; '
    "read -r proto code rest <&3; "
    "fi; "
    'if [ -n "$6" ]; then [ "$code" = "$6" ] && exit 0; '
    'else case "$code" in 2??|3??) exit 0;; esac; fi; '
    'echo "HTTP status $code"; exit 1'
)


class HealthSpecError(ValueError):
    """A health check spec that is malformed; the message says which and why."""


@dataclass(frozen=True)
class HealthCheck:
    kind: str
    target: str
    retries: int = 2
    delay: float = 1.0
    timeout: float = 5.0
    side: str = "host"
    status: int | None = None  # http: the exact status wanted

    def describe(self) -> str:
        return f"{self.kind} {self.target}"

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
    _validate_target(kind, target, where)
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


def _validate_target(kind: str, target: str, where: str) -> None:
    if kind == "unit_active":
        if not UNIT_RE.match(target) or target.startswith("-"):
            raise HealthSpecError(f"{where}: invalid unit name {target!r}")
    elif kind == "tcp":
        split_hostport(target, where)
    elif kind == "http":
        split_url(target, where)
    elif kind == "path_exists" and (
        not target.startswith("/") or any(c in target for c in "\n\r\0")
    ):
        raise HealthSpecError(f"{where}: path_exists needs an absolute path")


def split_hostport(target: str, where: str = "tcp check") -> tuple[str, int]:
    host, sep, port_s = target.rpartition(":")
    if not sep or not host or not port_s.isdigit():
        raise HealthSpecError(f"{where}: expected HOST:PORT, got {target!r}")
    port = int(port_s)
    if not 0 < port < 65536 or not HOSTNAME_RE.match(host) or host.startswith("-"):
        raise HealthSpecError(f"{where}: invalid address {target!r}")
    return host.strip("[]"), port


def split_url(url: str, where: str = "http check") -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HealthSpecError(f"{where}: expected an http:// or https:// URL, got {url!r}")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise HealthSpecError(f"{where}: URL contains whitespace")
    host = parts.hostname
    if not HOSTNAME_RE.match(host) and not HOSTNAME_RE.match(f"[{host}]"):
        raise HealthSpecError(f"{where}: invalid host in {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise HealthSpecError(f"{where}: invalid port in {url!r}") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if not URL_PATH_RE.match(path):
        raise HealthSpecError(f"{where}: invalid path in {url!r}")
    return host, port, path


def check_argv(check: HealthCheck, units_dir: str | None = None) -> list[str]:
    """The argument vector that performs one try of ``check`` on the host."""
    if check.kind == "unit_active":
        if units_dir:
            return ["sh", "-c", UNIT_DIR_SCRIPT, "hlplay-health", units_dir, check.target]
        return ["systemctl", "is-active", "--", check.target]
    if check.kind == "tcp":
        host, port = split_hostport(check.target)
        return ["bash", "-c", TCP_SCRIPT, "hlplay-health", host, str(port)]
    if check.kind == "http":
        host, port, path = split_url(check.target)
        status = str(check.status) if check.status is not None else ""
        timeout = f"{check.timeout:g}"
        return [
            "bash", "-c", HTTP_SCRIPT, "hlplay-health",
            check.target, host, str(port), path, timeout, status,
        ]  # fmt: skip
    return ["test", "-e", check.target]


async def run_check(
    runner: CommandRunner, check: HealthCheck, *, units_dir: str | None = None
) -> CheckOutcome:
    argv = check_argv(check, units_dir)
    message = ""
    for attempt in range(check.retries + 1):
        if attempt:
            await asyncio.sleep(check.delay)
        res = await runner(argv, check.timeout + 1)
        if res.rc == 0:
            return CheckOutcome(check, True, "", attempt + 1)
        text = (res.stdout.strip() or res.stderr.strip()).splitlines()
        if res.timed_out:
            message = f"timed out after {check.timeout:g}s"
        elif text:
            message = text[-1][:200]
        else:
            message = f"exit {res.rc}"
    return CheckOutcome(check, False, message, check.retries + 1)


async def run_checks(
    runner: CommandRunner,
    checks: Sequence[HealthCheck],
    *,
    units_dir: str | None = None,
) -> HealthReport:
    """Run checks concurrently; the report keeps their order."""
    outcomes = await asyncio.gather(*(run_check(runner, c, units_dir=units_dir) for c in checks))
    return HealthReport(list(outcomes))
