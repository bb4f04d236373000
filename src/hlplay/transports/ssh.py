"""The SSH transport: hosts without a listener, reached with asyncssh.

One connection per host, opened on first use and reused for every task; a
semaphore bounds the channels open at once on it (sshd refuses sessions past
``MaxSessions``, 10 by default). Host keys are checked against known_hosts
unless the inventory explicitly says otherwise. Commands are argument vectors,
quoted with :func:`shlex.join` into the single command line SSH carries, so an
argument can never become shell syntax on the remote side.

Deploy actions run the same executor the listener would, controller-side,
with a command runner that runs over this connection: a host without a
listener deploys exactly as one with a listener does.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import os
import re
import shlex
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hlplay.deploy.facts import collect_facts, disk_paths_of
from hlplay.inventory.hostsettings import merged_vars
from hlplay.inventory.model import Host, Inventory
from hlplay.transports.base import CommandResult, Unreachable
from hlplay.transports.direct import DirectTransport

if TYPE_CHECKING:
    import asyncssh

log = logging.getLogger("hlplay.transports.ssh")

DEFAULT_MAX_CHANNELS = 8
KEEPALIVE_INTERVAL = 15.0
KEEPALIVE_COUNT_MAX = 3
# How long past a command's timeout the controller waits for the host's own
# timeout(1) to report, before it gives up on the channel.
TIMEOUT_GRACE = 5.0
# What a timeout(1) that fired looks like: it kills its whole process group,
# itself included (-9), or reports 124 / 128+9 where it survives.
REMOTE_TIMEOUT_RCS = frozenset({-9, -15, 124, 128 + 9, 128 + 15})
# How long a command may take to stop after the TERM of its timeout.
TERM_GRACE = 3.0
# AES-GCM first: cryptography seals a whole packet in one call, where
# asyncssh builds chacha20-poly1305 from per-packet primitives (measured: the
# largest cost of a command on a warm connection). All three are AEAD ciphers.
CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class _HostConn:
    """The connection state of one host: its lock, channel bound and connection."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    channels: asyncio.Semaphore | None = None
    conn: asyncssh.SSHClientConnection | None = None


