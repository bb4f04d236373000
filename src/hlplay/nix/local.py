"""Deploy to ``transport: local`` hosts: the Nix executor in-process, commands run here.

The lab and the tests keep several "hosts" on one machine, each with a
profile, state directory and flake of its own, read from the host's merged
variables (host, group and ``all`` vars alike), as the SSH transport reads them:

``hlplay_profile``, ``hlplay_state_dir``, ``hlplay_flake``,
``hlplay_toplevel_attr``, ``hlplay_executor_options`` (a mapping that becomes
the executor's context options: ``activation_env``, ``units_dir``…).

Confirmation works as over SSH (canary mode): :meth:`LocalDeployer.deploy`
returns once each host is activated and waiting; :meth:`confirm` keeps the new
system, :meth:`reject` rolls it back at once, and with neither the host's
watchdog rolls it back when the time is up.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from hlplay.agent.executor import ExecContext, ExecResult
from hlplay.inventory.hostsettings import HostSettings, host_settings
from hlplay.inventory.model import Host, Inventory
from hlplay.nix.executor import NixExecutor, local_runner
from hlplay.protocol.messages import DeployRequest, ProtocolError
from hlplay.transports.base import DeployOutcome, ProgressCallback


class LocalDeployer:
    """Deploy actions for local hosts, with the same calls as a transport."""

    name = "local"

    def __init__(self, inventory: Inventory, *, flake: str | None = None) -> None:
        self.inventory = inventory
        self.flake = flake  # overrides every host's flake (the module's ``flake`` argument)
        self.executor = NixExecutor()
        self._settings: dict[str, HostSettings] = {}

    def context(self, host: Host, progress: ProgressCallback | None = None) -> ExecContext:
        settings = self._settings.get(host.name)
        if settings is None:
            settings = host_settings(self.inventory, host)
            self._settings[host.name] = settings
        options = settings.context_options()
        options.setdefault("confirm_mode", "canary")

        async def report(line: str) -> None:
            if progress is not None:
                maybe = progress(host.name, line)
                if inspect.isawaitable(maybe):
                    await maybe

        return ExecContext(
            hostname=host.name,
            tier=host.tier,
            roles=tuple(host.roles),
            runner=local_runner,
            flake=self.flake or settings.flake,
            profile=settings.profile,
            toplevel_attr=settings.toplevel_attr,
            progress=report,
            state_dir=settings.state_dir,
            options=options,
        )

    async def deploy(
        self,
        hosts: Sequence[Host],
        request: Mapping[str, Any],
        *,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
    ) -> dict[str, DeployOutcome]:
        try:
            req = DeployRequest(
                action=str(request["action"]),
                revision=str(request.get("revision") or "HEAD"),
                id=request.get("id"),
                options=dict(request.get("options") or {}),
            )
            DeployRequest.parse(req.to_json())
        except (KeyError, ProtocolError) as exc:
            message = exc.message if isinstance(exc, ProtocolError) else "request lacks an action"
            return {
                h.name: DeployOutcome(h.name, "rejected", "invalid_request", message) for h in hosts
            }

        async def one(host: Host) -> DeployOutcome:
            ctx = self.context(host, progress)
            return await self._outcome(host, lambda: self.executor.execute(req, ctx), timeout)

        results = await asyncio.gather(*(one(h) for h in hosts))
        return {o.host: o for o in results}

    async def confirm(self, hosts: Sequence[Host], request_id: str) -> dict[str, DeployOutcome]:
        async def one(host: Host) -> DeployOutcome:
            ctx = self.context(host)
            return await self._outcome(host, lambda: self.executor.confirm(request_id, ctx), None)

        return {o.host: o for o in await asyncio.gather(*(one(h) for h in hosts))}

    async def reject(self, hosts: Sequence[Host], request_id: str) -> dict[str, DeployOutcome]:
        async def one(host: Host) -> DeployOutcome:
            ctx = self.context(host)
            return await self._outcome(host, lambda: self.executor.reject(request_id, ctx), None)

        return {o.host: o for o in await asyncio.gather(*(one(h) for h in hosts))}

    async def facts(self, host: Host, *, timeout: float | None = None) -> dict[str, Any]:
        ctx = self.context(host)
        current = await asyncio.wait_for(self.executor.current(ctx), timeout)
        return {
            "hostname": host.name,
            "tier": host.tier,
            "roles": list(host.roles),
            "transport": self.name,
            "executor": self.executor.name,
            "system": current,
            "generation": current.get("generation"),
        }

    async def generations(self, host: Host) -> list[dict[str, Any]]:
        return await self.executor.generations(self.context(host))

    async def _outcome(
        self,
        host: Host,
        call: Callable[[], Awaitable[ExecResult]],
        timeout: float | None,
    ) -> DeployOutcome:
        start = time.monotonic()
        outcome = DeployOutcome(host=host.name, status="failed")
        try:
            result = await asyncio.wait_for(call(), timeout)
        except TimeoutError:
            outcome.error = "timeout"
            outcome.message = f"did not finish within {timeout:g}s"
            return outcome
        except Exception as exc:  # one host's bug must not take the others down
            outcome.error = "internal"
            outcome.message = f"{type(exc).__name__}: {exc}"
            return outcome
        outcome.status = "completed" if result.ok else "failed"
        outcome.error = result.error.value if result.error is not None else None
        outcome.message = result.message
        outcome.data = {
            **result.data,
            "duration": round(time.monotonic() - start, 3),
            "executor": self.executor.name,
            "transport": self.name,
        }
        return outcome
