"""The ``ping`` prerequisite of deploy-all: a listener already deploying fails it.

A real nats-server and two real listeners (noop executor); the first is kept
busy by a slow deploy while the playbook pings both.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from fixtures.nats import make_inventory
from hlplay.engine.api import run_playbook
from hlplay.transports.nats import NatsTransport

pytestmark = pytest.mark.nats


async def test_a_host_already_deploying_fails_ping_and_an_idle_one_answers(
    fleet_factory, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    fleet = fleet_factory(make_inventory([("web1", "test", ("web",)), ("web2", "test", ("web",))]))
    fleet.start_listeners()
    inventory = fleet.inventory_as("admin")
    play = tmp_path / "ping.yml"
    play.write_text(
        yaml.safe_dump(
            [
                {
                    "hosts": "all",
                    "tasks": [
                        {"name": "busy?", "ping": {}, "ignore_errors": True},
                        {"name": "anyway", "ping": {"require_idle": False}},
                    ],
                }
            ]
        )
    )
    transport = NatsTransport(inventory)
    started = asyncio.Event()
    try:
        slow = asyncio.create_task(
            transport.deploy(
                [inventory.hosts["web1"]],
                {"action": "switch", "revision": "slow", "options": {"sleep": 4.0}},
                timeout=30,
                progress=lambda host, line: started.set(),
            )
        )
        await asyncio.wait_for(started.wait(), 10)
        result = await run_playbook(play, inventory)
        assert (await slow)["web1"].status == "completed"
    finally:
        await transport.close()
    plays = result.document["plays"]
    busy, anyway = (t["hosts"] for t in plays[0]["tasks"])
    assert busy["web1"]["failed"] and busy["web1"]["msg"] == (
        "a deploy is already running on this host"
    )
    assert busy["web1"]["facts"]["busy"]
    assert not busy["web2"].get("failed") and busy["web2"]["ping"] == "pong"
    assert all(anyway[h]["ping"] == "pong" for h in ("web1", "web2"))