class SshTransport(DirectTransport):
    """Runs commands and deploy actions on hosts over SSH."""

    name = "ssh"

    def __init__(self, inventory: Inventory) -> None:
        super().__init__(inventory)
        self.inventory: Inventory = inventory
        self._hosts: dict[str, _HostConn] = {}
        self._warned_unchecked: set[str] = set()
        self._vars: dict[str, dict[str, Any]] = {}
        self._known_hosts_cache: dict[str, tuple[int, asyncssh.SSHKnownHosts]] = {}
        self._keys_cache: dict[str, asyncssh.SSHKey] = {}
        #: how many SSH connections were opened (each host once, unless one dropped)
        self.connects = 0

    # -- variables -----------------------------------------------------------

    def host_vars(self, host: Host) -> dict[str, Any]:
        """The host's variables with its groups' (``hlplay_*`` settings live there too)."""
        cached = self._vars.get(host.name)
        if cached is None:
            cached = merged_vars(self.inventory, host)
            self._vars[host.name] = cached
        return cached

    # -- connections ---------------------------------------------------------

    def _state(self, host: Host) -> _HostConn:
        state = self._hosts.get(host.name)
        if state is None:
            state = _HostConn(channels=asyncio.Semaphore(_max_channels(self.host_vars(host))))
            self._hosts[host.name] = state
        return state

    async def _connection(self, host: Host) -> asyncssh.SSHClientConnection:
        state = self._state(host)
        conn = state.conn
        if conn is not None and not conn.is_closed():
            return conn
        # The lock makes concurrent first uses of a host share one connect.
        async with state.lock:
            if state.conn is not None and not state.conn.is_closed():
                return state.conn
            state.conn = None
            state.conn = await self._connect(host)
            return state.conn

    def _forget(self, host: Host, conn: asyncssh.SSHClientConnection | None) -> None:
        """Drop a connection that broke, so that the next task reconnects."""
        state = self._hosts.get(host.name)
        if state is not None and (conn is None or state.conn is conn):
            state.conn = None
        if conn is not None:
            conn.abort()

    def _known_hosts(self, path: str) -> asyncssh.SSHKnownHosts:
        """Parsed once per file for the whole fleet (it was 4 ms a host, every connect)."""
        import asyncssh

        mtime = os.stat(path).st_mtime_ns
        cached = self._known_hosts_cache.get(path)
        if cached is None or cached[0] != mtime:
            cached = (mtime, asyncssh.read_known_hosts(path))
            self._known_hosts_cache[path] = cached
        return cached[1]

    def _client_key(self, path: str) -> asyncssh.SSHKey:
        import asyncssh

        key = self._keys_cache.get(path)
        if key is None:
            key = asyncssh.read_private_key(path)
            self._keys_cache[path] = key
        return key

    async def _connect(self, host: Host) -> asyncssh.SSHClientConnection:
        import asyncssh

        ssh = host.ssh
        user = ssh.user or getpass.getuser()
        where = f"{host.name} ({user}@{host.reach}:{ssh.port})"
        options: dict[str, Any] = {
            "port": ssh.port,
            "username": user,
            "connect_timeout": ssh.connect_timeout,
            "keepalive_interval": KEEPALIVE_INTERVAL,
            "keepalive_count_max": KEEPALIVE_COUNT_MAX,
            "encryption_algs": CIPHERS,
        }
        known_hosts_path: str | None = None
        if ssh.host_key_checking:
            known_hosts_path = os.path.expanduser(ssh.known_hosts or "~/.ssh/known_hosts")
            if not os.path.isfile(known_hosts_path):
                raise Unreachable(
                    f"cannot check the host key of {host.name}: no known_hosts file at "
                    f"{known_hosts_path} (set ssh.known_hosts, or host_key_checking: false)"
                )
            try:
                options["known_hosts"] = self._known_hosts(known_hosts_path)
            except (OSError, ValueError, asyncssh.Error) as exc:
                raise Unreachable(
                    f"cannot read known_hosts {known_hosts_path} for {host.name}: {exc}"
                ) from None
        else:
            options["known_hosts"] = None
            if host.name not in self._warned_unchecked:
                self._warned_unchecked.add(host.name)
                log.warning(
                    "host key checking is off for %s: the inventory says "
                    "host_key_checking: false, so a man in the middle would go unnoticed",
                    host.name,
                )
        if ssh.key:
            key_path = os.path.expanduser(ssh.key)
            try:
                options["client_keys"] = [self._client_key(key_path)]
            except (OSError, asyncssh.KeyImportError) as exc:
                raise Unreachable(
                    f"cannot read the SSH key {key_path} for {host.name}: {exc}"
                ) from None
        try:
            conn = await asyncssh.connect(host.reach, **options)
        except asyncssh.HostKeyNotVerifiable as exc:
            assert known_hosts_path is not None
            raise Unreachable(_host_key_message(host, known_hosts_path, exc.reason)) from None
        except asyncssh.PermissionDenied as exc:
            raise Unreachable(
                f"authentication failed for {where}: {exc.reason or 'permission denied'}"
            ) from None
        except asyncssh.DisconnectError as exc:
            raise Unreachable(f"cannot connect to {where}: {exc.reason}") from None
        except TimeoutError:
            raise Unreachable(
                f"cannot connect to {where}: timed out after {ssh.connect_timeout:g}s"
            ) from None
        except OSError as exc:
            raise Unreachable(f"cannot connect to {where}: {_os_reason(exc, host)}") from None
        except (asyncssh.Error, ValueError) as exc:
            raise Unreachable(f"cannot connect to {where}: {exc}") from None
        self.connects += 1
        return conn

    # -- commands ------------------------------------------------------------

    def command_line(
        self,
        host: Host,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        become: bool = False,
        timeout: float | None = None,
    ) -> str:
        """The remote command line for ``argv``: quoted, with sudo, timeout and env as asked."""
        words = [str(a) for a in argv]
        if env:
            bad = [k for k in env if not ENV_NAME_RE.fullmatch(k)]
            if bad:
                raise ValueError(f"invalid environment variable name {bad[0]!r}")
            # env(1) rather than SSH env requests: sshd drops those unless
            # AcceptEnv lists them, and after sudo so that sudo keeps them.
            words = ["env", "--", *(f"{k}={v}" for k, v in env.items()), *words]
        if timeout is not None:
            # The host enforces the time limit itself: OpenSSH ignores signal
            # requests for root sessions, and closing the channel leaves a
            # command that does not write running. timeout(1) kills the
            # command's whole process group: TERM first, so that nix can stop
            # the builders it started in sessions of their own (a KILL leaves
            # them running), then KILL whatever is left.
            words = ["timeout", "-k", _seconds(TERM_GRACE), "-s", "TERM", _seconds(timeout), *words]
        if become or host.ssh.become:
            user = host.ssh.user or getpass.getuser()
            target = host.ssh.become_user
            if user != target:
                words = ["sudo", "-n", "-u", target, "--", *words]
        return shlex.join(words)

    async def run(
        self,
        host: Host,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        become: bool = False,
    ) -> CommandResult:
        args = [str(a) for a in argv]
        if not args:
            return CommandResult(argv=args, rc=127, stderr="empty command")
        try:
            command = self.command_line(host, args, env=env, become=become, timeout=timeout)
        except ValueError as exc:
            return CommandResult(argv=args, rc=2, stderr=str(exc))
        state = self._state(host)
        assert state.channels is not None
        # A stale cached connection (dropped while idle) fails before the
        # command starts; that one is safe to retry once on a new connection.
        for attempt in (1, 2):
            conn = await self._connection(host)
            async with state.channels:
                start = time.monotonic()
                try:
                    return await self._run_channel(conn, args, command, timeout, stdin, start)
                except _ChannelNotOpened as exc:
                    if not conn.is_closed():
                        # Refused on a live connection that other tasks still use.
                        bound = _max_channels(self.host_vars(host))
                        raise Unreachable(
                            f"{host.name} refused a session: {exc} (is sshd's MaxSessions "
                            f"below hlplay_ssh_max_channels, {bound}?)"
                        ) from None
                    self._forget(host, conn)
                    if attempt == 2:
                        raise Unreachable(f"cannot open a session to {host.name}: {exc}") from None
                except _ConnectionDropped as exc:
                    self._forget(host, conn)
                    raise Unreachable(
                        f"connection to {host.name} lost while running {args[0]}: {exc}"
                    ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _run_channel(
        self,
        conn: asyncssh.SSHClientConnection,
        args: list[str],
        command: str,
        timeout: float | None,
        stdin: bytes | None,
        start: float,
    ) -> CommandResult:
        import asyncssh

        try:
            proc = await conn.create_process(command, encoding=None)
        except asyncssh.ChannelOpenError as exc:
            raise _ChannelNotOpened(exc.reason) from None
        except (asyncssh.Error, OSError) as exc:
            raise _ChannelNotOpened(str(exc) or type(exc).__name__) from None
        try:
            if stdin:
                proc.stdin.write(stdin)
            proc.stdin.write_eof()
            # The host's timeout(1) normally ends the command; this one is
            # the backstop for a host that stops answering.
            backstop = None if timeout is None else timeout + TIMEOUT_GRACE
            try:
                out, err = await asyncio.wait_for(proc.communicate(), backstop)
            except TimeoutError:
                out, err = proc.collect_output()
                await _kill(proc)
                return _timed_out(args, out, err, timeout, start)
            except asyncio.CancelledError:
                await _kill(proc)
                raise
            rc = proc.returncode
            if (
                timeout is not None
                and rc in REMOTE_TIMEOUT_RCS
                and time.monotonic() - start >= timeout
            ):
                return _timed_out(args, out, err, timeout, start)
            if rc is None:
                if conn.is_closed():
                    raise _ConnectionDropped("the connection closed")
                rc = -1
            return CommandResult(
                argv=args,
                rc=rc,
                stdout=_text(out),
                stderr=_text(err),
                duration=time.monotonic() - start,
            )
        except (asyncssh.DisconnectError, asyncssh.ConnectionLost, BrokenPipeError) as exc:
            raise _ConnectionDropped(str(exc) or type(exc).__name__) from None
        finally:
            proc.close()

    # -- deploy ---------------------------------------------------------------

    async def reach(self, host: Host) -> None:
        await self._connection(host)

    # -- facts ---------------------------------------------------------------

    async def facts(self, host: Host, *, timeout: float | None = None) -> dict[str, Any]:
        """The facts every host reports (:func:`~hlplay.deploy.facts.collect_facts`)."""
        t = timeout if timeout is not None else 30.0
        await self._connection(host)  # Unreachable once, not once per command
        executor = self.executor_of(host)
        # The deadline gives every command the time left, which the host's
        # timeout(1) enforces; wait_for is the backstop for a silent host.
        ctx = self.context(host, deadline=time.monotonic() + t)
        facts = await asyncio.wait_for(
            collect_facts(
                ctx,
                executor,
                units_dir=self.settings(host).units_dir,
                disk_paths=disk_paths_of(self.host_vars(host)),
            ),
            t + TIMEOUT_GRACE,
        )
        facts["transport"] = self.name
        return facts

    async def close(self) -> None:
        conns = [s.conn for s in self._hosts.values() if s.conn is not None]
        for state in self._hosts.values():
            state.conn = None
        for conn in conns:
            conn.close()
        for conn in conns:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), 5)


