"""``git``: status, branch and commit in the configuration repository.

Runs on the controller. ``action: status`` fails when ``require_clean`` is set
and the tree has changes, or when ``require_branch`` names another branch.
"""

from __future__ import annotations

from typing import Any, ClassVar

from hlplay import gitrepo
from hlplay.modules.base import Arg, Module, ModuleResult, TaskContext


class Git(Module):
    name = "git"
    summary = "Status, branch and commit in a git repository (the configuration flake)."
    controller_side = True
    supports_check = True
    args: ClassVar[dict[str, Arg]] = {
        "repo": Arg("path", help="repository (default: the inventory's nix.flake)"),
        "action": Arg("str", default="status", choices=("status", "branch", "commit", "rev_parse")),
        "require_clean": Arg("bool", default=False),
        "require_branch": Arg("str"),
        "branch": Arg("str", help="branch to create (action: branch)"),
        "message": Arg("str", help="commit message (action: commit)"),
        "paths": Arg("list", elements="str", default=[]),
        "rev": Arg("str", default="HEAD"),
    }

    async def run(self, ctx: TaskContext, args: dict[str, Any]) -> ModuleResult:
        repo = str(args.get("repo") or ctx.inventory.settings.nix.flake)
        action = args.get("action") or "status"
        try:
            if action == "status":
                st = await gitrepo.status(repo)
                data = {"head": st.head, "branch": st.branch, "clean": st.clean, "dirty": st.dirty}
                if args.get("require_clean") and not st.clean:
                    files = ", ".join(line[3:] for line in st.dirty[:5])
                    more = f" and {len(st.dirty) - 5} more" if len(st.dirty) > 5 else ""
                    return ModuleResult(
                        failed=True,
                        msg=f"working tree of {repo} has uncommitted changes: {files}{more}",
                        data=data,
                    )
                want = args.get("require_branch")
                if want and st.branch != want:
                    return ModuleResult(
                        failed=True,
                        msg=f"{repo} is on {st.branch or 'a detached HEAD'}, not {want}",
                        data=data,
                    )
                return ModuleResult(msg=f"{st.branch or 'HEAD'} at {st.head[:12]}", data=data)
            if action == "rev_parse":
                sha = await gitrepo.resolve(repo, args.get("rev") or "HEAD")
                return ModuleResult(msg=sha, data={"sha": sha})
            if action == "branch":
                name = args.get("branch")
                if not name:
                    return ModuleResult(failed=True, msg="action branch needs 'branch'")
                if ctx.check_mode:
                    return ModuleResult(changed=True, msg=f"would create branch {name}")
                await gitrepo.create_branch(repo, name)
                return ModuleResult(
                    changed=True, msg=f"created branch {name}", data={"branch": name}
                )
            if action == "commit":
                message = args.get("message")
                if not message:
                    return ModuleResult(failed=True, msg="action commit needs 'message'")
                if ctx.check_mode:
                    return ModuleResult(msg="check mode: nothing committed")
                committed = await gitrepo.commit(repo, message, args.get("paths") or [])
                if committed is None:
                    return ModuleResult(msg="nothing to commit")
                return ModuleResult(
                    changed=True, msg=f"committed {committed[:12]}", data={"sha": committed}
                )
        except gitrepo.GitError as exc:
            return ModuleResult(failed=True, msg=exc.message)
        return ModuleResult(failed=True, msg=f"unknown action {action}")
