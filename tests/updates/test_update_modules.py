"""The update modules on their own, in playbooks run in-process on the controller.

Real git and real Nix; no fleet needed (nix_affected evaluates the lab's
configuration built by ``configrepo.create``, without any host running).
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from hlplay.engine.api import run_playbook
from hlplay.lab import configrepo
from hlplay.nix.prefetch import Hashes, hash_path, nix32_decode, nix32_encode, parse_hash
from realparts import nix_available, require

pytestmark = pytest.mark.nix


@pytest.fixture(autouse=True)
def _nix() -> None:
    require(nix_available(), "Nix (nix-bin)")


def git(repo: Path, *args: str) -> str:
    res = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return res.stdout.strip()


def play(
    tmp_path: Path,
    tasks: list[dict[str, Any]],
    *,
    check: bool = False,
    extra: dict[str, Any] | None = None,
) -> tuple[int, list[dict[str, Any]]]:
    """Run tasks on localhost; the exit code and each task's result."""
    path = tmp_path / f"play{len(list(tmp_path.glob('play*.yml')))}.yml"
    path.write_text(yaml.safe_dump([{"hosts": "localhost", "tasks": tasks}]))
    result = asyncio.run(run_playbook(path, None, check=check, extra_vars=extra or {}))
    results = [t["hosts"]["localhost"] for p in result.document["plays"] for t in p["tasks"]]
    return result.exit_code, results


@pytest.fixture
def flake(tmp_path: Path) -> Path:
    """A git flake with one path: input (flake = false), locked and committed."""
    up = tmp_path / "up"
    up.mkdir()
    (up / "default.nix").write_text('{ tool = "0.9.0"; }\n')
    repo = tmp_path / "cfg"
    repo.mkdir()
    (repo / "flake.nix").write_text(
        "{\n"
        f'  inputs.up = {{ url = "path:{up}"; flake = false; }};\n'
        "  outputs = { self, up }: { version = (import up).tool; };\n"
        "}\n"
    )
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "flake.nix")
    subprocess.run(["nix", "flake", "lock", str(repo)], check=True, capture_output=True)
    git(repo, "add", "flake.lock")
    git(repo, "commit", "-qm", "init")
    return repo


