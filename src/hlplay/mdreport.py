"""Markdown and JSON reports: a table of rows, a summary line, sections after it.

The ``report`` and ``deploy_report`` modules and the fleet health report
(``hlplay.health.report``) write their reports with this; it sits below all
of them. Nothing from hlplay is imported here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


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
