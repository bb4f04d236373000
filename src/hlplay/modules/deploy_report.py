"""``deploy_report``: the summary table of a deploy, one row per host.

Reads what earlier tasks registered on each host (the build/diff result and
the activation result) through ``hostvars`` and prints a Markdown table: old
and new generation, revision, closure diff size, and the outcome, including
rollbacks. Runs on the controller; writes Markdown and JSON files on request.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from hlplay.mdreport import markdown_table, write_report
from hlplay.modules.base import Arg, Module, ModuleResult, TaskContext

COLUMNS = ["host", "tier", "via", "old gen", "new gen", "revision", "diff", "result"]


def _get(doc: Any, key: str) -> Any:
    if isinstance(doc, Mapping):
        return doc.get(key)
    return None


def outcome(plan: Any, deploy: Any, check: bool = False) -> tuple[str, bool]:
    """The result column and whether the host counts as failed.

    A host that nothing ran on (its tier was never reached) is "not
    deployed", never failed: the run's failure is another host's.
    """
    if plan is None:
        return "not reached", False
    if _get(plan, "unreachable"):
        return "unreachable", True
    if _get(plan, "failed"):
        return f"build failed: {_get(plan, 'msg') or ''}".strip(), True
    if not _get(plan, "changed"):
        return "unchanged", False
    if deploy is None:
        return ("would change" if check else "not deployed"), False
    if _get(deploy, "unreachable"):
        return "unreachable", True
    if _get(deploy, "skipped"):
        return "not deployed", False
    if _get(deploy, "failed"):
        rollback = _get(deploy, "rollback")
        how = "rolled back" if _get(deploy, "rolled_back") else "failed"
        gen = _get(rollback, "generation") if isinstance(rollback, Mapping) else None
        where = f" to generation {gen}" if gen is not None else ""
        error = _get(deploy, "error") or "failed"
        return f"{how}{where} ({error})", True
    return "deployed", False


class DeployReport(Module):
    name = "deploy_report"
    summary = "Summary table of a deploy: generations, revision, diff size and outcome per host."
    controller_side = True
    supports_check = True
    args: ClassVar[dict[str, Arg]] = {
        "hosts": Arg("list", elements="str", help="hosts to report (default: every host planned)"),
        "plan_var": Arg("str", default="plan"),
        "deploy_var": Arg("str", default="deploy"),
        "dest": Arg("path", help="write the Markdown report here"),
        "json_dest": Arg("path", help="write the JSON report here"),
    }

    async def run(self, ctx: TaskContext, args: dict[str, Any]) -> ModuleResult:
        report_dir = ctx.vars.get("report_dir")
        if report_dir is not None and not (isinstance(report_dir, str) and report_dir.strip()):
            # deploy-all joins it into dest: a list would become a directory named "['x']"
            got = json.dumps(report_dir, default=str)
            return ModuleResult(failed=True, msg=f"report_dir must be a directory path, got {got}")
        hostvars = ctx.vars.get("hostvars") or {}
        plan_var = args.get("plan_var") or "plan"
        deploy_var = args.get("deploy_var") or "deploy"
        names = list(args.get("hosts") or [])
        if not names:
            names = [h for h in ctx.inventory.hosts if h in hostvars and plan_var in hostvars[h]]
        rows: list[dict[str, Any]] = []
        failed = 0
        for name in names:
            host = ctx.inventory.hosts.get(name)
            hv = hostvars.get(name, {})
            plan = hv.get(plan_var) if plan_var in hv else None
            deploy = hv.get(deploy_var) if deploy_var in hv else None
            result, bad = outcome(plan, deploy, ctx.check_mode)
            failed += bad
            src = deploy if isinstance(deploy, Mapping) and not _get(deploy, "skipped") else plan
            new_gen = _get(src, "generation") if src is deploy else None
            if _get(deploy, "rolled_back"):
                new_gen = None
            rows.append(
                {
                    "host": name,
                    "tier": host.tier if host else "",
                    "via": host.transport if host else "",
                    "old gen": _get(plan, "old_generation"),
                    "new gen": new_gen,
                    "revision": (str(_get(src, "revision") or "")[:12]) or None,
                    "diff": _get(plan, "diff_summary"),
                    "result": result,
                }
            )
        counts: dict[str, int] = {}
        for r in rows:
            # "rolled back to generation 3 (activation_failed)" counts as "rolled back"
            key = re.split(r" to | \(|: ", str(r["result"]), maxsplit=1)[0]
            counts[key] = counts.get(key, 0) + 1
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        if not rows:
            summary = "the run stopped before any host was built"
        md = (
            "## Deploy summary\n\n"
            + markdown_table(rows, COLUMNS)
            + f"\n\n{len(rows)} hosts: {summary}\n"
        )
        doc = {"hosts": rows, "counts": counts, "failed": failed}
        # a report is output, not a change: it is written in check mode too
        data = {"report": doc, "markdown": md, "display": md}
        for key, content in (("dest", md), ("json_dest", json.dumps(doc, indent=2, default=str))):
            dest = args.get(key)
            problem = write_report(str(dest), content) if dest else None
            if problem:
                return ModuleResult(failed=True, msg=problem, data=data)
        summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary_file:
            # in GitHub Actions the table also lands on the run's summary page
            try:
                with open(summary_file, "a", encoding="utf-8") as fh:
                    fh.write(md + "\n")
            except OSError as exc:
                data["warning"] = f"GITHUB_STEP_SUMMARY not written: {exc.strerror or exc}"
        return ModuleResult(msg=md, data=data)
