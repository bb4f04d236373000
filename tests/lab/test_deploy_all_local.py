"""deploy-all.yml's prerequisites and tier order, on ``transport: local`` hosts.

Real Nix and git (the test flake of tests/fixtures/nix.py), no fleet: web1 and
web3 are the test tier, web2 prod. The lab tests (test_deploy_all.py) cover the same
playbook over NATS and SSH.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from fixtures.lab import REPO

pytestmark = pytest.mark.nix

TIERS = {"web1": "test", "web2": "prod", "web3": "test"}


def write_inventory(flake: Any) -> Path:
    doc = {
        "hlplay": {"nix": {"flake": str(flake.root)}},
        "hosts": {
            h: {"tier": tier, "transport": "local", "vars": flake.host_vars(h)}
            for h, tier in TIERS.items()
        },
    }
    path = flake.base / "inventory.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def deploy_all(inventory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "hlplay.cli.main",
            str(REPO / "playbooks" / "deploy-all.yml"),
            "-i",
            str(inventory),
            "-e",
            "confirm_timeout=0",
            *args,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HLPLAY_NO_COLOR": "1"},
        timeout=300,
    )


def play_section(output: str, play: str) -> str:
    """The console output of one play, up to the next PLAY line."""
    start = output.index(f"PLAY [{play}]")
    end = output.find("\nPLAY ", start + 1)
    return output[start : end if end != -1 else len(output)]


@pytest.fixture
def fleet(nix_flake):  # type: ignore[no-untyped-def]
    for host in TIERS:
        nix_flake.set_host(host, {"hello": "1.0"}, services=["web.service"])
    nix_flake.commit("v1")
    return nix_flake, write_inventory(nix_flake)


def test_prerequisites_stop_the_run_before_any_host_builds(fleet) -> None:  # type: ignore[no-untyped-def]
    flake, inventory = fleet
    (flake.root / "scratch.nix").write_text("{ }\n")
    dirty = deploy_all(inventory)
    assert dirty.returncode == 2, dirty.stdout + dirty.stderr
    assert f"working tree of {flake.root} has uncommitted changes: scratch.nix" in dirty.stdout
    assert "PLAY [Build and diff]" not in dirty.stdout
    (flake.root / "scratch.nix").unlink()

    for extra, message in (
        ("revision=nosuch", f"unknown revision 'nosuch' in {flake.root}"),
        ('{"revision": "--output=/tmp/x"}', "not a revision: '--output=/tmp/x'"),
        ("confirm_timeout=soon", "confirm_timeout must be a number of seconds"),
    ):
        run = deploy_all(inventory, "-e", extra)
        assert run.returncode == 2, run.stdout + run.stderr
        fatal = [line for line in run.stdout.splitlines() if line.startswith("fatal:")]
        assert len(fatal) == 1 and message in fatal[0], run.stdout
        assert "PLAY [Build and diff]" not in run.stdout
    assert all(flake.generations(h) == [] for h in TIERS)


def test_test_tier_first_and_a_failure_there_leaves_prod_alone(fleet) -> None:  # type: ignore[no-untyped-def]
    flake, inventory = fleet
    first = deploy_all(inventory)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "changed: [web1]" in play_section(first.stdout, "Deploy the test tier")
    assert "changed: [web2]" in play_section(first.stdout, "Deploy the prod tier")
    assert first.stdout.index("PLAY [Deploy the test tier]") < first.stdout.index(
        "PLAY [Deploy the prod tier]"
    )
    assert [flake.current_generation(h) for h in TIERS] == [1, 1, 1]
    # every host reports the one commit the run resolved HEAD to
    head = flake.git("rev-parse", "HEAD")
    assert first.stdout.count(f"| {head[:12]} |") == 3, first.stdout

    # v2: web1's activation fails, web3 deploys; web2 would deploy fine but must not be touched
    flake.set_host("web1", {"hello": "1.1"}, services=["web.service"], fail_activation=True)
    for host in ("web2", "web3"):
        flake.set_host(host, {"hello": "1.1"}, services=["web.service"])
    flake.commit("v2")
    failed = deploy_all(inventory)
    assert failed.returncode == 2, failed.stdout + failed.stderr
    assert "a test-tier host failed to deploy: prod is left untouched" in failed.stdout
    assert flake.current_generation("web1") == 1 and flake.generations("web1") == [1]
    assert flake.current_generation("web2") == 1 and flake.generations("web2") == [1]
    assert len(flake.activations("web2")) == 1  # the first deploy only
    assert flake.current_generation("web3") == 2

    flake.set_host("web1", {"hello": "1.1"}, services=["web.service"])
    flake.commit("v3")
    fixed = deploy_all(inventory)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert [flake.current_generation(h) for h in TIERS] == [2, 2, 2]


def test_a_fleet_with_only_a_test_tier_deploys(nix_flake) -> None:  # type: ignore[no-untyped-def]
    nix_flake.set_host("web1", {"hello": "1.0"})
    nix_flake.commit("v1")
    inventory = nix_flake.write_inventory(["web1"])  # tier test only: no tier_prod group
    run = deploy_all(inventory)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "skipping: no hosts matched" in play_section(run.stdout, "Deploy the prod tier")
    assert nix_flake.current_generation("web1") == 1


def test_a_host_without_magic_rollback_is_refused_unless_allowed(fleet) -> None:  # type: ignore[no-untyped-def]
    # web3 marked as a homelab-deploy listener: it would lose magic rollback,
    # the health gate and the diff, so deploy-all stops before any build.
    _, inventory = fleet
    doc = yaml.safe_load(inventory.read_text())
    doc["hosts"]["web3"]["protocol"] = "homelab-deploy"
    inventory.write_text(yaml.safe_dump(doc, sort_keys=False))
    refused = deploy_all(inventory, "--check")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    fatal = [line for line in refused.stdout.splitlines() if line.startswith("fatal: [web3]")]
    assert len(fatal) == 1 and "homelab-deploy listener" in fatal[0], refused.stdout
    assert "allow_unsafe=true" in fatal[0]
    assert "PLAY [Build and diff]" not in refused.stdout
    allowed = deploy_all(inventory, "--check", "-e", "allow_unsafe=true")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "PLAY [Build and diff]" in allowed.stdout
