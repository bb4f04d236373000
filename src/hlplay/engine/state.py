"""Run-time state: per host (facts, failures, notifications) and per play."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from hlplay.inventory.model import Host
from hlplay.playbook.model import Play


@dataclass(eq=False)
class HostState:
    """One host across the whole run. Facts and registered results persist across plays."""

    host: Host
    facts: dict[str, Any] = field(default_factory=dict)
    failed: bool = False
    unreachable: bool = False
    ended: bool = False  # meta: end_host (this play only)
    notified: set[int] = field(default_factory=set)  # handler task ids

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def active(self) -> bool:
        return not (self.failed or self.unreachable or self.ended)


@dataclass(eq=False)
class PlayContext:
    """One play's run: its hosts, the current batch and why it stopped, if it did."""

    play: Play
    states: list[HostState]
    check_mode: bool
    diff_mode: bool
    batch: list[HostState] = field(default_factory=list)
    batch_failed: set[str] = field(default_factory=set)
    aborted: str = ""  # why the play (and the playbook) stops: any_errors_fatal, max_fail …
    ended: bool = False  # meta: end_play — the play stops, the playbook goes on
    batch_ended: bool = False
    fatal: bool = False  # a task failed under any_errors_fatal
    throttles: dict[int, asyncio.Semaphore] = field(default_factory=dict)
    started_tasks: set[int] = field(default_factory=set)
    run_once: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    active_names: list[str] = field(default_factory=list)  # ansible_play_hosts, kept live
    batch_names: list[str] = field(default_factory=list)  # ansible_play_batch, kept live

    @property
    def stopped(self) -> bool:
        return bool(self.aborted) or self.ended or self.batch_ended

    def throttle(self, task_id: int, limit: int) -> asyncio.Semaphore:
        sem = self.throttles.get(task_id)
        if sem is None:
            sem = self.throttles[task_id] = asyncio.Semaphore(limit)
        return sem

    def host_gone(self, name: str) -> None:
        if name in self.active_names:
            self.active_names.remove(name)
        if name in self.batch_names:
            self.batch_names.remove(name)