class _ChannelNotOpened(Exception):
    """No session channel could be opened: the command never started."""


class _ConnectionDropped(Exception):
    """The connection went away while a command ran: its outcome is unknown."""


async def _kill(proc: asyncssh.SSHClientProcess[bytes]) -> None:
    """Kill the remote command: a KILL signal request, then close the channel."""
    with contextlib.suppress(Exception):
        proc.send_signal("KILL")
    proc.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(proc.wait_closed(), 2)


def _seconds(timeout: float) -> str:
    return f"{max(timeout, 0.01):.3f}".rstrip("0").rstrip(".")


def _timed_out(
    args: list[str],
    out: bytes | str | None,
    err: bytes | str | None,
    timeout: float | None,
    start: float,
) -> CommandResult:
    return CommandResult(
        argv=args,
        rc=-9,
        stdout=_text(out),
        stderr=_text(err) + f"\ntimed out after {timeout:g}s",
        timed_out=True,
        duration=time.monotonic() - start,
    )


def _os_reason(exc: OSError, host: Host) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is sshd running?)"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve {host.reach!r} ({exc.strerror})"
    return exc.strerror or str(exc) or type(exc).__name__


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    if isinstance(data, str):
        return data
    return data.decode("utf-8", "replace")


def _max_channels(hvars: Mapping[str, Any]) -> int:
    value = hvars.get("hlplay_ssh_max_channels", DEFAULT_MAX_CHANNELS)
    try:
        n = int(value)
    except (TypeError, ValueError):
        return DEFAULT_MAX_CHANNELS
    return max(1, n)


def _host_key_message(host: Host, known_hosts: str, reason: str) -> str:
    """Tell a changed host key (dangerous) from a host never seen before."""
    import asyncssh

    port = host.ssh.port
    try:
        matched = asyncssh.read_known_hosts(known_hosts).match(host.reach, "", port)
        listed = bool(matched[0] or matched[1])
    except (OSError, ValueError, asyncssh.Error):
        listed = False
    name = host.reach if port == 22 else f"[{host.reach}]:{port}"
    if listed:
        return (
            f"host key for {host.name} does not match known_hosts ({known_hosts} has a "
            f"different key for {name}); refusing to connect: the host was reinstalled "
            f"or someone is in the middle"
        )
    return (
        f"host key for {host.name} is not in known_hosts ({known_hosts} has no entry "
        f"for {name}); add it (ssh-keyscan) or set host_key_checking: false"
    )


__all__ = ["SshTransport"]
