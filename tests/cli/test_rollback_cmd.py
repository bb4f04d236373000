"""``hlplay rollback`` as a user runs it (real Nix, local hosts)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from hlplay.transports.local import LocalTransport


def hlplay(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HLPLAY_NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "hlplay.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _deploy(flake: Any, hosts: list[str], version: str) -> str:
    for h in hosts:
        flake.set_host(h, {"hello": version})
    rev = flake.commit(f"v{version}")
    inv = flake.inventory(hosts)
    outcomes = asyncio.run(
        LocalTransport(inv).deploy(
            list(inv.hosts.values()), {"action": "switch", "revision": rev, "id": f"d{version}"}
        )
    )
    assert all(o.status == "completed" for o in outcomes.values()), outcomes
    return rev


@pytest.fixture
def fleet(nix_flake):  # type: ignore[no-untyped-def]
    """web1 and web2 at generation 2 (revision v1.1), generation 1 being v1.0."""
    hosts = ["web1", "web2"]
    rev1 = _deploy(nix_flake, hosts, "1.0")
    _deploy(nix_flake, hosts, "1.1")
    return nix_flake, str(nix_flake.write_inventory(hosts)), rev1


def test_rollback_returns_every_host_to_its_previous_generation(fleet) -> None:  # type: ignore[no-untyped-def]
    flake, inv, rev1 = fleet
    res = hlplay("rollback", "all", "-i", inv)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "rolling back 2 host(s) to their previous generation: web1, web2" in res.stdout
    assert f"web1: generation 2 -> 1 (revision {rev1[:12]})" in res.stdout
    assert "2 host(s): 2 rolled back" in res.stdout
    assert flake.current_generation("web1") == 1
    assert flake.current_generation("web2") == 1


def test_rollback_json(fleet) -> None:  # type: ignore[no-untyped-def]
    flake, inv, rev1 = fleet
    res = hlplay("rollback", "-l", "web1", "-i", inv, "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    doc = json.loads(res.stdout)
    assert doc["hosts"] == {
        "web1": {
            "status": "rolled_back",
            "from_generation": 2,
            "to_generation": 1,
            "revision": rev1,
            "message": doc["hosts"]["web1"]["message"],
        }
    }
    assert doc["summary"] == {"hosts": 1, "rolled_back": 1, "failed": 0, "unreachable": 0}
    assert flake.current_generation("web2") == 2


def test_rollback_to_a_named_generation(fleet) -> None:  # type: ignore[no-untyped-def]
    flake, inv, rev1 = fleet
    _deploy(flake, ["web1", "web2"], "1.2")
    res = hlplay("rollback", "all", "-i", inv, "--to", "1")
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"web1: generation 3 -> 1 (revision {rev1[:12]})" in res.stdout
    assert flake.current_generation("web1") == 1


def test_rollback_to_an_unknown_generation_is_refused(fleet) -> None:  # type: ignore[no-untyped-def]
    flake, inv, _ = fleet
    res = hlplay("rollback", "web1", "-i", inv, "--to", "9")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "web1: FAILED: no generation 9 on this host (generations: 1, 2)" in res.stdout
    assert "Traceback" not in res.stderr
    assert flake.current_generation("web1") == 2
    bad = hlplay("rollback", "web1", "-i", inv, "--to", "0")
    assert bad.returncode == 5
    assert bad.stderr.strip().splitlines()[-1].endswith("a generation number is 1 or more")
