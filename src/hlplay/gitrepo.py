"""Read and change the configuration's git repository (argv only, never a shell)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from hlplay.errors import HlplayError
from hlplay.proc import CommandResult, run_argv

GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_AUTHOR_NAME": "hlplay",
    "GIT_AUTHOR_EMAIL": "hlplay@localhost",
    "GIT_COMMITTER_NAME": "hlplay",
    "GIT_COMMITTER_EMAIL": "hlplay@localhost",
}


class GitError(HlplayError):
    """A git command failed."""


@dataclass
class RepoStatus:
    head: str
    branch: str | None  # None when detached
    dirty: list[str] = field(default_factory=list)  # porcelain lines

    @property
    def clean(self) -> bool:
        return not self.dirty


async def git(repo: str, *args: str, timeout: float = 60.0, check: bool = True) -> CommandResult:
    """Run ``git -C repo args…``; with ``check``, a non-zero exit raises :class:`GitError`."""
    env = dict(GIT_ENV)
    res = await run_argv(["git", "-C", repo, *args], timeout=timeout, env=env)
    if check and res.rc != 0:
        detail = (res.stderr or res.stdout).strip().splitlines()
        raise GitError(f"git {' '.join(args)} failed in {repo}: {detail[-1] if detail else res.rc}")
    return res


async def status(repo: str) -> RepoStatus:
    head = (await git(repo, "rev-parse", "HEAD")).stdout.strip()
    br = await git(repo, "symbolic-ref", "--short", "-q", "HEAD", check=False)
    porcelain = (await git(repo, "status", "--porcelain")).stdout.splitlines()
    return RepoStatus(head=head, branch=br.stdout.strip() or None, dirty=porcelain)


async def resolve(repo: str, rev: str = "HEAD") -> str:
    """A revision name to its commit id; GitError naming the revision when there is none."""
    # git would read a leading "-" as an option
    if not rev or rev.startswith("-") or any(c.isspace() or ord(c) < 32 for c in rev):
        raise GitError(f"not a revision: {rev!r}")
    res = await git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
    if res.rc != 0:
        raise GitError(f"unknown revision {rev!r} in {repo}")
    return res.stdout.strip()


async def commit(repo: str, message: str, paths: Sequence[str] = ()) -> str | None:
    """Stage ``paths`` (all changes when empty) and commit; None when nothing changed."""
    if paths:
        await git(repo, "add", "--", *paths)
    else:
        await git(repo, "add", "-A")
    if (await git(repo, "diff", "--cached", "--quiet", check=False)).rc == 0:
        return None
    await git(repo, "commit", "-q", "-m", message)
    return await resolve(repo)


async def create_branch(repo: str, name: str, start: str = "HEAD") -> None:
    await git(repo, "checkout", "-q", "-b", name, start)


async def switch(repo: str, name: str) -> None:
    await git(repo, "checkout", "-q", name)
