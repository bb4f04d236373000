"""The ``git`` module on its own: the prerequisites and commits the update playbooks use.

Real git in a temporary repository; the tasks run on localhost through the engine.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from hlplay.engine.api import run_playbook


def git(repo: Path, *args: str) -> str:
    res = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return res.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "cfg"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "flake.nix").write_text("{ outputs = { self }: { }; }\n")
    git(path, "add", "flake.nix")
    git(path, "commit", "-qm", "init")
    return path


def play(
    tmp_path: Path, tasks: list[dict[str, Any]], *, check: bool = False
) -> tuple[int, list[dict[str, Any]]]:
    """Run ``tasks`` on localhost; the exit code and each task's result."""
    path = tmp_path / f"play{len(list(tmp_path.glob('play*.yml')))}.yml"
    path.write_text(yaml.safe_dump([{"hosts": "localhost", "tasks": tasks}]))
    result = asyncio.run(run_playbook(path, None, check=check))
    results = [t["hosts"]["localhost"] for p in result.document["plays"] for t in p["tasks"]]
    return result.exit_code, results


def task(repo: Path, **args: Any) -> dict[str, Any]:
    return {"git": {"repo": str(repo), **args}}


def test_status_reports_head_and_branch_and_passes_on_a_clean_tree(
    tmp_path: Path, repo: Path
) -> None:
    code, (res,) = play(tmp_path, [task(repo, require_clean=True, require_branch="main")])
    assert code == 0, res
    assert res["head"] == git(repo, "rev-parse", "HEAD")
    assert (res["branch"], res["clean"], res["dirty"]) == ("main", True, [])


def test_status_fails_on_uncommitted_changes_and_on_another_branch(
    tmp_path: Path, repo: Path
) -> None:
    (repo / "flake.nix").write_text("{ outputs = { self }: { x = 1; }; }\n")
    (repo / "new.nix").write_text("{ }\n")
    code, (res,) = play(tmp_path, [task(repo, require_clean=True)])
    assert code == 2 and res["failed"]
    assert res["msg"] == f"working tree of {repo} has uncommitted changes: flake.nix, new.nix"
    # without require_clean the same tree is only reported
    code, (res,) = play(tmp_path, [task(repo)])
    assert code == 0 and not res["clean"] and len(res["dirty"]) == 2
    git(repo, "checkout", "-q", "-b", "topic")
    code, (res,) = play(tmp_path, [task(repo, require_branch="main")])
    assert code == 2 and res["msg"] == f"{repo} is on topic, not main"
    git(repo, "checkout", "-q", "--detach")
    code, (res,) = play(tmp_path, [task(repo, require_branch="main")])
    assert code == 2 and res["msg"] == f"{repo} is on a detached HEAD, not main"


def test_rev_parse_resolves_names_and_refuses_what_is_not_a_revision(
    tmp_path: Path, repo: Path
) -> None:
    head = git(repo, "rev-parse", "HEAD")
    git(repo, "tag", "v1")
    code, results = play(
        tmp_path,
        [task(repo, action="rev_parse"), task(repo, action="rev_parse", rev="v1")],
    )
    assert code == 0 and [r["sha"] for r in results] == [head, head]
    for rev, message in (
        ("nosuch", f"unknown revision 'nosuch' in {repo}"),
        ("--output=/tmp/x", "not a revision: '--output=/tmp/x'"),
        (";rm -rf /", "not a revision: ';rm -rf /'"),
    ):
        code, (res,) = play(tmp_path, [task(repo, action="rev_parse", rev=rev)])
        assert code == 2 and res["msg"] == message, res


def test_branch_and_commit_change_nothing_in_check_mode(tmp_path: Path, repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    (repo / "new.nix").write_text("{ }\n")
    tasks = [
        task(repo, action="branch", branch="update-x"),
        task(repo, action="commit", message="add new.nix", paths=["new.nix"]),
    ]
    code, (branch, commit) = play(tmp_path, tasks, check=True)
    assert code == 0
    assert branch["changed"] and branch["msg"] == "would create branch update-x"
    assert not commit["changed"] and commit["msg"] == "check mode: nothing committed"
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert git(repo, "rev-parse", "HEAD") == head

    code, (branch, commit) = play(tmp_path, tasks)
    assert code == 0 and branch["changed"] and commit["changed"]
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "update-x"
    assert commit["sha"] == git(repo, "rev-parse", "HEAD") != head
    assert git(repo, "log", "-1", "--format=%s") == "add new.nix"
    assert git(repo, "status", "--porcelain") == ""
    # nothing left to commit is not a change
    code, (res,) = play(tmp_path, [task(repo, action="commit", message="again")])
    assert code == 0 and not res["changed"] and res["msg"] == "nothing to commit"


def test_missing_arguments_and_a_missing_repository_are_one_line_failures(
    tmp_path: Path, repo: Path
) -> None:
    code, results = play(
        tmp_path,
        [
            {**task(repo, action="branch"), "ignore_errors": True},
            {**task(repo, action="commit"), "ignore_errors": True},
            task(tmp_path / "nowhere"),
        ],
    )
    assert code == 2
    assert [r["msg"] for r in results[:2]] == [
        "action branch needs 'branch'",
        "action commit needs 'message'",
    ]
    assert results[2]["failed"] and str(tmp_path / "nowhere") in results[2]["msg"]
    assert "\n" not in results[2]["msg"]
