"""The nixos_rebuild module's batch path with local-transport hosts (real Nix)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from hlplay.inventory.model import Host
from hlplay.modules.base import ModuleResult, TaskContext
from hlplay.modules.nixos_rebuild import NixosRebuild
from hlplay.transports.base import CommandResult, Transport


class NoCommands(Transport):
    """The task's transport: local hosts deploy in-process and never use it."""

    name = "none"

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
        raise AssertionError("local deploys must not run commands through the transport")


HOSTS = ("web1", "web2")


@pytest.fixture
def fleet(nix_flake):  # type: ignore[no-untyped-def]
    """web1 and web2 deployed at revision 1; revision 2 upgrades hello on both."""
    for h in HOSTS:
        nix_flake.set_host(h, {"hello": "1.0", "openssl": "3.0"}, services=["web"])
    rev1 = nix_flake.commit("v1")
    inv = nix_flake.inventory(HOSTS)
    run(inv, {"revision": rev1, "confirm_timeout": 0})
    for h in HOSTS:
        nix_flake.set_host(h, {"hello": "1.1", "openssl": "3.0"}, services=["web"])
    rev2 = nix_flake.commit("v2")
    return nix_flake, inv, rev1, rev2


def contexts(inv: Any, check: bool = False, run_state: dict[str, Any] | None = None) -> list[Any]:
    state = {} if run_state is None else run_state
    return [
        TaskContext(
            host=h,
            inventory=inv,
            vars=dict(h.vars),
            transport=NoCommands(),
            check_mode=check,
            diff_mode=True,
            run_state=state,
        )
        for h in inv.hosts.values()
    ]


def run(inv: Any, args: dict[str, Any], check: bool = False) -> dict[str, ModuleResult]:
    ctxs = contexts(inv, check)
    by_host = {c.host.name: dict(args) for c in ctxs}
    return asyncio.run(NixosRebuild().run_batch(ctxs, by_host))


async def arun(inv: Any, args: dict[str, Any], check: bool = False) -> dict[str, ModuleResult]:
    ctxs = contexts(inv, check)
    return await NixosRebuild().run_batch(ctxs, {c.host.name: dict(args) for c in ctxs})


async def test_switch_deploys_every_host_at_head_and_confirms(fleet) -> None:  # type: ignore[no-untyped-def]
    flake, inv, _, rev2 = fleet
    results = await arun(inv, {"confirm_timeout": 1})  # revision: HEAD of the flake
    for h in HOSTS:
        r = results[h]
        assert r.changed and not r.failed, r.msg
        assert r.data["revision"] == rev2
        assert (r.data["old_generation"], r.data["generation"]) == (1, 2)
        assert r.data["confirmed"] is True
        assert "1 upgraded" in r.data["diff_summary"]
        assert "hello" in r.diff and "1.0 -> 1.1" in r.diff
    await asyncio.sleep(1.5)  # past the confirmation deadline: nothing rolls back
    for h in HOSTS:
        assert flake.current_generation(h) == 2
        assert len(flake.activations(h)) == 2


async def test_an_unchanged_host_is_ok_and_not_activated(fleet) -> None:  # type: ignore[no-untyped-def]
    flake, inv, rev1, _ = fleet
    results = await arun(inv, {"revision": rev1})
    for h in HOSTS:
        assert not results[h].changed and not results[h].failed, results[h].msg
        assert results[h].diff is None
        assert len(flake.activations(h)) == 1
        assert flake.generations(h) == [1]


async def test_check_mode_diffs_and_leaves_generations_alone(fleet) -> None:  # type: ignore[no-untyped-def]
    flake, inv, _, rev2 = fleet
    results = await arun(inv, {"revision": rev2}, check=True)
    for h in HOSTS:
        r = results[h]
        assert r.changed and not r.failed
        assert "[U" in r.diff and "1.0 -> 1.1" in r.diff
        assert flake.generations(h) == [1]
        assert len(flake.activations(h)) == 1


async def test_one_failing_host_rolls_back_and_the_other_deploys(fleet) -> None:  # type: ignore[no-untyped-def]
    flake, inv, _, _ = fleet
    flake.set_host("web2", {"hello": "1.1", "openssl": "3.0"}, fail_activation=True)
    flake.commit("web2 broken")
    results = await arun(inv, {"confirm_timeout": 0})
    assert results["web1"].changed and not results["web1"].failed
    bad = results["web2"]
    assert bad.failed
    assert bad.msg.startswith("activation_failed:")
    assert "rolled back to generation 1" in bad.msg
    assert bad.data["rollback"]["ok"] is True
    assert flake.current_generation("web1") == 2
    assert flake.current_generation("web2") == 1


