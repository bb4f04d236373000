"""Deploys for hosts without a listener: the host-side pipeline, driven from here.

SSH hosts and ``transport: local`` hosts have no listener of their own, so
the controller runs the executor itself and every command it issues goes to
the host through the transport's :meth:`~hlplay.transports.base.Transport.run`.
The two differ only in how a command reaches the host; everything else, the
context, the time limits, the outcome, confirm and reject, is this class and
:mod:`hlplay.deploy.harness`, the code the listener runs too.

Activation waits for confirmation as a canary: the executor arms the host's
watchdog and returns (``awaiting_confirm``), and :meth:`confirm` keeps the new
system, :meth:`reject` rolls it back now; with neither the host rolls back by
itself when the time is up.

One run at a time per host, as on a listener: every deploy takes the host's
own lock (:mod:`hlplay.deploy.hostlock`) first and keeps it until the run
ends, or, for a run awaiting confirmation, until confirm, reject or the end
of the confirmation window; a second controller meanwhile is ``rejected``
with ``already_running``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Sequence
from typing import Any

from hlplay.deploy import harness, hostlock
from hlplay.deploy.contract import (
    DEFAULT_EXECUTOR,
    ExecContext,
    ExecResult,
    Executor,
    load_executor,
)
from hlplay.inventory.hostsettings import HostSettings, host_settings
from hlplay.inventory.model import Host, Inventory
from hlplay.proc import CommandResult, CommandRunner
from hlplay.protocol.messages import DeployRequest, ErrorCode
from hlplay.transports.base import (
    AWAITING_CONFIRM,
    AwaitingCallback,
    DeployOutcome,
    ProgressCallback,
    Transport,
    Unreachable,
)

#: How long confirming or rejecting one host may take by default (a rejection
#: rolls back, which activates the old system).
CONFIRM_TIMEOUT = 30.0
REJECT_TIMEOUT = 120.0
#: Executors that touch nothing on the host (their state is the controller's)
#: and so need no lock there: many test hosts share one machine's paths.
LOCKLESS_EXECUTORS = frozenset({"noop"})


class DirectTransport(Transport):
    """A transport that runs deploy actions here, commands on the host."""

    def __init__(self, inventory: Inventory | None = None) -> None:
        self.inventory = inventory
        self._executors: dict[str, Executor] = {}
        self._settings: dict[str, HostSettings] = {}
        #: the flake of every host's configuration, overriding its own (the
        #: ``nixos_rebuild`` module's ``flake`` argument)
        self.flake: str | None = None

    # -- what a subclass provides ---------------------------------------------------

    async def reach(self, host: Host) -> None:
        """Raise :class:`Unreachable` when ``host`` cannot be reached at all."""
        return None

    def host_vars(self, host: Host) -> dict[str, Any] | None:
        """The host's merged variables, when the subclass keeps them cached."""
        return None

    # -- the host's pipeline ------------------------------------------------------

    def settings(self, host: Host) -> HostSettings:
        found = self._settings.get(host.name)
        if found is None:
            if self.inventory is None:
                raise ValueError(f"the {self.name} transport has no inventory to deploy from")
            found = host_settings(self.inventory, host, self.host_vars(host))
            self._settings[host.name] = found
        return found

    def executor_of(self, host: Host) -> Executor:
        executor = self._executors.get(host.name)
        if executor is None:
            # One executor per host for the transport's life, as a listener
            # keeps one for its own: what it learns about the host carries over.
            executor = load_executor(self.settings(host).executor or DEFAULT_EXECUTOR)
            self._executors[host.name] = executor
        return executor

    def context(
        self,
        host: Host,
        *,
        progress: ProgressCallback | None = None,
        lines: list[str] | None = None,
        deadline: float | None = None,
    ) -> ExecContext:
        """The executor's view of ``host``: its settings, commands sent through :meth:`run`."""
        settings = self.settings(host)

        async def runner(argv: Sequence[str], timeout: float | None) -> CommandResult:
            # Every command gets the time left, so that when the run gives up,
            # the host's own timeout ends a hung build there too.
            if deadline is not None:
                left = max(deadline - time.monotonic(), 0.01)
                timeout = left if timeout is None else min(timeout, left)
            return await self.run(host, argv, timeout=timeout)

        async def report(line: str) -> None:
            if lines is not None:
                lines.append(line)
            if progress is not None:
                maybe = progress(host.name, line)
                if inspect.isawaitable(maybe):
                    await maybe

        return ExecContext(
            hostname=host.name,
            tier=host.tier,
            roles=tuple(host.roles),
            runner=runner,
            flake=self.flake or settings.flake,
            profile=settings.profile,
            toplevel_attr=settings.toplevel_attr,
            progress=report,
            state_dir=settings.state_dir,
            options=settings.context_options(),
        )

    # -- deploy, confirm, reject ----------------------------------------------------

    async def deploy_request(
        self,
        hosts: Sequence[Host],
        request: DeployRequest,
        *,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
        awaiting: AwaitingCallback | None = None,
    ) -> dict[str, DeployOutcome]:
        async def one(host: Host) -> DeployOutcome:
            out = await deploy_one(host)
            if out.awaiting and awaiting is not None:
                maybe = awaiting(out)
                if inspect.isawaitable(maybe):
                    await maybe
            return out

        async def deploy_one(host: Host) -> DeployOutcome:
            lines: list[str] = []
            deadline = None if timeout is None else time.monotonic() + timeout
            try:
                executor = self.executor_of(host)
                ctx = self.context(host, progress=progress, lines=lines, deadline=deadline)
            except ValueError as exc:
                return DeployOutcome(host.name, "failed", "invalid_request", str(exc))
            try:
                # Connecting first tells an unreachable host from a failed deploy.
                await self.reach(host)
                lock = await self.lock(host, executor, request, ctx, timeout)
            except Unreachable as exc:
                return DeployOutcome(host.name, "unreachable", None, str(exc), progress=lines)
            except hostlock.LockBusy as exc:
                return DeployOutcome(
                    host.name, "rejected", ErrorCode.ALREADY_RUNNING.value, exc.message,
                    progress=lines,
                )  # fmt: skip
            except hostlock.LockError as exc:
                return DeployOutcome(
                    host.name, "failed", ErrorCode.EXEC_FAILED.value,
                    f"cannot take the host's lock: {exc}", progress=lines,
                )  # fmt: skip
            result: ExecResult | None = None
            try:
                result = await harness.execute(executor, request, ctx, timeout=timeout)
            except Unreachable as exc:
                return DeployOutcome(host.name, "unreachable", None, str(exc), progress=lines)
            finally:
                if lock is not None:
                    await self._after_run(lock, request, ctx, result)
            return self.outcome(host, result, lines)

        results = await asyncio.gather(*(one(h) for h in hosts))
        return {o.host: o for o in results}

    async def lock(
        self,
        host: Host,
        executor: Executor,
        request: DeployRequest,
        ctx: ExecContext,
        timeout: float | None,
    ) -> hostlock.HostLock | None:
        """Take ``host``'s own lock for ``request`` (None: the executor needs none).

        Every action locks, read-only ones too, as a listener takes one request
        at a time: a build or diff beside a switch reads a profile in flux.
        """
        if executor.name in LOCKLESS_EXECUTORS:
            return None
        return await hostlock.acquire(
            self._lock_runner(host),
            hostname=host.name,
            profile=ctx.profile,
            state_dir=ctx.state_dir,
            request=request,
            time_limit=timeout,
            note=ctx.progress,
        )

    def _lock_runner(self, host: Host) -> CommandRunner:
        # Not the context's runner: that one stops at the run's deadline, and a
        # run that timed out or was cancelled must still release its lock.
        async def runner(argv: Sequence[str], timeout: float | None) -> CommandResult:
            return await self.run(host, argv, timeout=timeout)

        return runner

    async def _after_run(
        self,
        lock: hostlock.HostLock,
        request: DeployRequest,
        ctx: ExecContext,
        result: ExecResult | None,
    ) -> None:
        hold = await _hold_after(lock, request, ctx, result)
        if hold is not None:
            with contextlib.suppress(Exception):
                if await lock.hold_for_confirmation(*hold):
                    return
        await lock.release()

    async def confirm(
        self, hosts: Sequence[Host], request_id: str, *, timeout: float | None = None
    ) -> dict[str, DeployOutcome]:
        return await self._settle(hosts, "confirm", request_id, timeout or CONFIRM_TIMEOUT)

    async def reject(
        self, hosts: Sequence[Host], request_id: str, *, timeout: float | None = None
    ) -> dict[str, DeployOutcome]:
        return await self._settle(hosts, "reject", request_id, timeout or REJECT_TIMEOUT)

    async def _settle(
        self, hosts: Sequence[Host], what: harness.Settlement, request_id: str, timeout: float
    ) -> dict[str, DeployOutcome]:
        async def one(host: Host) -> DeployOutcome:
            try:
                executor = self.executor_of(host)
                ctx = self.context(host)
                await self.reach(host)
                try:
                    result = await harness.settle(executor, what, request_id, ctx, timeout=timeout)
                finally:
                    if executor.name not in LOCKLESS_EXECUTORS:
                        await hostlock.release_request(
                            self._lock_runner(host), ctx.profile, ctx.state_dir, request_id
                        )
            except Unreachable as exc:
                return DeployOutcome(host.name, "unreachable", None, str(exc))
            except ValueError as exc:
                return DeployOutcome(host.name, "failed", "invalid_request", str(exc))
            return self.outcome(host, result)

        results = await asyncio.gather(*(one(h) for h in hosts))
        return {o.host: o for o in results}

    async def generations(
        self, host: Host, *, timeout: float | None = None
    ) -> list[dict[str, Any]]:
        executor = self.executor_of(host)
        await self.reach(host)
        rows = await asyncio.wait_for(executor.generations(self.context(host)), timeout)
        return [dict(r) for r in rows]

    def outcome(
        self, host: Host, result: ExecResult, lines: list[str] | None = None
    ) -> DeployOutcome:
        """A host's :class:`DeployOutcome` from its executor's result."""
        if result.ok:
            status = AWAITING_CONFIRM if result.data.get("awaiting_confirm") else "completed"
        else:
            status = "failed"
        return DeployOutcome(
            host=host.name,
            status=status,
            error=result.error.value if result.error is not None else None,
            message=result.message,
            data={**result.data, "transport": self.name},
            progress=list(lines or []),
        )


