"""Deploy-all on the 6-host lab (plus its SSH host) with one package bump.

Brings a lab up in a temporary directory on free ports, then times
``hlplay playbooks/deploy-all.yml`` over the whole lab (both tiers) for the
pending change (one package bump), from command to recap, and reports the
share of that time spent outside Nix builds (builds run on the hosts at once,
so each task's slowest build counts). Repeats with a fresh bump each round.

The lab's hosts share one Nix store: when several of them build the same
derivation at once, Nix makes all but one wait on its output lock, which it
polls every 5 seconds. That wait counts as build time here; on a real fleet
each host builds in its own store and never waits for another.

    python bench/lab_deploy.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hlplay.lab.layout import copy_inventory
from hlplay.natsserver import free_port

REPO = Path(__file__).resolve().parent.parent


def hlplay(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hlplay.cli.main", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )


def build_seconds(doc: Any) -> float:
    """Per task, the slowest host's build time; summed over tasks."""
    total = 0.0

    def walk(node: Any) -> None:
        nonlocal total
        if isinstance(node, dict):
            hosts = node.get("hosts")
            if isinstance(hosts, dict):
                times = [
                    float(r.get("build_seconds", 0))
                    for r in hosts.values()
                    if isinstance(r, dict) and isinstance(r.get("build_seconds"), (int, float))
                ]
                if times:
                    total += max(times)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    opts = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="hlplay-bench-lab-"))
    inv = copy_inventory(REPO / "inventory" / "lab", root, free_port(), free_port())
    up = hlplay(root, "lab", "up", "-i", str(inv))
    if up.returncode != 0:
        sys.exit(f"lab up failed:\n{up.stdout}\n{up.stderr}")
    walls: list[float] = []
    shares: list[float] = []
    try:
        for i in range(opts.rounds):
            if i > 0:
                bumped = hlplay(root, "lab", "bump", "-i", str(inv), "nginx-lite", f"1.25.{4 + i}")
                if bumped.returncode != 0:
                    sys.exit(bumped.stderr)
            start = time.perf_counter()
            run = hlplay(root, str(REPO / "playbooks" / "deploy-all.yml"), "-i", str(inv), "--json")
            wall = time.perf_counter() - start
            if run.returncode != 0:
                sys.exit(
                    f"deploy-all failed ({run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr}"
                )
            builds = build_seconds(json.loads(run.stdout))
            walls.append(wall)
            shares.append(1 - builds / wall)
            print(
                f"round {i + 1}: {wall:.2f} s command to recap, Nix builds {builds:.2f} s, "
                f"outside builds {100 * (1 - builds / wall):.0f}%"
            )
    finally:
        hlplay(root, "lab", "down", "-i", str(inv))
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"deploy-all, 7 lab hosts (6 listeners + 1 SSH), one package bump: "
        f"median {statistics.median(walls):.2f} s; "
        f"share outside Nix builds {100 * statistics.median(shares):.0f}%"
    )


if __name__ == "__main__":
    main()
