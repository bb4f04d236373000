"""Running playbooks over local hosts (the controller's own processes) in tests."""

from __future__ import annotations

import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from hlplay.engine.api import RunResult, run_playbook
from hlplay.engine.events import Event, HostResult
from hlplay.inventory.loader import load_inventory
from hlplay.inventory.model import Inventory


class Recorder:
    """A reporter that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def handle(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def results(self, task: str | None = None) -> list[HostResult]:
        return [e for e in self.of(HostResult) if task is None or e.task.name == task]

    def status(self, task: str) -> dict[str, str]:
        return {e.host: e.status for e in self.results(task)}

    def ran(self, task: str) -> list[str]:
        return [e.host for e in self.results(task)]


RunFn = Callable[..., Awaitable[tuple[RunResult, Recorder]]]


@pytest.fixture
def make_inventory(tmp_path: Path) -> Callable[..., Inventory]:
    def make(hosts: int | dict[str, dict[str, Any]] = 3, **top: Any) -> Inventory:
        if isinstance(hosts, int):
            hosts = {f"h{i}": {} for i in range(1, hosts + 1)}
        data: dict[str, Any] = {"hosts": {}}
        for name, spec in hosts.items():
            data["hosts"][name] = {"tier": "test", "transport": "local", **spec}
        data.update(top)
        path = tmp_path / "inventory.yml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return load_inventory(path)

    return make


@pytest.fixture
def run_pb(tmp_path: Path, make_inventory: Callable[..., Inventory]) -> RunFn:
    async def run(
        text: str, inventory: Inventory | int | None = 3, **kwargs: Any
    ) -> tuple[RunResult, Recorder]:
        path = tmp_path / "playbook.yml"
        path.write_text(textwrap.dedent(text))
        if isinstance(inventory, int):
            inventory = make_inventory(inventory)
        rec = Recorder()
        reporters = [rec, *kwargs.pop("reporters", [])]
        result = await run_playbook(path, inventory, reporters=reporters, **kwargs)
        return result, rec

    return run
