"""The core modules, run through the engine on the controller's own processes."""

from __future__ import annotations

import asyncio
import socket
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from hlplay.engine.api import run_playbook
from hlplay.engine.events import Event, HostResult
from hlplay.errors import PlaybookError
from hlplay.inventory.loader import load_inventory
from hlplay.modules import registry


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def handle(self, event: Event) -> None:
        self.events.append(event)

    def result(self, task: str, host: str = "h1") -> HostResult:
        found = [
            e
            for e in self.events
            if isinstance(e, HostResult) and e.task.name == task and e.host == host
        ]
        assert found, f"no result for {task} on {host}"
        return found[0]


async def run(tmp_path: Path, tasks: str, **kw: Any) -> Recorder:
    inv = tmp_path / "inv.yml"
    inv.write_text(yaml.safe_dump({"hosts": {"h1": {"tier": "test", "transport": "local"}}}))
    pb = tmp_path / "pb.yml"
    pb.write_text("- hosts: all\n  tasks:\n" + textwrap.indent(textwrap.dedent(tasks), "    "))
    rec = Recorder()
    await run_playbook(pb, load_inventory(inv), reporters=[rec], **kw)
    return rec


async def test_command_splits_like_a_shell_but_runs_none(tmp_path: Path) -> None:
    rec = await run(
        tmp_path,
        """
        - name: split
          command: echo "a  b" $HOME '|' wc
        - name: argv
          command: {argv: [printf, "%s-", x, "y z"]}
        - name: fails
          command: sh -c "echo oops >&2; exit 3"
          ignore_errors: true
        - name: missing
          command: /no/such/tool
          ignore_errors: true
        """,
    )
    r = rec.result("split").result
    assert r["stdout"] == "a  b $HOME | wc" and r["cmd"] == ["echo", "a  b", "$HOME", "|", "wc"]
    assert r["rc"] == 0 and r["changed"] is True and "delta" in r
    assert rec.result("argv").result["stdout"] == "x-y z-"
    bad = rec.result("fails")
    assert bad.status == "ignored" and bad.result["rc"] == 3 and bad.result["stderr"] == "oops"
    assert bad.result["msg"] == "non-zero return code"
    assert rec.result("missing").result["rc"] == 127


async def test_command_chdir_creates_removes_stdin(tmp_path: Path) -> None:
    (tmp_path / "exists").write_text("")
    rec = await run(
        tmp_path,
        f"""
        - name: chdir
          command: pwd chdir={tmp_path}
        - name: creates
          command: /bin/false
          args: {{creates: {tmp_path}/exists}}
        - name: removes
          command: /bin/false removes={tmp_path}/absent
        - name: stdin
          command: {{cmd: cat, stdin: fed}}
        """,
    )
    assert rec.result("chdir").result["stdout"] == str(tmp_path)
    assert rec.result("creates").status == "ok"
    assert "exists" in rec.result("creates").result["msg"]
    assert rec.result("removes").status == "ok"
    assert rec.result("stdin").result["stdout"] == "fed"


async def test_shell_is_a_shell(tmp_path: Path) -> None:
    rec = await run(
        tmp_path,
        """
        - name: pipe
          shell: echo hello | tr a-z A-Z
        - name: exe
          shell: {cmd: 'echo $0', executable: /bin/sh}
        """,
    )
    assert rec.result("pipe").result["stdout"] == "HELLO"
    assert rec.result("exe").result["stdout"] == "/bin/sh"


async def test_debug_assert_fail(tmp_path: Path) -> None:
    rec = await run(
        tmp_path,
        """
        - name: default msg
          debug:
        - name: var
          debug: {var: "[1, 2] | length"}
        - name: undefined var
          debug: {var: nothing_here}
        - name: quiet
          debug: {msg: hidden, verbosity: 2}
        - name: good
          assert: {that: ["1 < 2", "'a' in 'abc'"], success_msg: fine}
        - name: bad
          assert: {that: ["1 < 2", "2 < 1"], fail_msg: not so}
          ignore_errors: true
        - name: boom
          fail: msg="stop {{ inventory_hostname }}"
          ignore_errors: true
        """,
    )
    assert rec.result("default msg").result["msg"] == "Hello world!"
    assert rec.result("var").result["[1, 2] | length"] == 2
    assert "NOT DEFINED" in rec.result("undefined var").result["nothing_here"]
    assert rec.result("quiet").status == "skipped"
    assert rec.result("good").result["msg"] == "fine"
    bad = rec.result("bad").result
    assert bad["failed"] and bad["msg"] == "not so" and bad["assertion"] == "2 < 1"
    assert rec.result("boom").result["msg"] == "stop h1"


