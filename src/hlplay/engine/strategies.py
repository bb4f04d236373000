"""How a batch of hosts walks through a play's sections.

``linear``: every host runs a task before any host starts the next one
(lockstep), as in Ansible's default. ``free``: each host runs through the
sections on its own, so a fast host finishes before a slow one starts its
second task. Both are bounded by ``--forks`` and a task's ``throttle``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hlplay.engine.services import PlayDriver
    from hlplay.engine.state import HostState, PlayContext

# A strategy is handed the run as a PlayDriver (the Runner is one), not the
# Runner itself, so this module does not import the runner that imports it.
Strategy = Callable[["PlayDriver", "PlayContext", "Sequence[HostState]"], Awaitable[None]]


async def _sections(runner: PlayDriver, pc: PlayContext, hosts: Sequence[HostState]) -> None:
    for _, items in pc.play.sections():
        await runner.run_items(pc, items, hosts, False)
        if runner.stopping:
            return
        await runner.flush_handlers(pc, hosts)
        if pc.stopped:
            break
    if pc.stopped and runner.force_handlers(pc) and not runner.stopping:
        await runner.flush_handlers(pc, hosts)


async def linear(runner: PlayDriver, pc: PlayContext, batch: Sequence[HostState]) -> None:
    await _sections(runner, pc, batch)


async def free(runner: PlayDriver, pc: PlayContext, batch: Sequence[HostState]) -> None:
    await asyncio.gather(*(_sections(runner, pc, [hs]) for hs in batch))


STRATEGIES: dict[str, Strategy] = {"linear": linear, "free": free}
