"""``hlplay diff`` and ``hlplay generations`` as a user runs them (real Nix, local hosts)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
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
        timeout=120,
    )


@pytest.fixture
def deployed(nix_flake):  # type: ignore[no-untyped-def]
    """web1 and web2 switched to revision 1; HEAD (revision 2) upgrades web1 only."""
    nix_flake.set_host("web1", {"hello": "1.0", "openssl": "3.0"}, selected=["hello"])
    nix_flake.set_host("web2", {"hello": "1.0"})
    rev1 = nix_flake.commit("v1")
    inv = nix_flake.inventory(["web1", "web2"])
    outcomes = asyncio.run(
        LocalTransport(inv).deploy(
            list(inv.hosts.values()), {"action": "switch", "revision": rev1, "id": "x1"}
        )
    )
    assert all(o.status == "completed" for o in outcomes.values()), outcomes
    nix_flake.set_host("web1", {"hello": "1.1", "openssl": "3.0"}, selected=["hello"])
    rev2 = nix_flake.commit("v2")
    path = nix_flake.write_inventory(["web1", "web2"])
    return nix_flake, str(path), rev1, rev2


def test_diff_shows_what_each_host_would_change(deployed) -> None:  # type: ignore[no-untyped-def]
    flake, inv, _, rev2 = deployed
    res = hlplay("diff", "all", "-i", inv)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert f"== web1: generation 1 -> {rev2[:12]}" in out
    assert "[U*]  #1  hello  1.0 -> 1.1" in out
    assert "No version or selection state changes." in out
    assert "2 host(s): 1 would change, 1 unchanged" in out
    assert flake.generations("web1") == [1] and len(flake.activations("web1")) == 1


def test_diff_json_and_an_older_revision(deployed) -> None:  # type: ignore[no-untyped-def]
    _, inv, rev1, _ = deployed
    res = hlplay("diff", "web*", "-i", inv, "--revision", rev1, "--json")
    assert res.returncode == 0, res.stderr
    doc: dict[str, Any] = json.loads(res.stdout)
    assert doc["revision"] == rev1
    assert {h: v["status"] for h, v in doc["hosts"].items()} == {
        "web1": "unchanged",
        "web2": "unchanged",
    }
    assert doc["hosts"]["web1"]["diff"]["schema"].startswith("hlplay.closure-diff/")
    assert doc["summary"]["changed"] == 0


def test_diff_of_two_generations_goes_straight_to_the_paths(deployed) -> None:  # type: ignore[no-untyped-def]
    flake, _, _, rev2 = deployed
    gen1 = flake.profile("web1") + "-1-link"
    new = flake.build("web1", rev2)
    res = hlplay("diff", gen1, new)
    assert res.returncode == 0, res.stderr
    assert "hello  1.0 -> 1.1" in res.stdout


def test_a_failed_build_is_reported_per_host(deployed) -> None:  # type: ignore[no-untyped-def]
    _, inv, _, _ = deployed
    res = hlplay("diff", "web2", "-i", inv, "--revision", "no-such-branch")
    assert res.returncode == 2
    assert "== web2: FAILED" in res.stdout and "nix build" in res.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["diff", "all", "--revision", "x;y"], "--revision 'x;y'"),
        (["diff", "nosuchhost"], "nosuchhost"),
        (["diff", "a", "b", "c"], "expected a host PATTERN"),
    ],
)
def test_bad_input_is_one_line(deployed, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    _, inv, _, _ = deployed
    res = hlplay(*args, "-i", inv)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR:") and message in lines[0], res.stderr


def test_generations_lists_each_hosts_generations_with_revisions(deployed) -> None:  # type: ignore[no-untyped-def]
    flake, inv, rev1, _ = deployed
    res = hlplay("generations", "all", "-i", inv)
    assert res.returncode == 0, res.stderr
    assert "web1 (1 generation(s))" in res.stdout
    assert " *    1  " in res.stdout and rev1[:12] in res.stdout
    doc = json.loads(hlplay("generations", "web1", "-i", inv, "--json").stdout)
    gens = doc["hosts"]["web1"]["generations"]
    assert [(g["number"], g["current"], g["revision"]) for g in gens] == [(1, True, rev1)]
    assert gens[0]["path"] == flake.current_path("web1")


def test_generations_of_a_host_never_deployed(nix_flake, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    nix_flake.set_host("new1", {"hello": "1.0"})
    nix_flake.commit()
    inv = nix_flake.write_inventory(["new1"])
    res = hlplay("generations", "-i", str(inv))
    assert res.returncode == 0, res.stderr
    assert "new1 (0 generation(s))" in res.stdout and "no system deployed" in res.stdout


def test_a_playbook_checks_then_deploys(deployed) -> None:  # type: ignore[no-untyped-def]
    flake, inv, _, _ = deployed
    play = Path(inv).parent / "deploy.yml"
    play.write_text(
        "- hosts: all\n"
        "  tasks:\n"
        "    - name: deploy\n"
        "      nixos_rebuild:\n"
        "        confirm_timeout: 5\n"
        "        health: [{unit_active: web, retries: 0}]\n"
    )
    flake.set_host("web1", {"hello": "1.1", "openssl": "3.0"}, selected=["hello"], services=["web"])
    flake.commit("web1 runs web")
    check = hlplay(str(play), "-i", inv, "--check", "--diff")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "hello  1.0 -> 1.1" in check.stdout and "changed: [web1]" in check.stdout
    assert "ok: [web2]" in check.stdout
    assert flake.generations("web1") == [1]
    run = hlplay(str(play), "-i", inv)
    # web2 runs no unit "web", but its system is unchanged: it is not activated,
    # so its health gate never runs.
    assert run.returncode == 0, run.stdout + run.stderr
    assert "changed: [web1]" in run.stdout and "ok: [web2]" in run.stdout
    assert flake.generations("web1") == [1, 2] and flake.current_generation("web1") == 2
    assert flake.generations("web2") == [1]
