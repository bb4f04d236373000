"""Executors: what the listener (or the SSH transport) does for a deploy request.

An executor performs one request on one host through a *command runner*, so
the same executor serves the listener (commands run locally on the host) and
the SSH transport (commands run over SSH from the controller). Executors are
chosen by name (``hlplay listen --executor NAME``) from :data:`EXECUTORS`.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from hlplay.proc import CommandRunner
from hlplay.protocol.messages import DeployRequest, ErrorCode

#: Reports one progress line (the listener rate-limits what it publishes).
Progress = Callable[[str], Awaitable[None]]
#: Receives the state of a run about to activate (see :meth:`Executor.resume`).
Checkpoint = Callable[[dict[str, Any]], Awaitable[None]]
async def _no_progress(line: str) -> None:
    return None


async def _no_checkpoint(state: dict[str, Any]) -> None:
    return None


@dataclass
class ExecContext:
    """What an executor knows about the host it acts on."""

    hostname: str
    tier: str
    roles: tuple[str, ...]
    runner: CommandRunner
    flake: str = "."  # flake URL of the configuration, without ?ref and #attr
    profile: str = "/nix/var/nix/profiles/system"
    toplevel_attr: str = "nixosConfigurations.{host}.config.system.build.toplevel"
    progress: Progress = _no_progress
    state_dir: str | None = None  # where the executor may keep state (revision file…)
    options: dict[str, Any] = field(default_factory=dict)
    #: Told what an activation is about to change, before it starts: a listener
    #: keeps it, so that the listener the new system starts can finish the run.
    checkpoint: Checkpoint = _no_checkpoint


@dataclass
class ExecResult:
    ok: bool
    error: ErrorCode | None = None
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)  # generation, revision, diff…


class Executor(ABC):
    name: str = "abstract"

    @abstractmethod
    async def execute(self, request: DeployRequest, ctx: ExecContext) -> ExecResult:
        """Perform ``request``; never raise for an ordinary failure, return it."""

    async def current(self, ctx: ExecContext) -> dict[str, Any]:
        """Facts about the deployed system: generation, revision, store path."""
        return {}

    async def generations(self, ctx: ExecContext) -> list[dict[str, Any]]:
        """Every generation of the system profile, oldest first."""
        rows = (await self.current(ctx)).get("generation_list") or []
        return list(rows)

    async def confirm(self, request_id: str, ctx: ExecContext) -> ExecResult:
        """Keep the activation of ``request_id``, armed and waiting (magic rollback)."""
        return ExecResult(
            ok=False,
            error=ErrorCode.NOT_AWAITING,
            message=f"no activation of {request_id} waits for confirmation",
        )

    async def reject(self, request_id: str, ctx: ExecContext) -> ExecResult:
        """Withdraw the waiting activation of ``request_id``: roll back now."""
        return await self.confirm(request_id, ctx)

    async def resume(self, state: dict[str, Any], ctx: ExecContext) -> ExecResult:
        """Finish a run whose runner died during activation (its last checkpoint).

        Where the host is now decides: the new system runs (wait for the
        controller's confirmation again, as the run would have), or it does not
        (roll back, and say the run was interrupted).
        """
        return ExecResult(
            ok=False,
            error=ErrorCode.INTERRUPTED,
            message="the listener stopped during the run; its outcome is unknown",
        )


#: The pipeline every host runs unless told otherwise: listener, SSH and local.
DEFAULT_EXECUTOR = "nix"
#: name -> "module:Class", imported on use. ``noop`` changes nothing (benchmarks, tests).
EXECUTORS: dict[str, str] = {
    "nix": "hlplay.deploy.nix:NixExecutor",
    "noop": "hlplay.deploy.noop:NoopExecutor",
}


def load_executor(name: str) -> Executor:
    spec = EXECUTORS.get(name)
    if spec is None:
        raise ValueError(f"unknown executor {name!r}; expected one of {', '.join(EXECUTORS)}")
    module_name, cls_name = spec.split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    executor = cls()
    assert isinstance(executor, Executor)
    return executor
