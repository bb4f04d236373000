"""``report``: a Markdown and JSON report built from registered results.

Runs on the controller, usually with ``run_once: true``. ``rows`` is a list
of mappings (one per host, typically built with a Jinja2 expression over
``hostvars``); ``columns`` picks and orders the keys. The Markdown table is
printed as the task's message and, with ``dest``/``json_dest``, written to files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from hlplay.modules.base import Arg, Module, ModuleResult, TaskContext


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value).replace("|", "\\|").replace("\n", " ")


def write_report(dest: str, content: str) -> str | None:
    """Write ``content`` to ``dest`` (its directory made as needed); a message when it cannot."""
    try:
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        Path(dest).write_text(content if content.endswith("\n") else content + "\n")
    except OSError as exc:
        return f"cannot write the report to {dest}: {exc.strerror or exc}"
    return None


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def render_report(
    title: str,
    rows: list[dict[str, Any]],
    columns: list[str] | None = None,
    summary: Any = None,
    sections: list[dict[str, Any]] | None = None,
) -> tuple[str, dict[str, Any]]:
    """The Markdown text and the JSON document of a report.

    ``sections`` (optional) follow the table: each a mapping with ``title``,
    ``markdown`` (printed under a ``###`` heading) and ``data`` (kept in the JSON).
    """
    columns = list(columns or [])
    if not columns:
        for r in rows:
            for k in r:
                if k not in columns:
                    columns.append(k)
    md = f"## {title}\n\n" + (markdown_table(rows, columns) if rows else "_no rows_") + "\n"
    if summary:
        md += f"\n{summary}\n"
    doc: dict[str, Any] = {"title": title, "columns": columns, "rows": rows, "summary": summary}
    if sections:
        for sec in sections:
            md += f"\n### {sec.get('title', '')}\n\n{str(sec.get('markdown') or '').strip()}\n"
        doc["sections"] = [
            {"title": sec.get("title", ""), "data": sec.get("data")} for sec in sections
        ]
    return md, doc


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
