"""Update playbooks on the lab: wall time, and the by-hand way side by side.

Brings up the built-in lab (real nats-server, listeners, sshd, Nix) in a
temporary directory and times, round after round, two ways of answering
"what would moving the flake's inputs do to each host?" after the lab's
upstream package set moved:

* by hand, as a shell script would: ``nix flake update``, then for each host
  ``nix build`` of its toplevel and ``nix store diff-closures`` against the
  system it runs (one after the other), then ``git checkout flake.lock``;
* ``hlplay playbooks/flake-update.yml --check`` — lock diff, every host built
  by its own agent at once, closure diffs, the commit message; nothing kept.

Each round moves the upstream to a new version first, so both build the same
amount of new derivations. (A round of hlplay's sometimes takes 5 s more: two
hosts building the same new derivation at once, the second one waits Nix's
``build-poll-interval``. Medians are printed.) Then, once each, the full runs: flake-update
(commit and test-tier deploy) and update-package (webui-lite, web hosts only).

    python bench/updates.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hlplay.lab.fleet import NIX_CONF as NIX_CONFIG
from hlplay.lab.layout import copy_inventory
from hlplay.natsserver import free_port

REPO = Path(__file__).resolve().parents[1]
HOSTS = ["test-web1", "test-db1", "test-mon1", "prod-web1", "prod-db1", "prod-mon1", "test-web2"]


def make_inventory(root: Path) -> Path:
    return copy_inventory(REPO / "inventory" / "lab", root, free_port(), free_port())


def run(argv: list[str], cwd: Path, check: bool = True) -> float:
    start = time.monotonic()
    res = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    took = time.monotonic() - start
    if check and res.returncode != 0:
        raise SystemExit(
            f"{' '.join(argv[:4])} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
        )
    return took


def hlplay(root: Path, *args: str) -> float:
    return run([sys.executable, "-m", "hlplay.cli.main", *args], root)


def by_hand(config: Path, state: Path) -> float:
    """nix flake update; nix build + nix store diff-closures per host; restore the lock."""
    start = time.monotonic()
    subprocess.run(["nix", "flake", "update", str(config)], check=True, capture_output=True)
    for host in HOSTS:
        attr = f"{config}#nixosConfigurations.{host}.config.system.build.toplevel"
        out = subprocess.run(
            ["nix", "build", "--no-link", "--json", attr],
            check=True,
            capture_output=True,
            text=True,
        )
        new = json.loads(out.stdout)[0]["outputs"]["out"]
        old = os.path.realpath(state / "hosts" / host / "profile" / "system")
        subprocess.run(["nix", "store", "diff-closures", old, new], check=True, capture_output=True)
    took = time.monotonic() - start
    subprocess.run(["git", "-C", str(config), "checkout", "-q", "--", "flake.lock"], check=True)
    return took


def bump_upstream(state: Path, version: str) -> None:
    path = state / "upstream" / "default.nix"
    text = re.sub(
        r'(pname = "toolbox-lite"; version = ")[^"]+(")', rf"\g<1>{version}\2", path.read_text()
    )
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    os.environ["NIX_CONFIG"] = NIX_CONFIG
    os.environ["HLPLAY_NO_COLOR"] = "1"
    root = Path(tempfile.mkdtemp(prefix="hlplay-bench-updates-"))
    inv = make_inventory(root)
    state, playbooks = root / ".hlplay-lab", REPO / "playbooks"
    config = state / "config"
    print(f"lab up: {hlplay(root, 'lab', 'up', '-i', str(inv)):.2f} s")
    manual: list[float] = []
    check: list[float] = []
    try:
        for n in range(opts.rounds):
            bump_upstream(state, f"1.{n}.0")
            manual.append(by_hand(config, state))
            bump_upstream(state, f"1.{n}.1")
            check.append(
                hlplay(root, str(playbooks / "flake-update.yml"), "-i", str(inv), "--check")
            )
            print(
                f"round {n + 1}: by hand {manual[-1]:.2f} s, flake-update --check {check[-1]:.2f} s"
            )
        m, c = statistics.median(manual), statistics.median(check)
        print(
            f"lock + build + diff of {len(HOSTS)} hosts, median of {opts.rounds}: "
            f"by hand {m:.2f} s, hlplay {c:.2f} s (hlplay / by hand = {c / m:.1f})"
        )
        bump_upstream(state, "2.0.0")
        full = hlplay(root, str(playbooks / "flake-update.yml"), "-i", str(inv))
        print(f"flake-update (lock, build 7, commit, deploy the test tier): {full:.2f} s")
        subprocess.run(["git", "-C", str(config), "checkout", "-q", "main"], check=True)
        pkg = hlplay(
            root,
            str(playbooks / "update-package.yml"),
            "-i",
            str(inv),
            "-e",
            "package=webui-lite",
            "-e",
            "version=1.1",
        )
        what = "edit, hash, build 3 web hosts, commit, deploy 2"
        print(f"update-package webui-lite ({what}): {pkg:.2f} s")
    finally:
        hlplay(root, "lab", "down", "-i", str(inv))
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
