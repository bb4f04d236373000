"""Console output in ansible-playbook's style, ending with the PLAY RECAP.

Colour only on a terminal, and never when ``NO_COLOR`` or ``HLPLAY_NO_COLOR``
is set. Plain ANSI codes: this runs for every host result and must be cheap.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from typing import Any, TextIO

from hlplay.engine.events import (
    BatchStarted,
    Event,
    Forged,
    HostResult,
    ItemResult,
    NoHostsMatched,
    NoMoreHosts,
    PlaybookEnded,
    PlayStarted,
    RetryAttempt,
    TaskStarted,
    Warning_,
)
from hlplay.engine.results import HostStats

_CODES = {
    "green": "32",
    "yellow": "33",
    "red": "31",
    "bright_red": "1;31",
    "cyan": "36",
    "magenta": "35",
    "bright_magenta": "1;35",
    "gray": "90",
}
_STATUS_COLOR = {
    "ok": "green",
    "changed": "yellow",
    "failed": "red",
    "rescued": "red",
    "ignored": "red",
    "unreachable": "bright_red",
    "skipped": "cyan",
}
_DEBUG_KEYS = ("msg", "exception", "warnings")
_HIDDEN = frozenset(("ansible_loop_var", "ansible_index_var"))


def use_color(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR") or os.environ.get("HLPLAY_NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _dump(data: Any, indent: int | None) -> str:
    return json.dumps(data, sort_keys=True, default=str, indent=indent, ensure_ascii=False)


class ConsoleReporter:
    """Writes one line per host result, banners per play and task, and the recap."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        verbosity: int = 0,
        color: bool | None = None,
        err: TextIO | None = None,
    ) -> None:
        self.out = stream if stream is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.verbosity = verbosity
        self.color = use_color(self.out) if color is None else color
        width = shutil.get_terminal_size((80, 24)).columns if self.color else 80
        self.columns = max(79, width - 1)
        self._banner_task: int | None = None
        self._banner_text = ""
        self._play_name = ""
        self._forged: list[Forged] = []

    # --- output ---------------------------------------------------------------------

    def _c(self, text: str, color: str | None) -> str:
        if not self.color or color is None:
            return text
        return f"\x1b[{_CODES[color]}m{text}\x1b[0m"

    def _line(self, text: str, color: str | None = None) -> None:
        self.out.write(self._c(text, color) + "\n")

    def _banner(self, text: str) -> None:
        stars = "*" * max(3, self.columns - len(text))
        self.out.write(f"\n{text} {stars}\n")

    # --- events ---------------------------------------------------------------------

    def handle(self, event: Event) -> None:
        if isinstance(event, HostResult):
            self._host_result(event)
        elif isinstance(event, ItemResult):
            self._item_result(event)
        elif isinstance(event, TaskStarted):
            kind = "RUNNING HANDLER" if event.task.is_handler else "TASK"
            self._banner_text = f"{kind} [{event.task.name}]"
            self._banner_task = event.task.id
            self._banner(self._banner_text)
            if self.verbosity >= 2 and event.task.location:
                self._line(f"task path: {event.task.location}")
            self.out.flush()
        elif isinstance(event, PlayStarted):
            self._play_name = event.name
            self._banner_task = None
            suffix = " [CHECK MODE]" if event.check else ""
            self._banner(f"PLAY [{event.name}]{suffix}")
        elif isinstance(event, BatchStarted):
            self._banner_task = None
            hosts = ", ".join(event.hosts)
            self._banner(f"BATCH [{event.index}/{event.total}] {hosts}")
        elif isinstance(event, RetryAttempt):
            self._line(
                f"FAILED - RETRYING: [{event.host}]: {event.task.name} "
                f"({event.retries_left} retries left).",
                "red" if self.verbosity else None,
            )
        elif isinstance(event, NoHostsMatched):
            self._line("skipping: no hosts matched", "cyan")
        elif isinstance(event, NoMoreHosts):
            self._banner("NO MORE HOSTS LEFT")
            if event.reason and self.verbosity:
                self._line(event.reason)
        elif isinstance(event, Forged):
            self._forged.append(event)
        elif isinstance(event, Warning_):
            self.out.flush()
            self.err.write(self._c(f"[WARNING]: {event.message}", "bright_magenta") + "\n")
            self.err.flush()
        elif isinstance(event, PlaybookEnded):
            self._recap(event)

    def _rebanner(self, task_id: int, name: str, handler: bool) -> None:
        """Free strategy: results of different tasks interleave; say whose they are."""
        if self._banner_task != task_id:
            kind = "RUNNING HANDLER" if handler else "TASK"
            self._banner_task = task_id
            self._banner(f"{kind} [{name}]")

    def _host_label(self, host: str, delegated: str | None) -> str:
        return f"[{host} -> {delegated}]" if delegated and delegated != host else f"[{host}]"

    def _show_diff(self, result: dict[str, Any]) -> None:
        diff = result.get("diff")
        if diff is None or diff == "" or diff == {}:
            return
        if isinstance(diff, str):
            text = diff
        elif isinstance(diff, dict) and ("before" in diff or "after" in diff):
            before = str(diff.get("before", ""))
            after = str(diff.get("after", ""))
            import difflib

            text = "".join(
                difflib.unified_diff(
                    before.splitlines(keepends=True),
                    after.splitlines(keepends=True),
                    fromfile=str(diff.get("before_header", "before")),
                    tofile=str(diff.get("after_header", "after")),
                )
            )
        else:
            text = _dump(diff, 4)
        for line in text.rstrip("\n").splitlines():
            color = None
            if line.startswith("+") and not line.startswith("+++"):
                color = "green"
            elif line.startswith("-") and not line.startswith("---"):
                color = "red"
            elif line.startswith("@@"):
                color = "cyan"
            self._line(line, color)

    def _display_result(self, action: str, result: dict[str, Any]) -> dict[str, Any]:
        shown = {k: v for k, v in result.items() if k not in _HIDDEN}
        if action == "debug" and "censored" not in shown:
            if shown.get("msg", "") != "" or not any(
                k not in ("changed", "failed", "msg", "skipped", "skip_reason") for k in shown
            ):
                return {k: shown[k] for k in _DEBUG_KEYS if k in shown}
            return {
                k: v
                for k, v in shown.items()
                if k not in ("changed", "failed", "msg", "skipped", "skip_reason")
            }
        return shown

    def _host_result(self, ev: HostResult) -> None:
        self._rebanner(ev.task.id, ev.task.name, ev.task.is_handler)
        result = ev.result
        label = self._host_label(ev.host, ev.delegated_to)
        status = ev.status
        if ev.diff_mode and not ev.is_loop:
            self._show_diff(result)
        if status in ("failed", "rescued", "ignored"):
            body = _dump(
                self._display_result(ev.task.action, result), 4 if self.verbosity >= 3 else None
            )
            self._line(f"fatal: {label}: FAILED! => {body}", "red")
            if status == "ignored":
                self._line("...ignoring", "cyan")
            return
        if status == "unreachable":
            body = _dump(result, None)
            self._line(f"fatal: {label}: UNREACHABLE! => {body}", "bright_red")
            return
        if ev.is_loop:
            if status == "skipped":
                self._line(f"skipping: {label}", "cyan")
            return
        word = {"ok": "ok", "changed": "changed", "skipped": "skipping"}[status]
        color = _STATUS_COLOR[status]
        if ev.task.action == "debug" and status != "skipped":
            body = _dump(self._display_result("debug", result), 4)
            self._line(f"{word}: {label} => {body}", color)
        elif self.verbosity and status != "skipped":
            self._line(
                f"{word}: {label} => {_dump(result, 4 if self.verbosity >= 3 else None)}", color
            )
        else:
            self._line(f"{word}: {label}", color)
        display = result.get("display")
        if isinstance(display, str) and status != "skipped":
            # report modules hand over a table for people to read, printed as is
            for line in display.rstrip("\n").splitlines():
                self._line(line)

    def _item_result(self, ev: ItemResult) -> None:
        self._rebanner(ev.task.id, ev.task.name, ev.task.is_handler)
        label = self._host_label(ev.host, ev.delegated_to)
        if ev.diff_mode:
            self._show_diff(ev.result)
        status = ev.status
        item = f"(item={ev.label})"
        if status in ("failed", "rescued", "ignored"):
            body = _dump(self._display_result(ev.task.action, ev.result), None)
            self._line(f"failed: {label} {item} => {body}", "red")
            return
        if status == "unreachable":
            self._line(
                f"fatal: {label} {item}: UNREACHABLE! => {_dump(ev.result, None)}", "bright_red"
            )
            return
        word = {"ok": "ok", "changed": "changed", "skipped": "skipping"}[status]
        color = _STATUS_COLOR[status]
        if ev.task.action == "debug" and status != "skipped":
            body = _dump(self._display_result("debug", ev.result), 4)
            self._line(f"{word}: {label} => {item} => {body}", color)
        elif self.verbosity and status != "skipped":
            self._line(f"{word}: {label} => {item} => {_dump(ev.result, None)}", color)
        else:
            self._line(f"{word}: {label} => {item}", color)

    # --- recap ------------------------------------------------------------------------

    def _count(self, lead: str, num: int, color: str) -> str:
        text = f"{lead}={num:<4}"
        return self._c(text, color) if num else text

    def _recap(self, ev: PlaybookEnded) -> None:
        if ev.interrupted:
            self.out.flush()
            self.err.write(self._c("[ERROR]: User interrupted execution", "red") + "\n")
            self.err.flush()
        self._banner("PLAY RECAP")
        for fake in self._forged:
            self._line(
                self._c(
                    f"FORGED: an answer as {fake.host} on {fake.subject} was not believed "
                    f"({fake.code}: {fake.reason})",
                    "bright_red",
                )
            )
        for host, st in ev.stats.items():
            # as ansible-playbook: a host nothing was done for (a later batch after
            # the play stopped, the other hosts of run_once tasks) has no line
            if st.ok or st.changed or st.unreachable or st.failures or st.skipped or st.rescued:
                self._line(self._recap_line(host, st))
        self.out.write("\n")
        self.out.flush()

    def _recap_line(self, host: str, st: HostStats) -> str:
        if st.failures or st.unreachable:
            hcolor: str | None = "red"
        elif st.changed:
            hcolor = "yellow"
        else:
            hcolor = "green"
        name = f"{host:<26}"
        if self.color:
            name = self._c(host, hcolor) + " " * max(0, 26 - len(host))
        parts = [
            self._count("ok", st.ok, "green"),
            self._count("changed", st.changed, "yellow"),
            self._count("unreachable", st.unreachable, "bright_red"),
            self._count("failed", st.failures, "red"),
            self._count("skipped", st.skipped, "cyan"),
            self._count("rescued", st.rescued, "magenta"),
            self._count("ignored", st.ignored, "magenta"),
        ]
        return f"{name} : " + " ".join(parts)


class WarningsReporter:
    """With ``--json`` stdout carries only the document: warnings go to stderr."""

    def __init__(self, err: TextIO | None = None) -> None:
        self.err = err if err is not None else sys.stderr

    def handle(self, event: Event) -> None:
        if isinstance(event, Warning_):
            self.err.write(f"[WARNING]: {event.message}\n")
            self.err.flush()