async def _hold_after(
    lock: hostlock.HostLock, request: DeployRequest, ctx: ExecContext, result: ExecResult | None
) -> tuple[float, str | None] | None:
    """How long the lock outlives the run, and for which request: None, not at all."""
    if result is None:
        return None
    if result.ok and result.data.get("awaiting_confirm"):
        # Held while the host waits for its confirmation, as a listener holds
        # its run; confirm or reject releases it, else the window's end.
        window = result.data.get("confirm_timeout")
        rid = result.data.get("request_id")
        return (
            float(window) if isinstance(window, int | float) else 0.0,
            rid if isinstance(rid, str) else request.id,
        )
    window = request.options.get("confirm_timeout")
    if (
        result.error is not ErrorCode.TIMEOUT
        or request.action not in ("switch", "test")
        or isinstance(window, bool)
        or not isinstance(window, int | float)
        or not window > 0
    ):
        return None
    # The run gave up, perhaps mid-activation: a watchdog armed before it acts
    # by its first deadline, and until then the host is not free.
    from hlplay.deploy.nix import HEALTH_ALLOWANCE
    from hlplay.nix import system

    if request.id is not None:
        with contextlib.suppress(Exception):
            canary = system.canary_path(ctx.profile, ctx.state_dir, request.id)
            if (await lock.runner(["test", "-e", canary], hostlock.LOCK_TIMEOUT)).rc != 0:
                return None
    activate = request.options.get("activate_timeout")
    if isinstance(activate, bool) or not isinstance(activate, int | float):
        activate = system.DEFAULT_ACTIVATE_TIMEOUT
    health = HEALTH_ALLOWANCE if request.options.get("health") else 0.0
    return float(activate) + health + float(window), request.id
