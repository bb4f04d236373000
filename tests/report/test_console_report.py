"""Console and JSON reports, fed with events as the engine emits them."""

from __future__ import annotations

import io
import json

import pytest

from hlplay.engine.events import (
    HostResult,
    ItemResult,
    NoHostsMatched,
    PlaybookEnded,
    PlaybookStarted,
    PlayStarted,
    RetryAttempt,
    TaskInfo,
    TaskStarted,
    Warning_,
)
from hlplay.engine.results import HostStats, exit_code
from hlplay.report.console import ConsoleReporter, use_color
from hlplay.report.jsonreport import JsonCollector

TASK = TaskInfo(id=1, name="install", action="command")
DEBUG = TaskInfo(id=2, name="show", action="debug")


def feed(reporter: ConsoleReporter | JsonCollector, *events: object) -> None:
    for e in events:
        reporter.handle(e)  # type: ignore[arg-type]


def console(**kw: object) -> tuple[ConsoleReporter, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return ConsoleReporter(out, err=err, color=False, **kw), out, err  # type: ignore[arg-type]


def test_ansible_style_lines_and_recap() -> None:
    rep, out, _ = console()
    stats = {"web1": HostStats(ok=2, changed=1), "db1": HostStats(ok=1, failures=1)}
    feed(
        rep,
        PlaybookStarted("site.yml"),
        PlayStarted("deploy", "all", ("web1", "db1"), 1),
        TaskStarted(TASK),
        HostResult("web1", TASK, "changed", {"changed": True, "rc": 0}),
        HostResult("db1", TASK, "failed", {"changed": False, "failed": True, "msg": "boom"}),
        HostResult("web2", TASK, "ok", {}, delegated_to="localhost"),
        HostResult("web3", TASK, "skipped", {"skipped": True}),
        HostResult("web4", TASK, "ignored", {"failed": True, "msg": "x"}),
        HostResult("web5", TASK, "unreachable", {"msg": "refused", "unreachable": True}),
        TaskStarted(DEBUG),
        HostResult("web1", DEBUG, "ok", {"msg": "hello", "changed": False, "failed": False}),
        PlaybookEnded(stats, exit_code(stats, False), False, 1.0),
    )
    text = out.getvalue()
    assert "\nPLAY [deploy] " + "*" * (79 - len("PLAY [deploy]")) + "\n" in text
    assert "\nTASK [install] ****" in text
    assert "changed: [web1]\n" in text
    assert 'fatal: [db1]: FAILED! => {"changed": false, "failed": true, "msg": "boom"}\n' in text
    assert "ok: [web2 -> localhost]\n" in text
    assert "skipping: [web3]\n" in text
    assert "...ignoring\n" in text
    assert 'fatal: [web5]: UNREACHABLE! => {"msg": "refused", "unreachable": true}' in text
    assert 'ok: [web1] => {\n    "msg": "hello"\n}\n' in text
    assert "\nPLAY RECAP ****" in text
    assert (
        "web1                       : ok=2    changed=1    unreachable=0    failed=0    "
        "skipped=0    rescued=0    ignored=0   \n" in text
    )
    assert "db1                        : ok=1    changed=0    unreachable=0    failed=1" in text


def test_recap_leaves_out_hosts_nothing_was_done_for() -> None:
    # e.g. the batches after a play stopped on max_fail_percentage, as ansible-playbook does
    rep, out, _ = console()
    stats = {"web1": HostStats(failures=1), "web2": HostStats(), "web3": HostStats(skipped=1)}
    feed(rep, PlaybookEnded(stats, exit_code(stats, False), False, 1.0))
    recap = out.getvalue().split("PLAY RECAP")[1]
    assert "web1 " in recap and "web3 " in recap
    assert "web2" not in recap


def test_loops_retries_warnings_and_no_hosts() -> None:
    rep, out, err = console()
    feed(
        rep,
        PlayStarted("p", "nothing", (), 1),
        NoHostsMatched("p"),
        TaskStarted(TASK),
        ItemResult("h1", TASK, "changed", "pkg-a", {"item": "pkg-a"}),
        ItemResult("h1", TASK, "skipped", "pkg-b", {"item": "pkg-b"}),
        ItemResult("h1", TASK, "failed", "pkg-c", {"failed": True, "msg": "no"}),
        HostResult(
            "h1", TASK, "failed", {"failed": True, "msg": "One or more items failed"}, is_loop=True
        ),
        RetryAttempt("h1", TASK, 1, 2),
        Warning_("careful"),
    )
    text = out.getvalue()
    assert "skipping: no hosts matched" in text
    assert "changed: [h1] => (item=pkg-a)\n" in text
    assert "skipping: [h1] => (item=pkg-b)\n" in text
    assert 'failed: [h1] (item=pkg-c) => {"failed": true, "msg": "no"}' in text
    assert 'fatal: [h1]: FAILED! => {"failed": true, "msg": "One or more items failed"}' in text
    assert "FAILED - RETRYING: [h1]: install (2 retries left)." in text
    assert err.getvalue() == "[WARNING]: careful\n"


def test_diff_is_shown_in_diff_mode() -> None:
    rep, out, _ = console()
    feed(
        rep,
        TaskStarted(TASK),
        HostResult(
            "h1", TASK, "changed", {"diff": {"before": "a\n", "after": "b\n"}}, diff_mode=True
        ),
        HostResult("h2", TASK, "changed", {"diff": "+added line\n-removed line\n"}, diff_mode=True),
        HostResult("h3", TASK, "changed", {"diff": "+hidden\n"}),
    )
    text = out.getvalue()
    assert "-a\n+b\n" in text
    assert "+added line\n-removed line\nchanged: [h2]" in text
    assert "hidden" not in text


def test_colour_only_on_a_terminal_and_never_with_no_color(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("HLPLAY_NO_COLOR", raising=False)
    assert use_color(Tty()) is True
    assert use_color(io.StringIO()) is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert use_color(Tty()) is False
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("HLPLAY_NO_COLOR", "1")
    assert use_color(Tty()) is False
    rep = ConsoleReporter(io.StringIO(), color=True)
    feed(rep, TaskStarted(TASK), HostResult("h1", TASK, "changed", {}))
    assert "\x1b[33mchanged: [h1]\x1b[0m" in rep.out.getvalue()  # type: ignore[attr-defined]


def test_verbose_shows_results() -> None:
    rep, out, _ = console(verbosity=1)
    feed(rep, TaskStarted(TASK), HostResult("h1", TASK, "changed", {"rc": 0, "stdout": "x"}))
    assert 'changed: [h1] => {"rc": 0, "stdout": "x"}' in out.getvalue()


def test_json_document_shape() -> None:
    col = JsonCollector()
    stats = {"h1": HostStats(ok=1, changed=1)}
    feed(
        col,
        PlaybookStarted("site.yml", check=True),
        PlayStarted("deploy", "all", ("h1",), 1),
        TaskStarted(TASK),
        HostResult("h1", TASK, "changed", {"changed": True, "rc": 0}, delegated_to="localhost"),
        Warning_("w"),
        PlaybookEnded(stats, 0, False, 0.5),
    )
    doc = json.loads(json.dumps(col.document))
    assert doc["playbook"] == "site.yml" and doc["check_mode"] is True
    play = doc["plays"][0]
    assert play["play"]["name"] == "deploy" and play["play"]["hosts"] == ["h1"]
    task = play["tasks"][0]
    assert task["task"]["name"] == "install" and task["task"]["action"] == "command"
    assert task["hosts"]["h1"]["status"] == "changed"
    assert task["hosts"]["h1"]["delegated_to"] == "localhost"
    assert doc["stats"]["h1"] == {
        "ok": 1,
        "changed": 1,
        "unreachable": 0,
        "failures": 0,
        "skipped": 0,
        "rescued": 0,
        "ignored": 0,
    }
    assert doc["warnings"] == ["w"] and doc["exit_code"] == 0 and doc["interrupted"] is False


def test_exit_codes() -> None:
    assert exit_code({"a": HostStats(ok=1)}, False) == 0
    assert exit_code({"a": HostStats(failures=1)}, False) == 2
    assert exit_code({"a": HostStats(failures=1), "b": HostStats(unreachable=1)}, False) == 4
    assert exit_code({"a": HostStats(rescued=1, ignored=1)}, False) == 0
    assert exit_code({"a": HostStats(failures=1)}, True) == 99
