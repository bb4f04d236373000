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

# CommandResult lives in hlplay.proc (the bottom layer); it is re-exported here
# so ``from hlplay.transports.base import CommandResult`` keeps working.
__all__ = [
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


@dataclass
class DeployOutcome:
    """The final word on a deploy action for one host."""

    host: str
    status: str  # "completed" | "failed" | "rejected" | "unreachable"
    error: str | None = None
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)  # generation, revision, diff, duration…
    progress: list[str] = field(default_factory=list)


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
        request: Mapping[str, Any],
        *,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
    ) -> dict[str, DeployOutcome]:
        """Perform a deploy action (a protocol request) on ``hosts``, all at once."""
        raise NotSupported(f"the {self.name} transport does not deploy")

    async def facts(self, host: Host, *, timeout: float | None = None) -> dict[str, Any]:
        """Read-only facts about a host (failed units, load, memory, disk, generation)."""
        raise NotSupported(f"the {self.name} transport has no fact query")

    async def close(self) -> None:
        """Release connections; called once when the run ends."""
        return None
