"""Old generations are pruned after a switch that is kept (real Nix, toy systems)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.nix import NixTestFlake
from hlplay.deploy.nix import NixExecutor
from hlplay.inventory.hostsettings import KeepGenerationsError, host_settings
from hlplay.protocol.messages import DeployRequest

pytestmark = pytest.mark.nix


async def switch(
    flake: NixTestFlake, host: str, n: int, *, action: str = "switch", **options: Any
) -> Any:
    flake.set_host(host, {"hello": f"1.{n}"})
    rev = flake.commit(f"hello 1.{n}")
    ctx_options = options.pop("ctx_options", {})
    ctx = flake.context(host, options=ctx_options)
    request = DeployRequest(action, rev, id=f"run-{n}", options=options)
    result = await NixExecutor().execute(request, ctx)
    assert result.ok, result
    return result


async def test_fourteen_switches_keep_the_newest_ten(nix_flake: NixTestFlake) -> None:
    pruned: list[int] = []
    for n in range(1, 15):
        result = await switch(nix_flake, "web1", n, ctx_options={"keep_generations": 10})
        assert "prune_error" not in result.data, result.data
        pruned += result.data["pruned"]
    assert pruned == [1, 2, 3, 4]
    assert nix_flake.generations("web1") == list(range(5, 15))
    assert nix_flake.current_generation("web1") == 14


async def test_the_default_is_ten_and_boot_prunes_too(nix_flake: NixTestFlake) -> None:
    for n in range(1, 12):
        await switch(nix_flake, "web2", n, action="switch" if n < 11 else "boot")
    assert nix_flake.generations("web2") == list(range(2, 12))


async def test_the_booted_system_is_kept_whatever_its_age(
    nix_flake: NixTestFlake, tmp_path: Path
) -> None:
    first = await switch(nix_flake, "web3", 1)
    booted = tmp_path / "booted-system"
    booted.symlink_to(first.data["path"])
    for n in range(2, 7):
        result = await switch(
            nix_flake,
            "web3",
            n,
            ctx_options={"keep_generations": 3, "booted_system": str(booted)},
        )
    assert result.data["pruned"] == [3]
    assert nix_flake.generations("web3") == [1, 4, 5, 6]


@pytest.fixture
def immutable() -> Iterator[list[Path]]:
    held: list[Path] = []
    yield held
    for path in held:
        subprocess.run(["chattr", "-i", str(path)], check=False)


async def test_a_failed_pruning_fails_no_deploy_and_a_confirmation_prunes(
    nix_flake: NixTestFlake, immutable: list[Path]
) -> None:
    for n in range(1, 4):
        await switch(nix_flake, "web4", n, ctx_options={"keep_generations": 2})
    assert nix_flake.generations("web4") == [2, 3]
    # awaiting confirmation: nothing is pruned before the new system is kept
    armed = await switch(
        nix_flake, "web4", 4, confirm_timeout=60, ctx_options={"keep_generations": 2}
    )
    assert armed.data.get("awaiting_confirm") and "pruned" not in armed.data
    assert nix_flake.generations("web4") == [2, 3, 4]
    profiles = Path(nix_flake.profile("web4")).parent
    if subprocess.run(["chattr", "+i", str(profiles)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i does not work here")
    immutable.append(profiles)
    ctx = nix_flake.context("web4", options={"keep_generations": 2})
    kept = await NixExecutor().confirm("run-4", ctx)
    assert kept.ok and kept.data["confirmed"] is True, kept
    assert "deleting generations 2" in kept.data["prune_error"], kept.data
    assert "pruned" not in kept.data
    subprocess.run(["chattr", "-i", str(profiles)], check=True)
    immutable.clear()
    # the next kept switch catches up
    result = await switch(nix_flake, "web4", 5, ctx_options={"keep_generations": 2})
    assert result.data["pruned"] == [2, 3]
    assert nix_flake.generations("web4") == [4, 5]
    # a setting the pruning cannot use is reported, and the deploy stands
    result = await switch(nix_flake, "web4", 6, ctx_options={"keep_generations": 1})
    assert "at least 2" in result.data["prune_error"]
    assert nix_flake.current_generation("web4") == 6


def test_the_inventory_setting_reaches_the_pipeline(nix_flake: NixTestFlake) -> None:
    inv = nix_flake.inventory(["web5", "web6"])
    inv.hosts["web5"].vars["hlplay_keep_generations"] = 4
    settings = host_settings(inv, inv.hosts["web5"])
    assert settings.context_options()["keep_generations"] == 4
    assert "keep_generations" not in host_settings(inv, inv.hosts["web6"]).context_options()
    inv.hosts["web6"].vars["hlplay_keep_generations"] = 1
    with pytest.raises(KeepGenerationsError, match="at least 2"):
        host_settings(inv, inv.hosts["web6"])


def test_the_listener_takes_its_own_setting() -> None:
    from hlplay.agent.listener import Listener, ListenerConfig

    config = ListenerConfig(hostname="h", tier="test", sign_answers=False, keep_generations=4)
    assert Listener(config)._context().options["keep_generations"] == 4
    assert ListenerConfig(hostname="h", tier="test").keep_generations == 10
    refused = subprocess.run(
        [
            str(Path(sys.executable).parent / "hlplay"),
            "listen",
            "--tier",
            "test",
            "--keep-generations",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0 and "--keep-generations" in refused.stderr
