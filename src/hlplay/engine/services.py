"""What the task executor and the strategies need from the run, as protocols.

:class:`~hlplay.engine.runner.Runner` provides both. Naming the services here,
below the runner, lets ``executor`` and ``strategies`` be written against them
without importing ``runner`` (which imports them): no cycle, not even one
hidden under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from hlplay.engine.events import EventBus, TaskInfo
from hlplay.engine.results import HostStats
from hlplay.engine.scope import PlayScope
from hlplay.engine.state import HostState, PlayContext
from hlplay.inventory.model import Inventory
from hlplay.playbook.model import Item, Task
from hlplay.playbook.templating import Templar
from hlplay.transports.factory import TransportPool


class RunServices(Protocol):
    """The run as the task executor sees it: shared state and small services."""

    inventory: Inventory
    bus: EventBus
    pool: TransportPool
    templar: Templar
    forks: asyncio.Semaphore
    run_state: dict[str, Any]
    scope: PlayScope

    @property
    def stopping(self) -> bool:
        """Ctrl-C was pressed: dispatch no new work."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep, but wake at once on Ctrl-C."""
        ...

    async def checkpoint(self) -> None:
        """Let the event loop run, now and then, in work that may never wait."""
        ...

    def stats_for(self, host: str) -> HostStats:
        """The recap counters for ``host``."""
        ...

    def task_info(self, pc: PlayContext, task: Task) -> TaskInfo:
        """The task as reported (its name templated once)."""
        ...


class PlayDriver(Protocol):
    """The run as a strategy sees it: run items, flush handlers, know when to stop."""

    @property
    def stopping(self) -> bool:
        """Ctrl-C was pressed: dispatch no new work."""
        ...

    async def run_items(
        self, pc: PlayContext, items: Sequence[Item], hosts: Sequence[HostState], rescuable: bool
    ) -> None:
        """Run a section's items (tasks and blocks) on ``hosts``."""
        ...

    async def flush_handlers(self, pc: PlayContext, hosts: Sequence[HostState]) -> None:
        """Run notified handlers once each, in definition order."""
        ...

    def force_handlers(self, pc: PlayContext) -> bool:
        """Whether handlers run even after a failure stopped the play."""
        ...
