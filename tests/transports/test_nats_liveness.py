"""Unreachable listeners are declared by a liveness probe, not at the deadline.

Real nats-server, real ``hlplay listen`` processes: a listener that is not
running, one SIGKILLed mid-run, and one busy but alive.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from fixtures.nats import NatsFleet, make_inventory
from hlplay.errors import InventoryError
from hlplay.inventory.loader import load_inventory
from hlplay.inventory.model import Inventory
from hlplay.transports.nats import LIVENESS_GRACE, NatsTransport

pytestmark = pytest.mark.nats


def with_liveness(inv: Inventory, seconds: float) -> Inventory:
    nats = replace(inv.settings.nats, liveness=seconds)
    return replace(inv, settings=replace(inv.settings, nats=nats), cache={})


async def test_a_host_of_the_tier_subject_without_a_listener_is_declared_within_seconds(
    fleet_factory: Callable[..., NatsFleet],
) -> None:
    fleet = fleet_factory(
        make_inventory([("web1", "test", ()), ("web2", "test", ()), ("web3", "test", ())])
    )
    # web3's listener is not running: the tier subject has subscribers, so no 503 says so
    fleet.start_listeners(["web1", "web2"])
    transport = NatsTransport(fleet.inventory_as("admin"))
    try:
        start = time.monotonic()
        out = await transport.deploy(
            list(fleet.inventory.hosts.values()),
            {"action": "switch", "revision": "main", "options": {"sleep": 1.0}},
            timeout=120,
        )
        took = time.monotonic() - start
    finally:
        await transport.close()
    assert transport.last_subjects == ["deploy.test.all"]
    assert took < 10, f"declared after {took:.1f}s"
    gone = out["web3"]
    assert (gone.status, gone.error) == ("unreachable", "unreachable"), gone
    assert gone.message.startswith(
        "no listener answered on deploy.test.all nor on its facts subject within "
    ), gone.message
    assert {out[h].status for h in ("web1", "web2")} == {"completed"}


async def test_a_listener_killed_mid_run_is_declared_long_before_the_deadline(
    fleet_factory: Callable[..., NatsFleet],
) -> None:
    fleet = fleet_factory(make_inventory([("gone", "test", ())]))
    fleet.start_listener("gone")
    transport = NatsTransport(fleet.inventory_as("admin"))
    killed: list[float] = []

    def on_progress(host: str, line: str) -> None:
        if not killed:
            fleet.listeners["gone"].signal(signal.SIGKILL)
            killed.append(time.monotonic())

    try:
        out = await transport.deploy(
            [fleet.inventory.hosts["gone"]],
            {"action": "switch", "revision": "main", "options": {"sleep": 30}},
            timeout=120,
            progress=on_progress,
        )
        took = time.monotonic() - killed[0]
    finally:
        await transport.close()
    silence = LIVENESS_GRACE * 5
    # declared after the silence and two unanswered probes, not at the 120 s deadline
    assert silence <= took < 25, f"declared {took:.1f}s after the kill"
    assert out["gone"].status == "unreachable", out["gone"]
    assert "went away during the deploy" in out["gone"].message
    assert "2 probes of its facts subject unanswered" in out["gone"].message


async def test_a_busy_listener_that_answers_facts_is_not_declared(
    fleet_factory: Callable[..., NatsFleet], caplog: pytest.LogCaptureFixture
) -> None:
    fleet = fleet_factory(make_inventory([("busy", "test", ())]))
    fleet.start_listener("busy")
    # probed after 5 s of silence, three seconds before the run ends
    transport = NatsTransport(with_liveness(fleet.inventory_as("admin"), 1.0))
    caplog.set_level(logging.DEBUG, logger="hlplay.transport.nats")
    try:
        out = await transport.deploy(
            [fleet.inventory.hosts["busy"]],
            {"action": "switch", "revision": "main", "options": {"sleep": 8}},
            timeout=120,
        )
    finally:
        await transport.close()
    assert out["busy"].status == "completed", out["busy"]
    assert "liveness probe of busy: its listener answers" in caplog.text


def test_the_liveness_setting(tmp_path: Path) -> None:
    (tmp_path / "hosts.yml").write_text("hlplay: {nats: {liveness: 1.5}}\nhosts: {h1: {}}\n")
    assert load_inventory(tmp_path).settings.nats.liveness == 1.5
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "hosts.yml").write_text("hlplay: {nats: {liveness: 0}}\nhosts: {h1: {}}\n")
    with pytest.raises(InventoryError, match="positive number of seconds"):
        load_inventory(bad)