def test_flake_update_moves_a_path_input_and_leaves_the_tree_alone(
    tmp_path: Path, flake: Path
) -> None:
    head, lock = git(flake, "rev-parse", "HEAD"), (flake / "flake.lock").read_text()
    (tmp_path / "up" / "default.nix").write_text('{ tool = "1.0.0"; }\n')
    for check in (True, False):  # the same either way: a candidate, the tree untouched
        code, (res,) = play(
            tmp_path, [{"flake_update": {"repo": str(flake)}, "register": "u"}], check=check
        )
        assert code == 0, res
        assert res["changed"] and res["moved"] == ["up"]
        (moved,) = res["inputs"]
        assert moved["from"]["narHash"] != moved["to"]["narHash"]
        assert moved["to"]["date"] and moved["from"]["lastModified"] <= moved["to"]["lastModified"]
        assert res["text"].startswith(f"• up (path:{tmp_path / 'up'}): narHash sha256-")
        assert git(flake, "status", "--porcelain") == ""
        assert git(flake, "rev-parse", "HEAD") == head
        assert (flake / "flake.lock").read_text() == lock
        # the candidate has the new lock on top of HEAD, and Nix evaluates it
        cand = res["candidate"]
        assert git(flake, "rev-parse", f"{cand}^") == head
        assert git(flake, "diff", "--name-only", head, cand) == "flake.lock"
        out = subprocess.run(
            ["nix", "eval", "--raw", f"git+file://{flake}?rev={cand}#version"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout == "1.0.0"
    assert git(flake, "branch", "--list") == "* main"


def test_flake_update_write_keeps_the_new_lock(tmp_path: Path, flake: Path) -> None:
    (tmp_path / "up" / "default.nix").write_text('{ tool = "1.0.0"; }\n')
    task = {"flake_update": {"repo": str(flake), "write": True, "candidate": False}}
    code, (res,) = play(tmp_path, [task], check=True)
    assert code == 0 and "written" not in res and git(flake, "status", "--porcelain") == ""
    code, (res,) = play(tmp_path, [task])
    assert code == 0 and res["written"] and res["candidate"] is None
    assert git(flake, "status", "--porcelain") == "M flake.lock"


def test_flake_update_errors_and_nothing_to_do(tmp_path: Path, flake: Path) -> None:
    code, (res,) = play(tmp_path, [{"flake_update": {"repo": str(flake), "inputs": "upp"}}])
    assert code == 2
    assert res["msg"] == "unknown input 'upp' (did you mean 'up'?) (inputs of cfg: up)"
    code, (res,) = play(tmp_path, [{"flake_update": {"repo": str(flake), "inputs": ["up"]}}])
    assert code == 0 and not res["changed"] and res["msg"] == "no input moved"
    assert git(flake, "status", "--porcelain") == ""
    # a repository that is not there is named, not reported as a missing nix
    code, (res,) = play(tmp_path, [{"flake_update": {"repo": str(tmp_path / "gone")}}])
    assert code == 2 and res["msg"] == f"{tmp_path / 'gone'}: no such repository"


def test_update_commit_publishes_the_candidate_on_a_branch(tmp_path: Path, flake: Path) -> None:
    (tmp_path / "up" / "default.nix").write_text('{ tool = "1.1.0"; }\n')
    tasks = [
        {"flake_update": {"repo": str(flake)}, "register": "u"},
        {
            "update_commit": {
                "repo": str(flake),
                "candidate": "{{ u.candidate }}",
                "title": "flake.lock: update {{ u.moved | join(', ') }}",
                "body": "{{ u.text }}",
                "branch": "upd-%Y",
            },
            "register": "c",
        },
    ]
    code, (_, dry) = play(tmp_path, tasks, check=True)
    assert code == 0 and "sha" not in dry and dry["msg"].startswith("check mode: would commit")
    assert git(flake, "branch", "--list") == "* main"
    code, (upd, res) = play(tmp_path, tasks)
    assert code == 0, res
    assert res["branch"].startswith("upd-20")
    assert git(flake, "rev-parse", "--abbrev-ref", "HEAD") == res["branch"]
    assert git(flake, "status", "--porcelain") == ""
    assert git(flake, "log", "-1", "--format=%B").startswith("flake.lock: update up\n\n• up (path:")
    assert git(flake, "rev-parse", "HEAD^{tree}") == git(
        flake, "rev-parse", f"{upd['candidate']}^{{tree}}"
    )
    assert '"1.1.0"' not in (flake / "flake.lock").read_text()  # the lock pins a hash
    # a candidate whose base moved on is refused
    code, (res,) = play(
        tmp_path,
        [
            {
                "update_commit": {
                    "repo": str(flake),
                    "candidate": upd["candidate"],
                    "title": "x",
                    "branch": "again",
                }
            }
        ],
    )
    assert code == 2 and "moved to" in res["msg"] and "nothing committed" in res["msg"]


def test_nix_prefetch_paths_and_urls(tmp_path: Path) -> None:
    f = tmp_path / "src.txt"
    f.write_bytes(b"hello lab\n")
    digest = hashlib.sha256(b"hello lab\n").digest()
    code, (flat, url) = play(
        tmp_path,
        [
            {"nix_prefetch": {"path": str(f)}},
            {"nix_prefetch": {"url": f"file://{f}"}},
        ],
    )
    assert code == 0
    assert flat["hex"] == digest.hex() == url["hex"]
    assert flat["base32"] == nix32_encode(digest) and flat["sri"] == Hashes(digest).sri
    assert url["store_path"].startswith("/nix/store/")
    code, (res,) = play(tmp_path, [{"nix_prefetch": {"path": str(tmp_path / "nope")}}])
    assert code == 2 and res["msg"] == f"cannot hash {tmp_path / 'nope'}: no such file or directory"
    code, (res,) = play(tmp_path, [{"nix_prefetch": {"path": str(f), "url": "file:///x"}}])
    assert code == 2 and res["msg"] == "give exactly one of 'url' and 'path'"


def test_hash_notations_agree_with_nix(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_text("a\n")
    nar = asyncio.run(hash_path(tmp_path / "d", recursive=True))
    out = subprocess.run(
        ["nix", "hash", "path", "--type", "sha256", "--sri", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert nar.sri == out.stdout.strip()
    for value in (nar.base32, nar.sri, nar.hex):
        assert parse_hash(value).digest == nar.digest
    assert nix32_decode(nar.base32) == nar.digest


@pytest.fixture
def lab_config(tmp_path: Path) -> Path:
    repo = tmp_path / "state" / "config"
    repo.parent.mkdir()
    configrepo.create(repo, pending_change=False)
    return repo


def test_nix_edit_and_nix_affected_on_the_lab_configuration(
    tmp_path: Path, lab_config: Path
) -> None:
    head = git(lab_config, "rev-parse", "HEAD")
    hosts = ["test-web1", "test-db1", "test-mon1", "prod-web1", "test-web2"]
    inv = tmp_path / "hosts.yml"
    inv.write_text(
        yaml.safe_dump(
            {
                "hlplay": {"nix": {"flake": str(lab_config)}},
                "hosts": {
                    h: {
                        "tier": h.split("-")[0],
                        "roles": [h.split("-")[1][:-1]],
                        "transport": "local",
                    }
                    for h in hosts
                },
            },
            sort_keys=False,
        )
    )
    play_file = tmp_path / "edit.yml"
    play_file.write_text(
        yaml.safe_dump(
            [
                {
                    "hosts": "all",
                    "tasks": [
                        {
                            "nix_edit": {"package": "webui-lite", "version": "1.1"},
                            "run_once": True,
                            "register": "e",
                        },
                        {
                            "nix_affected": {"revision": "{{ e.candidate }}"},
                            "run_once": True,
                            "register": "a",
                        },
                    ],
                }
            ]
        )
    )
    result = asyncio.run(run_playbook(play_file, str(inv), check=True))
    assert result.exit_code == 0, result.document
    tasks = result.document["plays"][0]["tasks"]
    edit, affected = (next(iter(t["hosts"].values())) for t in tasks)
    want = nix32_encode(
        hashlib.sha256((lab_config / "src" / "webui-1.1.txt").read_bytes()).digest()
    )
    assert (edit["old_version"], edit["version"], edit["hash"]) == ("1.0", "1.1", want)
    assert edit["file"] == "pkgs/webui-lite.nix" and edit["files"] == ["pkgs/webui-lite.nix"]
    assert (
        git(lab_config, "status", "--porcelain") == ""
        and git(lab_config, "rev-parse", "HEAD") == head
    )
    changed_file = git(lab_config, "show", f"{edit['candidate']}:pkgs/webui-lite.nix")
    assert 'version = "1.1";' in changed_file and want in changed_file
    # only the web hosts' systems contain webui-lite
    assert affected["hosts"] == ["test-web1", "prod-web1", "test-web2"]
    assert affected["unchanged"] == ["test-db1", "test-mon1"]
    assert affected["base"] == head


def test_flake_update_moves_only_the_inputs_named(tmp_path: Path) -> None:
    repo = tmp_path / "two"
    repo.mkdir()
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "default.nix").write_text('{ v = "1"; }\n')
    (repo / "flake.nix").write_text(
        "{\n"
        f'  inputs.a = {{ url = "path:{tmp_path / "a"}"; flake = false; }};\n'
        f'  inputs.b = {{ url = "path:{tmp_path / "b"}"; flake = false; }};\n'
        "  outputs = { self, a, b }: { };\n"
        "}\n"
    )
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "flake.nix")
    subprocess.run(["nix", "flake", "lock", str(repo)], check=True, capture_output=True)
    git(repo, "add", "flake.lock")
    git(repo, "commit", "-qm", "init")
    for name in ("a", "b"):
        (tmp_path / name / "default.nix").write_text('{ v = "2"; }\n')

    code, (res,) = play(tmp_path, [{"flake_update": {"repo": str(repo), "inputs": "a"}}])
    assert code == 0, res
    assert res["moved"] == ["a"] and [i["input"] for i in res["inputs"]] == ["a"]
    code, (res,) = play(tmp_path, [{"flake_update": {"repo": str(repo)}}])
    assert code == 0 and res["moved"] == ["a", "b"], res
