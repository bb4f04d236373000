"""deploy-all writes its report on every exit path, and counts only hosts that failed.

On ``transport: local`` hosts with real Nix (the test flake of tests/fixtures/nix.py):
web1 and web3 are the test tier, web2 prod.
"""

from __future__ import annotations

import json
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


def deploy_all(inventory: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            *("-m", "hlplay.cli.main", str(REPO / "playbooks" / "deploy-all.yml")),
            *("-i", str(inventory), "-e", "confirm_timeout=0", "-e", f"report_dir={out}"),
        ],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "HLPLAY_NO_COLOR": "1",
            "GITHUB_STEP_SUMMARY": str(out / "step-summary.md"),
        },
        timeout=300,
    )


def recap(output: str) -> dict[str, str]:
    lines = output[output.index("PLAY RECAP") :].splitlines()[1:]
    return {ln.split()[0]: ln for ln in lines if " : " in ln}


def report(out: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((out / "deploy-report.json").read_text())
    return doc


@pytest.fixture
def fleet(nix_flake):  # type: ignore[no-untyped-def]
    for host in TIERS:
        nix_flake.set_host(host, {"hello": "1.0"}, services=["web.service"])
    nix_flake.commit("v1")
    return nix_flake, write_inventory(nix_flake)


def test_a_test_tier_failure_still_writes_the_report_and_prod_is_not_failed(
    fleet, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    flake, inventory = fleet
    flake.set_host("web1", {"hello": "1.1"}, services=["web.service"], fail_activation=True)
    for host in ("web2", "web3"):
        flake.set_host(host, {"hello": "1.1"}, services=["web.service"])
    flake.commit("v2")
    run = deploy_all(inventory, tmp_path)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "a test-tier host failed to deploy: prod is left untouched" in run.stdout
    assert "PLAY [Summary]" in run.stdout
    assert flake.activations("web2") == []
    lines = recap(run.stdout)
    assert "failed=1" in lines["web1"], run.stdout
    assert "failed=0" in lines["web2"], run.stdout
    rows = {r["host"]: r["result"] for r in report(tmp_path)["hosts"]}
    assert rows["web2"] == "not deployed", rows
    assert rows["web3"] == "deployed" and "activation_failed" in rows["web1"], rows
    assert report(tmp_path)["failed"] == 1
    assert "| web2 |" in (tmp_path / "deploy-report.md").read_text()
    assert "## Deploy summary" in (tmp_path / "step-summary.md").read_text()


def test_every_build_failing_still_writes_the_report(fleet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    flake, inventory = fleet
    (flake.root / "flake.nix").write_text("{ this is not nix\n")
    flake.commit("broken")
    run = deploy_all(inventory, tmp_path)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "NO MORE HOSTS LEFT" in run.stdout
    assert "PLAY [Deploy the test tier]" not in run.stdout
    doc = report(tmp_path)
    assert {r["host"] for r in doc["hosts"]} == set(TIERS)
    assert all(r["result"].startswith("build failed") for r in doc["hosts"]), doc
    assert "## Deploy summary" in (tmp_path / "step-summary.md").read_text()


def test_a_failed_prerequisite_still_writes_the_report(fleet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, inventory = fleet
    run = subprocess.run(
        [
            sys.executable,
            *("-m", "hlplay.cli.main", str(REPO / "playbooks" / "deploy-all.yml")),
            *("-i", str(inventory), "-e", "confirm_timeout=soon", "-e", f"report_dir={tmp_path}"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HLPLAY_NO_COLOR": "1"},
        timeout=300,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert "PLAY [Build and diff]" not in run.stdout
    md = (tmp_path / "deploy-report.md").read_text()
    assert "the run stopped before any host was built" in md