async def test_set_fact_and_reserved_names(tmp_path: Path) -> None:
    rec = await run(
        tmp_path,
        """
        - set_fact: {answer: "{{ 6 * 7 }}", nested: {a: [1]}}
        - name: read
          debug: {msg: "{{ answer + 1 }} {{ nested.a[0] }}"}
        - name: reserved
          set_fact: {inventory_hostname: x}
          ignore_errors: true
        """,
    )
    assert rec.result("read").result["msg"] == "43 1"
    assert "reserved" in rec.result("reserved").result["msg"]


async def test_pause_waits(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    rec = await run(tmp_path, "- {name: p, pause: {seconds: 0.2, prompt: why}}\n")
    assert loop.time() - start >= 0.2
    assert rec.result("p").result["msg"] == "Paused for 0.2 seconds: why"


async def test_wait_for_port_and_path(tmp_path: Path) -> None:
    server = await asyncio.start_server(
        lambda r, w: (w.write(b"SSH-2.0-OpenSSH_9.2\r\n"), w.close()), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    marker = tmp_path / "ready"

    async def later() -> None:
        await asyncio.sleep(0.3)
        marker.write_text("service ready v2\n")

    bg = asyncio.create_task(later())
    async with server:
        rec = await run(
            tmp_path,
            f"""
            - name: port
              wait_for: {{port: {port}, timeout: 5, search_regex: OpenSSH}}
            - name: path
              wait_for: {{path: {marker}, search_regex: 'ready v(\\d)', timeout: 5, sleep: 0.05}}
            - name: closed port is stopped
              wait_for: {{port: {closed}, state: stopped, timeout: 2}}
            - name: never opens
              wait_for: {{port: {closed}, timeout: 0.3, sleep: 0.1}}
              ignore_errors: true
            - name: gone
              wait_for: {{path: {tmp_path}/never, state: absent, timeout: 1}}
            """,
        )
    await bg
    assert rec.result("port").status == "ok"
    assert rec.result("path").result["match_groups"] == ["2"]
    assert rec.result("closed port is stopped").status == "ok"
    never = rec.result("never opens")
    assert never.status == "ignored" and f"127.0.0.1:{closed}" in never.result["msg"]
    assert rec.result("gone").status == "ok"


async def test_check_mode_support(tmp_path: Path) -> None:
    rec = await run(
        tmp_path,
        """
        - {name: cmd, command: /bin/true}
        - {name: sh, shell: /bin/true}
        - {name: dbg, debug: {msg: x}}
        - {name: fact, set_fact: {a: 1}}
        - {name: chk, assert: {that: a == 1}}
        """,
        check=True,
    )
    assert rec.result("cmd").status == "skipped" and rec.result("sh").status == "skipped"
    assert rec.result("dbg").status == "ok" and rec.result("chk").status == "ok"


def test_registry_finds_modules_by_name_and_ansible_prefix() -> None:
    assert registry.get_module("command").name == "command"
    assert registry.get_module("ansible.builtin.assert").name == "assert"
    assert registry.get_module("ansible.legacy.shell").name == "shell"
    names = registry.all_modules()
    for core in ("command", "shell", "debug", "assert", "fail", "set_fact", "pause", "wait_for"):
        assert core in names
        assert names[core].summary
    with pytest.raises(PlaybookError, match=r"unknown module 'debgu' \(did you mean 'debug'"):
        registry.get_module("debgu")


@pytest.fixture
def broken_module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "zz_broken.py").write_text("import no_such_dependency_at_all\n")
    (tmp_path / "zz_fine.py").write_text(
        "from hlplay.modules.base import Module, ModuleResult\n"
        "class Fine(Module):\n"
        "    name = 'zz_fine'\n"
        "    async def run(self, ctx, args):\n"
        "        return ModuleResult()\n"
    )
    import hlplay.modules as pkg

    monkeypatch.setattr(pkg, "__path__", [*pkg.__path__, str(tmp_path)])
    monkeypatch.setattr(registry, "_scanned", False)
    monkeypatch.setattr(registry, "_imported", set(registry._imported))
    monkeypatch.setattr(registry, "_broken", dict(registry._broken))
    monkeypatch.setattr(registry, "_modules", dict(registry._modules))
    yield tmp_path
    for name in ("hlplay.modules.zz_broken", "hlplay.modules.zz_fine"):
        sys.modules.pop(name, None)


def test_a_broken_module_file_does_not_break_the_others(broken_module_dir: Path) -> None:
    assert "zz_fine" in registry.all_modules()
    assert "zz_broken" in registry.broken_modules()
    with pytest.raises(
        PlaybookError, match="module 'zz_broken' failed to load: ModuleNotFoundError"
    ):
        registry.get_module("zz_broken")
    assert registry.get_module("debug").name == "debug"
