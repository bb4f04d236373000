"""Candidate commits: a change to the configuration as a commit no branch points to.

Hosts build the configuration from a git revision, so a change must be a
commit before any host can build it — but a dry run must not commit, and a run
that fails half-way must not leave a half-made change behind. A *candidate* is
made with git's plumbing and a throw-away index: the working tree, the index
and every branch stay as they were. Hosts build and diff the candidate; when
the change is kept, :func:`publish` commits the same tree on a new branch and
checks it out (the tree being clean, nothing can be lost); when it is not, git
forgets the candidate by itself.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hlplay import gitrepo
from hlplay.proc import run_argv

BRANCH_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")


@dataclass(frozen=True)
class Candidate:
    sha: str
    parent: str
    tree: str


async def _git(repo: str, *args: str, env: Mapping[str, str] | None = None,
               stdin: bytes | None = None) -> str:
    full = dict(gitrepo.GIT_ENV)
    if env:
        full.update(env)
    res = await run_argv(["git", "-C", repo, *args], env=full, stdin=stdin, timeout=60)
    if res.rc != 0:
        detail = (res.stderr or res.stdout).strip().splitlines()
        raise gitrepo.GitError(
            f"git {' '.join(args[:2])} failed in {repo}: {detail[-1] if detail else res.rc}"
        )
    return res.stdout.strip()


async def make(
    repo: str, files: Mapping[str, bytes], message: str, parent: str = "HEAD"
) -> Candidate:
    """A commit of ``parent`` with ``files`` (paths relative to the repo) replaced."""
    parent_sha = await gitrepo.resolve(repo, parent)
    with tempfile.TemporaryDirectory(prefix="hlplay-candidate-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        await _git(repo, "read-tree", parent_sha, env=env)
        for rel, data in files.items():
            blob = await _git(repo, "hash-object", "-w", "--stdin", stdin=data)
            mode = "100644"
            listed = await _git(repo, "ls-files", "-s", "--", rel, env=env)
            if listed:
                mode = listed.split()[0]
            entry = f"{mode},{blob},{rel}"
            await _git(repo, "update-index", "--add", "--cacheinfo", entry, env=env)
        tree = await _git(repo, "write-tree", env=env)
    sha = await _git(repo, "commit-tree", tree, "-p", parent_sha, "-m", message)
    return Candidate(sha=sha, parent=parent_sha, tree=tree)


def branch_name(template: str, now: float | None = None) -> str:
    """``flake-update-%Y%m%d-%H%M`` -> ``flake-update-20261122-0301`` (local time)."""
    name = time.strftime(template, time.localtime(now)) if "%" in template else template
    if not BRANCH_RE.fullmatch(name) or ".." in name or name.endswith((".lock", "/", ".")):
        raise ValueError(f"invalid branch name {name!r}")
    return name


async def publish(repo: str, candidate: str, message: str, branch: str | None) -> str:
    """Commit the candidate's tree with ``message`` on a new ``branch`` (or the current one).

    The repository must still be clean at the candidate's parent: the commit
    then checks out without touching anyone's work.
    """
    tree = await _git(repo, "rev-parse", "--verify", f"{candidate}^{{tree}}")
    parent = await _git(repo, "rev-parse", "--verify", f"{candidate}^")
    status = await gitrepo.status(repo)
    if status.head != parent:
        raise gitrepo.GitError(
            f"{repo} moved to {status.head[:12]} while the update ran "
            f"(it started at {parent[:12]}): nothing committed"
        )
    if not status.clean:
        raise gitrepo.GitError(f"{repo} has uncommitted changes now: nothing committed")
    sha = await _git(repo, "commit-tree", tree, "-p", parent, "-m", message)
    if branch:
        await _git(repo, "checkout", "-q", "-b", branch, sha)
    else:
        ref = status.branch and f"refs/heads/{status.branch}"
        if not ref:
            raise gitrepo.GitError(f"{repo} is on a detached HEAD: give a branch")
        await _git(repo, "update-ref", "-m", "hlplay: commit", ref, sha, parent)
        await _git(repo, "read-tree", "-m", "-u", parent, sha)
    return sha
