"""``flake_update``: move a flake's inputs and say what moved.

::

    - flake_update:
        repo: /srv/config         # default: the inventory's nix.flake
        inputs: [nixpkgs]         # default: every input
      register: update

Runs ``nix flake update`` (every input) or ``nix flake lock --update-input X``
(the named ones; Nix 2.8 spelling) in the repository, reads the old and new
``flake.lock`` and diffs them: ``update.inputs`` lists each moved input with
its ``from`` and ``to`` pins (revision or NAR hash, ``lastModified`` and its
date), ``update.text`` says it in one line per input.

The working tree is left as it was (unless ``write: true``) — the new lock is
put back to the old one at once — and the change becomes a *candidate* commit (``update.candidate``)
that no branch points to: hosts can build and diff it, and ``update_commit``
commits it for good. So the module behaves the same under ``--check``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, ClassVar

from hlplay.errors import HlplayError, did_you_mean
from hlplay.modules.base import Arg, Module, ModuleResult, TaskContext

LOCK_FILE = "flake.lock"
NIX_FLAGS = ("--extra-experimental-features", "nix-command flakes")


def repo_dir(ctx: TaskContext, given: Any) -> Path:
    """The configuration repository: ``repo``, else the inventory's flake (a local path)."""
    from hlplay.nix.flakeref import local_repo

    flake = str(given or ctx.inventory.settings.nix.flake)
    local = local_repo(flake)
    if local is None:
        raise HlplayError(f"{flake} is not a local repository: give 'repo'")
    if not Path(local).is_dir():
        raise HlplayError(f"{local}: no such repository")
    return Path(local)


class FlakeUpdate(Module):
    name = "flake_update"
    summary = "Update a flake's inputs (all or some) and diff the lock: what moved, from and to."
    controller_side = True
    supports_check = True
    args: ClassVar[dict[str, Arg]] = {
        "repo": Arg("path", help="the flake's repository (default: the inventory's nix.flake)"),
        "inputs": Arg("list", elements="str", default=[], help="inputs to update (default: all)"),
        "candidate": Arg("bool", default=True, help="make a candidate commit with the new lock"),
        "write": Arg("bool", default=False, help="keep the new lock (not under --check)"),
        "timeout": Arg("float", default=600.0),
    }

    async def run(self, ctx: TaskContext, args: dict[str, Any]) -> ModuleResult:
        from hlplay.nix import candidate as cand
        from hlplay.nix import flakelock
        from hlplay.proc import run_argv

        try:
            repo = repo_dir(ctx, args.get("repo"))
            lock_path = repo / LOCK_FILE
            old_bytes = lock_path.read_bytes() if lock_path.exists() else None
            old = flakelock.parse_lock(old_bytes.decode(), str(lock_path)) if old_bytes else (
                flakelock.FlakeLock(version=7, inputs={})
            )
        except (HlplayError, OSError, UnicodeDecodeError) as exc:
            return ModuleResult(failed=True, msg=str(exc))
        names = [str(n) for n in args.get("inputs") or []]
        for name in names:
            if old.root_names and name not in old.root_names:
                known = ", ".join(old.root_names)
                return ModuleResult(
                    failed=True,
                    msg=f"unknown input '{name}'{did_you_mean(name, old.root_names)}"
                    f" (inputs of {repo.name}: {known})",
                )
        if names:
            argv = ["nix", *NIX_FLAGS, "flake", "lock"]
            for name in names:
                argv += ["--update-input", name]
        else:
            argv = ["nix", *NIX_FLAGS, "flake", "update"]
        argv.append(str(repo))
        try:
            res = await run_argv(argv, timeout=float(args.get("timeout") or 600), cwd=str(repo))
            new_bytes = lock_path.read_bytes() if lock_path.exists() else b""
        finally:
            await _restore(repo, lock_path, old_bytes)
        if res.rc != 0:
            lines = (res.stderr or res.stdout).strip().splitlines()
            errors = [ln for ln in lines if ln.startswith("error")] or lines
            detail = errors[-1] if errors else f"exit {res.rc}"
            return ModuleResult(failed=True, rc=res.rc, stderr=res.stderr,
                                msg=f"{' '.join(argv[3:5])} failed: {detail}")
        try:
            new = flakelock.parse_lock(new_bytes.decode(), str(lock_path))
        except (HlplayError, UnicodeDecodeError) as exc:
            return ModuleResult(failed=True, msg=f"the new lock: {exc}")
        changes = flakelock.diff_locks(old, new)
        text = flakelock.render_changes(changes)
        moved = [c.path for c in changes]
        data: dict[str, Any] = {
            "repo": str(repo),
            "inputs": [c.to_dict() for c in changes],
            "moved": moved,
            "text": text,
            "display": text,
            "files": [LOCK_FILE],
            "candidate": None,
        }
        if not changes:
            return ModuleResult(msg="no input moved", data=data)
        if args.get("write") and not ctx.check_mode:
            lock_path.write_bytes(new_bytes)
            data["written"] = True
        if args.get("candidate", True):
            title = f"flake.lock: update {', '.join(moved)}"
            try:
                made = await cand.make(str(repo), {LOCK_FILE: new_bytes}, f"{title}\n\n{text}\n")
            except HlplayError as exc:
                return ModuleResult(failed=True, msg=str(exc), data=data)
            data.update(candidate=made.sha, base=made.parent)
        summary = ", ".join(moved)
        return ModuleResult(changed=True, msg=f"moved: {summary}", data=data)


async def _restore(repo: Path, lock_path: Path, old: bytes | None) -> None:
    """Put the lock file back as it was; a lock Nix created is dropped from the index too."""
    if old is not None:
        if not lock_path.exists() or lock_path.read_bytes() != old:
            lock_path.write_bytes(old)
        return
    if lock_path.exists():
        lock_path.unlink()
        from hlplay import gitrepo

        # Nix adds a lock it creates to the index (intent to add)
        with contextlib.suppress(gitrepo.GitError):
            await gitrepo.git(
                str(repo), "rm", "-q", "--cached", "--ignore-unmatch", "--", LOCK_FILE
            )
