"""``report``: a Markdown and JSON report built from registered results.

Runs on the controller, usually with ``run_once: true``. ``rows`` is a list
of mappings (one per host, typically built with a Jinja2 expression over
``hostvars``); ``columns`` picks and orders the keys. The Markdown table is
printed as the task's message and, with ``dest``/``json_dest``, written to files.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from hlplay.mdreport import markdown_table as markdown_table
from hlplay.mdreport import render_report as render_report
from hlplay.mdreport import write_report as write_report
from hlplay.modules.base import Arg, Module, ModuleResult, TaskContext


class Report(Module):
    name = "report"
    summary = "Write a Markdown and JSON report from a list of rows (registered results)."
    controller_side = True
    supports_check = True
    args: ClassVar[dict[str, Arg]] = {
        "title": Arg("str", default="Report"),
        "rows": Arg("list", required=True),
        "columns": Arg("list", elements="str"),
        "summary": Arg("raw"),
        "dest": Arg("path", help="write the Markdown here"),
        "json_dest": Arg("path", help="write the JSON here"),
        "fail_when_any": Arg("str", help="fail the task when any row has this key truthy"),
        "sections": Arg("list", help="after the table: [{title, markdown, data}]"),
        "show": Arg("bool", default=False, help="print the Markdown under the task's result"),
    }

    async def run(self, ctx: TaskContext, args: dict[str, Any]) -> ModuleResult:
        rows = [r if isinstance(r, dict) else {"value": r} for r in (args.get("rows") or [])]
        sections = [
            sec if isinstance(sec, dict) else {"title": "", "markdown": str(sec)}
            for sec in (args.get("sections") or [])
        ]
        md, doc = render_report(
            args.get("title") or "Report",
            rows,
            list(args.get("columns") or []),
            args.get("summary"),
            sections,
        )
        # a report is output, not a change: it is written in check mode too
        for key, content in (("dest", md), ("json_dest", json.dumps(doc, indent=2, default=str))):
            dest = args.get(key)
            if dest:
                problem = write_report(str(dest), content)
                if problem:
                    return ModuleResult(failed=True, msg=problem, data={"markdown": md})
        flag = args.get("fail_when_any")
        bad = [r for r in rows if flag and r.get(flag)]
        return ModuleResult(
            failed=bool(bad),
            msg=md,
            data={
                "report": doc,
                "markdown": md,
                "bad_rows": len(bad),
                **({"display": md} if args.get("show") else {}),
            },
        )
