"""A deploy that restarts the listener running it still ends with a final status.

A new system that changes the listener's own unit, package or keys gets the
listener restarted under it. Here the listener is killed in the middle of the
new system's activation and started again with the same flags, as systemd
would restart it; the new listener takes the run over from its state
directory, finds the new system running, waits for the controller's
confirmation and reports the final status to the same controller.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from fixtures.nats import NatsFleet, build_fleet, make_inventory
from fixtures.nix import NixTestFlake
from hlplay.transports.nats import NatsTransport

pytestmark = pytest.mark.nats


def listener_flags(flake: NixTestFlake, host: str) -> list[str]:
    return [
        "--flake", str(flake.root),
        "--profile", flake.profile(host),
        "--units-dir", str(flake.units_dir(host)),
    ]  # fmt: skip


async def wait_until(predicate: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_the_listener_restarted_by_its_own_deploy_reports_the_run(
    nix_flake: NixTestFlake, tmp_path: Path
) -> None:
    fleet: NatsFleet = build_fleet(make_inventory([("web1", "test", ())]), tmp_path / "fleet")
    flake = nix_flake
    flake.set_host("web1", {"hello": "1.0"}, services=["web.service"])
    rev1 = flake.commit("v1")
    flake.set_host("web1", {"hello": "1.1"}, services=["web.service", "hlplay-listener.service"])
    rev2 = flake.commit("v2: the listener's own unit changes")
    # the state directory is the one the run is kept in: the fixture's per-host one
    flags = listener_flags(flake, "web1")
    listener = fleet.start_listener("web1", *flags, executor="nix")
    transport = NatsTransport(fleet.inventory_as("admin"))
    web1 = fleet.inventory.hosts["web1"]
    confirmations: list[Any] = []

    async def confirm(outcome: Any) -> None:
        confirmations.append(await transport.confirm([web1], outcome.data["request_id"]))

    try:
        first = await transport.deploy([web1], {"action": "switch", "revision": rev1}, timeout=120)
        assert first["web1"].status == "completed", (first["web1"].message, listener.text())
        before = len(flake.activations("web1"))

        flake.hold("web1")
        run = asyncio.create_task(
            transport.deploy(
                [web1],
                {
                    "action": "switch",
                    "revision": rev2,
                    "id": "self-upgrade-1",
                    "options": {"confirm_timeout": 30},
                },
                timeout=120,
                awaiting=confirm,
            )
        )
        await wait_until(
            lambda: len(flake.activations("web1")) > before, "the activation did not start"
        )
        # the new system's activation restarts the listener's unit
        listener.signal(signal.SIGKILL)
        await asyncio.to_thread(listener.proc.wait, 10)
        flake.hold("web1", False)
        restarted = fleet.start_listener("web1", *flags, executor="nix")
        out = (await asyncio.wait_for(run, 120))["web1"]
    finally:
        await transport.close()
        fleet.close()
    text = restarted.text()
    assert "resuming switch" in text, text
    assert out.status == "awaiting_confirm", (out.message, text)
    assert "the listener restarted" in out.message
    [answer] = confirmations
    assert answer["web1"].status == "completed", (answer["web1"].message, text)
    assert answer["web1"].data["confirmed"] is True
    assert flake.current_generation("web1") == 2
    # the activation ran once, to its end: the listener's death did not stop it
    assert flake.activations("web1")[-1] == ("switch", flake.current_path("web1"))
