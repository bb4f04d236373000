"""``update_commit``: commit an update with what it changes on each host.

::

    - update_commit:
        candidate: "{{ update.candidate }}"    # from flake_update or nix_edit
        title: "flake.lock: update {{ update.moved | join(', ') }}"
        body: "{{ update.text }}"
        branch: flake-update-%Y%m%d-%H%M        # strftime codes allowed; "" = current branch
        plan_var: plan                          # each host's registered nixos_rebuild diff
      run_once: true
      register: commit

Composes the commit message — the title, the body, then the package changes
per host from the closure diffs the hosts registered (hosts with the same
changes share a line) — and commits the candidate's tree with it on a new
branch, which it checks out. The repository must still be clean at the
candidate's parent (nothing else can have moved meanwhile); the commit then
touches nobody's work. Under ``--check`` the message is shown and nothing is
committed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from hlplay.errors import HlplayError
from hlplay.modules.base import Arg, Module, ModuleResult, TaskContext
from hlplay.modules.flake_update import repo_dir

ROW_RE = re.compile(r"^\[([UDCAR])([*.+-])\]\s+#\d+\s+(\S+)\s+(.*?)\s*$")


def package_changes(diff_text: str) -> list[str]:
    """``nginx-lite 1.24.0 -> 1.25.3`` for each package row of an nvd-style diff."""
    out = []
    for line in diff_text.splitlines():
        m = ROW_RE.match(line.strip())
        if m is None:
            continue
        state, pname, versions = m.group(1), m.group(3), re.sub(r"\s+", " ", m.group(4))
        if state == "A":
            out.append(f"{pname} {versions} (added)")
        elif state == "R":
            out.append(f"{pname} {versions} (removed)")
        else:
            out.append(f"{pname} {versions}")
    return out


def host_changes(plan: Any) -> str:
    """One host's line: its package changes, ``unchanged``, or why it has none."""
    if not isinstance(plan, Mapping):
        return "not built"
    if plan.get("skipped"):
        return "not built"
    if plan.get("unreachable"):
        return f"unreachable: {plan.get('msg', '')}".strip()
    if plan.get("failed"):
        return f"build failed: {plan.get('msg', '')}".strip()
    if not plan.get("changed"):
        return "unchanged"
    diff = plan.get("diff")
    rows = package_changes(diff) if isinstance(diff, str) else []
    if rows:
        return "; ".join(rows)
    return str(plan.get("diff_summary") or "changed")


def hosts_section(plans: Mapping[str, Any]) -> str:
    """Hosts grouped by identical changes, changed ones first."""
    groups: dict[str, list[str]] = {}
    for host, plan in plans.items():
        groups.setdefault(host_changes(plan), []).append(host)
    quiet = ("unchanged", "not built")
    lines = [f"{', '.join(h)}: {what}" for what, h in groups.items() if what not in quiet]
    lines += [f"{what}: {', '.join(h)}" for what, h in groups.items() if what in quiet]
    return "\n".join(lines)


def compose(title: str, body: str, plans: Mapping[str, Any]) -> str:
    parts = [title.strip()]
    if body.strip():
        parts.append(body.strip())
    if plans:
        head = "Package changes per host (against the system it runs):"
        parts.append(f"{head}\n{hosts_section(plans)}")
    return "\n\n".join(parts) + "\n"


def promote_command(ctx: TaskContext, revision: str) -> str:
    """The command that deploys ``revision`` to the prod tier later."""
    playbook_dir = str(ctx.vars.get("playbook_dir") or "playbooks")
    playbook = os.path.join(playbook_dir, "deploy-all.yml")
    sources = [str(s) for s in getattr(ctx.inventory, "sources", ()) or ()]
    inv = "".join(f" -i {_rel(s)}" for s in sources)
    return f"hlplay {_rel(playbook)}{inv} -l tier=prod -e revision={revision}"


def _rel(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return rel if not rel.startswith("../..") else path


class UpdateCommit(Module):
    name = "update_commit"
    summary = "Commit a candidate change on a new branch, with each host's package changes."
    controller_side = True
    supports_check = True
    args: ClassVar[dict[str, Arg]] = {
        "candidate": Arg("str", required=True, help="candidate commit (flake_update, nix_edit)"),
        "title": Arg("str", required=True),
        "body": Arg("str", default=""),
        "branch": Arg("str", default="", help="new branch (strftime codes allowed); '' = current"),
        "plan_var": Arg("str", default="plan"),
        "hosts": Arg("list", elements="str", help="hosts to report (default: those with plan_var)"),
        "repo": Arg("path", help="the configuration (default: the inventory's nix.flake)"),
    }

    async def run(self, ctx: TaskContext, args: dict[str, Any]) -> ModuleResult:
        from hlplay.nix import candidate as cand

        hostvars = ctx.vars.get("hostvars") or {}
        plan_var = str(args.get("plan_var") or "plan")
        names: Sequence[str] = args.get("hosts") or [
            h for h in ctx.inventory.hosts if h in hostvars and plan_var in hostvars[h]
        ]
        plans = {h: (hostvars[h].get(plan_var) if h in hostvars else None) for h in names}
        message = compose(str(args["title"]), str(args.get("body") or ""), plans)
        data: dict[str, Any] = {"message": message, "display": message.rstrip("\n")}
        try:
            branch = cand.branch_name(str(args["branch"])) if args.get("branch") else None
        except ValueError as exc:
            return ModuleResult(failed=True, msg=str(exc), data=data)
        data["branch"] = branch
        where = f"on new branch {branch}" if branch else "on the current branch"
        if ctx.check_mode:
            return ModuleResult(msg=f"check mode: would commit {where}", data=data)
        try:
            repo = str(repo_dir(ctx, args.get("repo")))
            sha = await cand.publish(repo, str(args["candidate"]), message, branch)
        except HlplayError as exc:
            return ModuleResult(failed=True, msg=str(exc), data=data)
        data.update(sha=sha, promote_command=promote_command(ctx, sha))
        return ModuleResult(changed=True, msg=f"committed {sha[:12]} {where}", data=data)
