"""A run that times out during activation stops waiting; it never kills the activation.

The host's watchdog, armed before the activation, then rolls an unconfirmed
system back by itself, and the report says where the host is heading.
"""

from __future__ import annotations

import asyncio
import time

from fixtures.nix import NixTestFlake
from hlplay.transports.local import LocalTransport


async def test_a_run_timeout_mid_activation_leaves_the_host_to_its_watchdog(
    nix_flake: NixTestFlake,
) -> None:
    flake = nix_flake
    flake.set_host("web1", {"hello": "1.0"}, services=["web"])
    rev1 = flake.commit("v1")
    flake.set_host("web1", {"hello": "1.1"}, services=["web"])
    rev2 = flake.commit("v2")
    inv = flake.inventory(["web1"])
    web1 = inv.hosts["web1"]
    first = await LocalTransport(inv).deploy([web1], {"action": "switch", "revision": rev1})
    assert first["web1"].status == "completed", first["web1"].message
    before = len(flake.activations("web1"))

    flake.hold("web1")
    run = asyncio.create_task(
        LocalTransport(inv).deploy(
            [web1],
            {
                "action": "switch",
                "revision": rev2,
                "id": "timeout-1",
                "options": {"confirm_timeout": 1, "activate_timeout": 3},
            },
            timeout=2,
        )
    )
    deadline = time.monotonic() + 60
    while len(flake.activations("web1")) <= before:
        assert time.monotonic() < deadline, "the activation did not start"
        await asyncio.sleep(0.05)
    out = (await run)["web1"]
    flake.hold("web1", False)
    assert (out.status, out.error) == ("failed", "timeout"), out.message
    assert "the activation of" in out.message and "had begun and runs on" in out.message
    assert "rolls it back to generation 1" in out.message
    assert out.data["activation"]["old_generation"] == 1
    # the activation was not killed: it ran to its end, then the watchdog rolled back
    deadline = time.monotonic() + 20
    while flake.current_generation("web1") != 1 or flake.generations("web1") != [1]:
        assert time.monotonic() < deadline, "the watchdog did not roll the host back"
        await asyncio.sleep(0.1)
    acts = flake.activations("web1")
    assert [a for a, _ in acts[before:]] == ["switch", "switch"]  # the new one, then back
    facts = await LocalTransport(inv).facts(web1)
    assert facts["generation"] == 1  # the next run sees where the host is


async def test_an_activation_timeout_with_a_watchdog_does_not_roll_back_under_it(
    nix_flake: NixTestFlake,
) -> None:
    flake = nix_flake
    flake.set_host("web1", {"hello": "1.0"}, services=["web"])
    rev1 = flake.commit("v1")
    flake.set_host("web1", {"hello": "1.1"}, services=["web"])
    rev2 = flake.commit("v2")
    inv = flake.inventory(["web1"])
    web1 = inv.hosts["web1"]
    assert (await LocalTransport(inv).deploy([web1], {"action": "switch", "revision": rev1}))[
        "web1"
    ].ok
    flake.hold("web1")
    try:
        out = (
            await LocalTransport(inv).deploy(
                [web1],
                {
                    "action": "switch",
                    "revision": rev2,
                    "id": "slow-activation",
                    "options": {"confirm_timeout": 1, "activate_timeout": 1},
                },
                timeout=30,
            )
        )["web1"]
    finally:
        flake.hold("web1", False)
    assert (out.status, out.error) == ("failed", "timeout"), out.message
    assert "runs on" in out.message and "watchdog rolls it back to generation 1" in out.message
    assert "rollback" not in out.data  # nothing re-activated under the running activation
    deadline = time.monotonic() + 20
    while flake.current_generation("web1") != 1 or flake.generations("web1") != [1]:
        assert time.monotonic() < deadline, "the watchdog did not roll the host back"
        await asyncio.sleep(0.1)
