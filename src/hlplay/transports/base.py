"""The transport interface every way of reaching a host implements.

A transport runs commands on a host (``run``) and performs deploy actions
(``deploy``), returning results the engine and modules understand. Transports
never raise for a failed command: a non-zero exit is a result. They raise
:class:`Unreachable` when the host cannot be reached at all, which the engine
reports as *unreachable*, distinct from *failed*.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hlplay.inventory.model import Host
from hlplay.proc import CommandResult
from hlplay.protocol.messages import DeployRequest, ProtocolError

# CommandResult lives in hlplay.proc (the bottom layer); it is re-exported here
# so ``from hlplay.transports.base import CommandResult`` keeps working.
__all__ = [
    "AWAITING_CONFIRM",
    "AwaitingCallback",
    "CommandResult",
    "DeployOutcome",
    "NotSupported",
    "ProgressCallback",
    "Transport",
    "Unreachable",
]


class Unreachable(Exception):
    """The host could not be reached (connection refused, timed out, no listener)."""


class NotSupported(Exception):
    """The transport cannot do this (e.g. arbitrary commands over NATS)."""


# A progress callback for long actions: receives one line of output at a time.
ProgressCallback = Callable[[str, str], Awaitable[None] | None]  # (host, line)
# Called once per host as soon as it activated and waits for confirmation, so
# the controller confirms it while slower hosts of the same deploy still build.
AwaitingCallback = Callable[["DeployOutcome"], Awaitable[None] | None]


@dataclass
class DeployOutcome:
    """The final word on a deploy action for one host."""

    host: str
    #: "completed" | "failed" | "rejected" | "unreachable", or "awaiting_confirm":
    #: activated, the host's watchdog armed; ``Transport.confirm`` keeps it.
    status: str
    error: str | None = None
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)  # generation, revision, diff, duration…
    progress: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "completed"

    @property
    def awaiting(self) -> bool:
        return self.status == AWAITING_CONFIRM


#: The outcome status of a host whose activation waits for ``Transport.confirm``.
AWAITING_CONFIRM = "awaiting_confirm"


class Transport(ABC):
    """How the engine reaches hosts of one kind. One instance serves many hosts."""

    name: str = "abstract"

    @abstractmethod
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
        """Run ``argv`` on ``host`` (never through a shell unless argv says so)."""

    async def deploy(
        self,
        hosts: Sequence[Host],
        request: DeployRequest | Mapping[str, Any],
        *,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
        awaiting: AwaitingCallback | None = None,
    ) -> dict[str, DeployOutcome]:
        """Perform a deploy action on ``hosts``, all at once; one outcome per host.

        A mapping is validated here, once, as a listener validates a message;
        an invalid request is ``rejected`` for every host and nothing is sent.
        """
        from hlplay.protocol.messages import as_request

        try:
            req = as_request(request)
        except ProtocolError as exc:
            return {
                h.name: DeployOutcome(h.name, "rejected", exc.code.value, exc.message)
                for h in hosts
            }
        return await self.deploy_request(
            hosts, req, timeout=timeout, progress=progress, awaiting=awaiting
        )

    async def deploy_request(
        self,
        hosts: Sequence[Host],
        request: DeployRequest,
        *,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
        awaiting: AwaitingCallback | None = None,
    ) -> dict[str, DeployOutcome]:
        """:meth:`deploy` with a request already validated."""
        raise NotSupported(f"the {self.name} transport does not deploy")

    async def confirm(
        self, hosts: Sequence[Host], request_id: str, *, timeout: float | None = None
    ) -> dict[str, DeployOutcome]:
        """Keep the activation of ``request_id`` (magic rollback): ``completed`` per
        host that kept it, ``failed`` (with why: too late, rolled back) otherwise."""
        raise NotSupported(f"the {self.name} transport cannot confirm")

    async def reject(
        self, hosts: Sequence[Host], request_id: str, *, timeout: float | None = None
    ) -> dict[str, DeployOutcome]:
        """Withdraw the activation of ``request_id``: the hosts roll back now."""
        raise NotSupported(f"the {self.name} transport cannot reject")

    async def facts(self, host: Host, *, timeout: float | None = None) -> dict[str, Any]:
        """Read-only facts about a host (failed units, load, memory, disk, generation)."""
        raise NotSupported(f"the {self.name} transport has no fact query")

    async def generations(
        self, host: Host, *, timeout: float | None = None
    ) -> list[dict[str, Any]]:
        """The host's system generations, oldest first, read on the host."""
        facts = await self.facts(host, timeout=timeout)
        system = facts.get("system")
        rows = system.get("generation_list") if isinstance(system, dict) else None
        if not isinstance(rows, list):
            raise NotSupported(f"{host.name}: its facts carry no generation list")
        return [dict(r) for r in rows if isinstance(r, dict)]

    async def close(self) -> None:
        """Release connections; called once when the run ends."""
        return None
