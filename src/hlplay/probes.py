"""Probes: one look at something on a host, run through any command runner.

A probe is a kind and a target, never a command, so a spec arriving over NATS
cannot make a host run anything it chooses::

    unit_active  nginx.service                # systemctl is-active (or the units dir)
    tcp          127.0.0.1:22                 # a TCP connect succeeds
    http         http://127.0.0.1:8080/health # status 2xx/3xx, or exactly ``status``
    path_exists  /run/nginx/nginx.pid

Each becomes a fixed argument vector with the target as a positional
parameter (:func:`probe_argv`) and is run by a :data:`~hlplay.proc.CommandRunner`:
the listener's, an SSH transport's, or a local one. The deploy's health gate
(``hlplay.nix.health``) and fleet health (``hlplay.health.checks``) both probe
with this; each keeps its own retry policy. Nothing from hlplay but ``proc``
is imported here, so every layer can use it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from hlplay.proc import CommandResult, CommandRunner

KINDS = ("unit_active", "tcp", "http", "path_exists")

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
# The runner gets this much longer than the probe itself, so that a probe
# with a limit of its own (curl -m) reports before the runner kills it.
GRACE = 1.0


class ProbeSpecError(ValueError):
    """A probe target that is malformed; the message says which and why."""


def _where(where: str, message: str) -> str:
    return f"{where}: {message}" if where else message


def validate_target(kind: str, target: str, where: str = "") -> None:
    """Raise :class:`ProbeSpecError` unless ``target`` is a safe target for ``kind``."""
    if kind == "unit_active":
        if not UNIT_RE.fullmatch(target) or target.startswith("-"):
            raise ProbeSpecError(_where(where, f"invalid unit name {target!r}"))
    elif kind == "tcp":
        split_hostport(target, where or "tcp check")
    elif kind == "http":
        split_url(target, where or "http check")
    elif kind == "path_exists":
        if not target.startswith("/") or any(c in target for c in "\n\r\0"):
            raise ProbeSpecError(_where(where, "path_exists needs an absolute path"))
    else:
        raise ProbeSpecError(_where(where, f"unknown probe {kind!r}; expected {', '.join(KINDS)}"))


def split_hostport(target: str, where: str = "tcp check") -> tuple[str, int]:
    host, sep, port_s = target.rpartition(":")
    if not sep or not host or not port_s.isdigit():
        raise ProbeSpecError(_where(where, f"expected HOST:PORT, got {target!r}"))
    port = int(port_s)
    if not 0 < port < 65536 or not HOSTNAME_RE.fullmatch(host) or host.startswith("-"):
        raise ProbeSpecError(_where(where, f"invalid address {target!r}"))
    return host.strip("[]"), port


def split_url(url: str, where: str = "http check") -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProbeSpecError(_where(where, f"expected an http:// or https:// URL, got {url!r}"))
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise ProbeSpecError(_where(where, "URL contains whitespace"))
    host = parts.hostname
    if not HOSTNAME_RE.fullmatch(host) and not HOSTNAME_RE.fullmatch(f"[{host}]"):
        raise ProbeSpecError(_where(where, f"invalid host in {url!r}"))
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ProbeSpecError(_where(where, f"invalid port in {url!r}")) from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if not URL_PATH_RE.fullmatch(path):
        raise ProbeSpecError(_where(where, f"invalid path in {url!r}"))
    return host, port, path


@dataclass(frozen=True)
class Probe:
    """What to look at: ``timeout`` bounds one try, ``status`` is the http status wanted."""

    kind: str
    target: str
    timeout: float = 5.0
    status: int | None = None

    def describe(self) -> str:
        return f"{self.kind} {self.target}"


def probe_argv(p: Probe, units_dir: str | None = None) -> list[str]:
    """The argument vector that performs one try of ``p`` on the host.

    With ``units_dir`` (the lab's hosts, which have no systemd) a unit is active
    when its state file there says so.
    """
    if p.kind == "unit_active":
        if units_dir:
            return ["sh", "-c", UNIT_DIR_SCRIPT, "hlplay-health", units_dir, p.target]
        return ["systemctl", "is-active", "--", p.target]
    if p.kind == "tcp":
        host, port = split_hostport(p.target)
        return ["bash", "-c", TCP_SCRIPT, "hlplay-health", host, str(port)]
    if p.kind == "http":
        host, port, path = split_url(p.target)
        status = str(p.status) if p.status is not None else ""
        timeout = f"{p.timeout:g}"
        return [
            "bash", "-c", HTTP_SCRIPT, "hlplay-health",
            p.target, host, str(port), path, timeout, status,
        ]  # fmt: skip
    return ["test", "-e", p.target]


@dataclass(frozen=True)
class ProbeResult:
    """One try: passed or not and, when not, why in one line."""

    ok: bool
    message: str = ""


def read_result(res: CommandResult, timeout: float) -> ProbeResult:
    """What a probe's run says: the last line it printed, a timeout, or its exit code."""
    if res.rc == 0:
        return ProbeResult(True)
    if res.timed_out:
        return ProbeResult(False, f"timed out after {timeout:g}s")
    text = (res.stdout.strip() or res.stderr.strip()).splitlines()
    return ProbeResult(False, text[-1][:200] if text else f"exit {res.rc}")


async def probe(
    runner: CommandRunner,
    p: Probe,
    *,
    units_dir: str | None = None,
    run_timeout: float | None = None,
) -> ProbeResult:
    """Try ``p`` once through ``runner``, which gets ``run_timeout`` seconds
    (default the probe's timeout plus :data:`GRACE`)."""
    limit = p.timeout + GRACE if run_timeout is None else run_timeout
    res = await runner(probe_argv(p, units_dir), limit)
    return read_result(res, p.timeout)
