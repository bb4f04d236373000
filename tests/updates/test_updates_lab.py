"""flake-update.yml and update-package.yml on the lab: real listeners, sshd, git and Nix."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from fixtures.lab import LabEnv
from hlplay.lab import configrepo
from hlplay.nix.prefetch import nix32_encode

pytestmark = [pytest.mark.slow, pytest.mark.nix, pytest.mark.nats]

ALL_HOSTS = [
    "test-web1",
    "test-db1",
    "test-mon1",
    "prod-web1",
    "prod-db1",
    "prod-mon1",
    "test-web2",
]


BROKEN_UPSTREAM = """{ mkPackage }:
let ok = mkPackage { pname = "toolbox-lite"; version = "2.0"; }; in {
  toolbox-lite = derivation {
    name = "toolbox-lite-2.0"; inherit (ok) system; builder = "/bin/sh";
    args = [ "-c" "echo toolbox-lite does not build; exit 1" ];
  };
}
"""


def generations(lab: LabEnv) -> dict[str, int | None]:
    return {h: lab.current_generation(h) for h in ALL_HOSTS}


def repo_state(lab: LabEnv) -> tuple[str, str, str]:
    """Every ref and commit, the checked-out branch, and the tree's status."""
    return (
        lab.git("for-each-ref", "--format=%(refname) %(objectname)"),
        lab.git("rev-parse", "--abbrev-ref", "HEAD"),
        lab.git("status", "--porcelain"),
    )


def task_hosts(doc: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    """Each host's result of the task called ``name`` (merged over plays and batches)."""
    out: dict[str, dict[str, Any]] = {}
    for play in doc["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"] == name:
                out.update(task["hosts"])
    return out


def test_flake_update_moves_the_path_input_check_then_for_real(lab_factory) -> None:
    lab: LabEnv = lab_factory()
    main = lab.git("rev-parse", "main")
    assert configrepo.bump_upstream(lab.config, "toolbox-lite", "1.0.0") == "0.9.0"
    before = repo_state(lab)
    assert before[1:] == ("main", "")

    # --check: the lock diff and every host's closure diff; nothing committed or deployed
    dry = lab.playbook("flake-update.yml", "--check", "--diff")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert f"• upstream (path:{lab.state / 'upstream'}): narHash sha256-" in dry.stdout
    assert "[U*]  #1  toolbox-lite  0.9.0 -> 1.0.0" in dry.stdout
    assert (
        "test-db1, prod-db1: toolbox-lite 0.9.0 -> 1.0.0" in dry.stdout
    )  # the message it would write
    assert repo_state(lab) == before
    assert set(generations(lab).values()) == {1}

    run = lab.playbook("flake-update.yml")
    assert run.returncode == 0, run.stdout + run.stderr
    # a new branch with one commit on top of main, and main where it was
    branch = lab.git("rev-parse", "--abbrev-ref", "HEAD")
    assert branch.startswith("flake-update-20")
    assert lab.git("rev-parse", "HEAD^") == main == lab.git("rev-parse", "main")
    assert lab.git("diff", "--name-only", "HEAD^", "HEAD") == "flake.lock"
    assert lab.git("status", "--porcelain") == ""
    message = lab.git("log", "-1", "--format=%B")
    assert message.startswith("flake.lock: update upstream\n\nInputs:\n• upstream (path:")
    assert "test-db1, prod-db1: toolbox-lite 0.9.0 -> 1.0.0" in message
    assert "unchanged: test-mon1, prod-mon1" in message
    # the test tier runs it (the web hosts also get main's pending nginx bump); prod does not
    gens = generations(lab)
    assert {h: gens[h] for h in ("test-db1", "test-web1", "test-web2")} == dict.fromkeys(
        ("test-db1", "test-web1", "test-web2"), 2
    )
    assert gens["test-mon1"] == 1
    assert all(gens[h] == 1 for h in ("prod-web1", "prod-db1", "prod-mon1"))
    packages = (
        lab.state / "hosts" / "test-db1" / "profile" / "system" / "sw" / "packages"
    ).read_text()
    assert "toolbox-lite-1.0.0" in packages
    sha = lab.git("rev-parse", "HEAD")
    assert f"-l tier=prod -e revision={sha}" in run.stdout

    # an upstream that breaks the db hosts' build: they fail, nothing is committed or deployed
    lab.git("checkout", "-q", "main")
    (lab.state / "upstream" / "default.nix").write_text(BROKEN_UPSTREAM)
    before, gens = repo_state(lab), generations(lab)
    broken = lab.playbook("flake-update.yml")
    assert broken.returncode == 2, broken.stdout + broken.stderr
    assert "fatal: [test-db1]" in broken.stdout and "fatal: [prod-db1]" in broken.stdout
    assert "nothing committed, nothing deployed" in broken.stdout
    assert repo_state(lab) == before
    assert generations(lab) == gens


def test_update_package_bad_input_then_only_the_hosts_with_it(lab_factory) -> None:
    lab: LabEnv = lab_factory()
    before = repo_state(lab)

    unknown = lab.playbook("update-package.yml", "-e", "package=webui", "-e", "version=1.1")
    assert unknown.returncode == 2
    assert "unknown package 'webui' (did you mean 'webui-lite'?)" in unknown.stdout
    missing = lab.playbook("update-package.yml", "-e", "package=webui-lite", "-e", "version=9.9")
    assert missing.returncode == 2
    assert "webui-lite 9.9: no source src/webui-9.9.txt" in missing.stdout
    # a wrong hash given by hand: the hosts cannot even evaluate it
    wrong = lab.playbook(
        "update-package.yml",
        "-e",
        "package=webui-lite",
        "-e",
        "version=1.1",
        "-e",
        "hash=sha256-" + "A" * 43 + "=",
    )
    assert wrong.returncode == 2
    assert "store path mismatch" in wrong.stdout
    assert repo_state(lab) == before
    assert set(generations(lab).values()) == {1}

    run = lab.playbook(
        "update-package.yml",
        "-e",
        "package=webui-lite",
        "-e",
        "version=1.1",
        "-e",
        "promote=true",
        "--json",
    )
    doc = json.loads(run.stdout)
    assert run.returncode == 0, json.dumps(doc, indent=1)[-3000:]
    # the version and the hash, in the package's file, committed on a branch
    assert lab.git("rev-parse", "--abbrev-ref", "HEAD") == "update-webui-lite-1.1"
    assert lab.git("diff", "--name-only", "HEAD^", "HEAD") == "pkgs/webui-lite.nix"
    text = (lab.config / "pkgs" / "webui-lite.nix").read_text()
    want = nix32_encode(
        hashlib.sha256((lab.config / "src" / "webui-1.1.txt").read_bytes()).digest()
    )
    assert 'version = "1.1";' in text and f'sha256 = "{want}";' in text
    assert lab.git("log", "-1", "--format=%s") == "webui-lite: 1.0 -> 1.1"
    # only the hosts whose closure has webui-lite were built, then deployed (test, then prod)
    built = task_hosts(doc, "Build the new system and diff it against the running one")
    web = {"test-web1", "prod-web1", "test-web2"}
    assert {h for h, r in built.items() if r.get("status") != "skipped"} == web
    gens = generations(lab)
    assert {h: gens[h] for h in web} == dict.fromkeys(web, 2)
    assert all(gens[h] == 1 for h in set(ALL_HOSTS) - web)
    share = lab.state / "hosts" / "test-web2" / "profile" / "system" / "sw" / "packages"
    assert "webui-lite-1.1" in share.read_text()
