"""``run_playbook``: the one entry point the CLI, MCP server and tests call.

    result = await run_playbook("site.yml", "inventory/", limit="tier=test")
    result.exit_code, result.stats, result.document

Loading problems (bad YAML, unknown keyword or module, bad arguments, a host
pattern that matches nothing) raise :class:`hlplay.errors.HlplayError` before
anything runs. Once running, host failures are results, never exceptions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hlplay.engine.events import EventBus, Reporter
from hlplay.engine.jsondoc import JsonCollector
from hlplay.engine.results import HostStats
from hlplay.engine.runner import PreparedPlay, Runner, RunOptions, prepare_plays
from hlplay.inventory.model import Inventory
from hlplay.playbook.loader import load_playbook
from hlplay.playbook.model import Playbook
from hlplay.playbook.templating import default_templar
from hlplay.transports.base import Transport
from hlplay.transports.factory import TransportPool

InventorySource = Inventory | str | Path | Sequence[str | Path] | None


@dataclass
class RunResult:
    """What a run did: the exit code, the recap, and the full JSON document."""

    exit_code: int
    stats: dict[str, HostStats]
    interrupted: bool
    document: dict[str, Any]

    @property
    def failed_hosts(self) -> list[str]:
        return [h for h, s in self.stats.items() if s.failures]

    @property
    def unreachable_hosts(self) -> list[str]:
        return [h for h, s in self.stats.items() if s.unreachable]

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def resolve_inventory(inventory: InventorySource) -> Inventory:
    """An Inventory from an object, path(s), or nothing (only the controller, ``localhost``)."""
    if isinstance(inventory, Inventory):
        return inventory
    if inventory is None:
        return Inventory(hosts={}, groups={})
    from hlplay.inventory.loader import load_inventory

    return load_inventory(inventory)


def plan(
    playbook: str | Path | Playbook,
    inventory: InventorySource = None,
    *,
    limit: str | None = None,
    extra_vars: Mapping[str, Any] | None = None,
) -> tuple[Playbook, Inventory, list[PreparedPlay]]:
    """Load and validate, select every play's hosts; nothing runs (``--list-hosts``)."""
    extra = dict(extra_vars or {})
    templar = default_templar()
    book = (
        playbook
        if isinstance(playbook, Playbook)
        else load_playbook(playbook, extra_vars=extra, templar=templar)
    )
    inv = resolve_inventory(inventory)
    options = RunOptions(limit=limit, extra_vars=extra)
    return book, inv, prepare_plays(book, inv, options, templar)


async def run_playbook(
    playbook: str | Path | Playbook,
    inventory: InventorySource = None,
    *,
    limit: str | None = None,
    extra_vars: Mapping[str, Any] | None = None,
    forks: int = 50,
    check: bool = False,
    diff: bool = False,
    tags: Sequence[str] = (),
    skip_tags: Sequence[str] = (),
    force_handlers: bool = False,
    start_at_task: str | None = None,
    verbosity: int = 0,
    reporters: Sequence[Reporter] = (),
    transports: TransportPool | Mapping[str, Transport] | None = None,
    stop: asyncio.Event | None = None,
    planned: tuple[Playbook, Inventory, list[PreparedPlay]] | None = None,
) -> RunResult:
    """Load, validate and run a playbook over an inventory selection.

    ``reporters`` receive every event (``ConsoleReporter`` for ansible-style
    output); the JSON document is always built and returned. Setting ``stop``
    stops dispatching new work (Ctrl-C): running tasks end, the recap is
    reported and the exit code is 99. ``transports`` replaces the default
    transport pool (a pool is then not closed here) or some of its transports.
    ``planned`` is what :func:`plan` returned for the same arguments: a caller
    that planned already (``--list-hosts``, the MCP policy check) does not
    load and select twice.
    """
    extra = dict(extra_vars or {})
    templar = default_templar()
    if planned is None:
        planned = plan(playbook, inventory, limit=limit, extra_vars=extra)
    book, inv, prepared = planned
    options = RunOptions(
        limit=limit,
        extra_vars=extra,
        forks=forks,
        check=check,
        diff=diff,
        tags=tuple(tags),
        skip_tags=tuple(skip_tags),
        force_handlers=force_handlers,
        start_at_task=start_at_task,
        verbosity=verbosity,
    )
    collector = JsonCollector()
    bus = EventBus([collector, *reporters])
    own_pool = not isinstance(transports, TransportPool)
    pool = (
        transports
        if isinstance(transports, TransportPool)
        else TransportPool(inv, overrides=transports)
    )
    runner = Runner(
        playbook=book,
        plays=prepared,
        inventory=inv,
        options=options,
        bus=bus,
        pool=pool,
        templar=templar,
        stop=stop,
    )
    try:
        code = await runner.run()
    finally:
        if own_pool:
            await pool.close()
    return RunResult(
        exit_code=code,
        stats=dict(runner.stats),
        interrupted=runner.interrupted,
        document=collector.document,
    )