async def test_host_side_health_gate_failure_rolls_back(fleet) -> None:  # type: ignore[no-untyped-def]
    flake, inv, _, _ = fleet
    checks = [{"unit_active": "db", "retries": 0}]
    results = await arun(inv, {"health": checks, "confirm_timeout": 0})
    for h in HOSTS:
        assert results[h].failed and "health_failed" in results[h].msg
        assert "rolled back to generation 1" in results[h].msg
        assert flake.current_generation(h) == 1


async def test_controller_side_health_failure_withholds_confirmation(fleet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    flake, inv, _, _ = fleet
    checks = [{"path_exists": str(tmp_path / "missing"), "from": "controller", "retries": 0}]
    results = await arun(inv, {"health": checks, "confirm_timeout": 60})
    for h in HOSTS:
        r = results[h]
        assert r.failed and "health check failed on the controller" in r.msg
        assert "rolled back to generation 1" in r.msg
        assert flake.current_generation(h) == 1
        assert [c["ok"] for c in r.data["health"]] == [False]


async def test_bad_arguments_fail_with_a_clear_message(fleet) -> None:  # type: ignore[no-untyped-def]
    _, inv, _, _ = fleet
    results = await arun(inv, {"health": [{"shell": "reboot"}]})
    assert results["web1"].failed and "unknown key 'shell'" in results["web1"].msg
    results = await arun(inv, {"revision": "main;reboot"})
    assert results["web2"].failed and "revision" in results["web2"].msg


def test_the_module_is_a_batch_module_that_supports_check() -> None:
    assert NixosRebuild.batch and NixosRebuild.supports_check
    choices = NixosRebuild.args["action"].choices
    assert choices == ("switch", "boot", "test", "dry-activate", "build")


# -- over NATS: a real listener running the Nix executor ----------------------------


async def test_switch_over_nats_is_confirmed_while_the_listener_waits(
    nix_flake, fleet_factory, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from fixtures.nats import make_inventory
    from hlplay.transports.nats import NatsTransport

    fleet = fleet_factory(make_inventory([("web1", "test", ("web",))]))
    nix_flake.set_host("web1", {"hello": "1.0"}, services=["web"])
    rev1 = nix_flake.commit("v1")
    nix_flake.set_host("web1", {"hello": "1.1"}, services=["web"])
    rev2 = nix_flake.commit("v2")
    fleet.start_listener(
        "web1",
        "--flake", str(nix_flake.root),
        "--profile", nix_flake.profile("web1"),
        executor="nix",
    )  # fmt: skip
    inv = fleet.inventory_as("admin")
    transport = NatsTransport(inv)
    try:
        ctx = TaskContext(
            host=inv.hosts["web1"], inventory=inv, vars={}, transport=transport, diff_mode=True
        )
        module = NixosRebuild()
        first = await module.run(ctx, {"revision": rev1, "confirm_timeout": 0})
        assert first.changed and not first.failed, first.msg
        # The listener waits for the confirmation inside its run; the module
        # confirms when the host says so, long before the 20 s would run out.
        second = await module.run(ctx, {"revision": rev2, "confirm_timeout": 20})
        assert second.changed and not second.failed, second.msg
        assert second.data["confirmed"] is True
        assert (second.data["old_generation"], second.data["generation"]) == (1, 2)
        assert "1.0 -> 1.1" in second.diff
        again = await module.run(ctx, {"revision": rev2})
        assert not again.changed and not again.failed, again.msg
        checked = await module.run(
            TaskContext(
                host=inv.hosts["web1"], inventory=inv, vars={}, transport=transport,
                check_mode=True,
            ),
            {"revision": rev1},
        )  # fmt: skip
        assert checked.changed and "1.1 -> 1.0" in checked.diff
    finally:
        await transport.close()
    assert nix_flake.generations("web1") == [1, 2]
    assert nix_flake.current_generation("web1") == 2
    assert [a for a, _ in nix_flake.activations("web1")] == ["switch", "switch"]
