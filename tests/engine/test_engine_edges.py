"""Less common paths: handler chains, vars files, omit, localhost and limits, free + run_once."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import RunFn
from hlplay.engine.events import BatchStarted, NoMoreHosts, TaskStarted, Warning_
from hlplay.errors import PlaybookError
from hlplay.inventory.model import Inventory


async def test_handlers_notify_later_handlers_in_the_same_flush(run_pb: RunFn) -> None:
    _, rec = await run_pb(
        """
        - hosts: h1
          handlers:
            - name: first
              command: /bin/true
              notify: second
            - name: second
              debug: msg=second
          tasks:
            - command: /bin/true
              notify: first
        """
    )
    assert [e.task.name for e in rec.of(TaskStarted) if e.task.is_handler] == ["first", "second"]


async def test_vars_files_and_omit(run_pb: RunFn, tmp_path: Path) -> None:
    (tmp_path / "common.yml").write_text("port: 22\nname: common\n")
    (tmp_path / "test.yml").write_text("name: '{{ flavour }}-override'\n")
    _, rec = await run_pb(
        """
        - hosts: h1
          vars: {flavour: test}
          vars_files: [common.yml, "{{ flavour }}.yml"]
          tasks:
            - name: show
              debug: {msg: "{{ name }}:{{ port }}"}
            - name: omitted
              wait_for: {path: /, timeout: "{{ nothing | default(omit) }}"}
        """
    )
    assert rec.results("show")[0].result["msg"] == "test-override:22"
    assert rec.status("omitted") == {"h1": "ok"}


async def test_a_missing_vars_file_names_the_play_line(run_pb: RunFn, tmp_path: Path) -> None:
    with pytest.raises(PlaybookError) as info:
        await run_pb(
            """
            - hosts: h1
              vars_files:
                - nope.yml
              tasks: [{debug: {msg: x}}]
            """
        )
    assert str(info.value) == (
        f"{tmp_path / 'playbook.yml'}:4:7: vars file not found: {tmp_path / 'nope.yml'}"
    )


async def test_localhost_play_ignores_limit_inventory_hosts_do_not(run_pb: RunFn) -> None:
    _, rec = await run_pb(
        """
        - hosts: localhost
          tasks: [{name: controller, debug: {msg: x}}]
        - hosts: all
          tasks: [{name: fleet, debug: {msg: x}}]
        """,
        limit="h2",
    )
    assert rec.ran("controller") == ["localhost"]
    assert rec.ran("fleet") == ["h2"]


async def test_free_strategy_with_run_once(run_pb: RunFn) -> None:
    _, rec = await run_pb(
        """
        - hosts: all
          strategy: free
          tasks:
            - name: once
              command: echo ran-on-{{ inventory_hostname }}
              run_once: true
              register: r
            - name: everyone sees it
              debug: msg="{{ r.stdout }}"
        """
    )
    assert len(rec.ran("once")) == 1
    seen = {e.result["msg"] for e in rec.results("everyone sees it")}
    assert len(rec.results("everyone sees it")) == 3 and len(seen) == 1


async def test_a_batch_that_fails_entirely_stops_the_playbook(run_pb: RunFn) -> None:
    result, rec = await run_pb(
        """
        - hosts: all
          serial: 1
          tasks:
            - name: breaks
              command: /bin/false
        - hosts: localhost
          tasks: [{name: later, debug: {msg: x}}]
        """
    )
    assert rec.ran("breaks") == ["h1"]
    assert rec.ran("later") == []
    assert rec.of(NoMoreHosts)
    assert result.exit_code == 2


async def test_loop_with_until(run_pb: RunFn, tmp_path: Path) -> None:
    _, rec = await run_pb(
        f"""
        - hosts: h1
          tasks:
            - name: per item
              shell: >-
                echo x >> {tmp_path}/{{{{ item }}}};
                test $(wc -l < {tmp_path}/{{{{ item }}}}) -ge 2
              loop: [a, b]
              register: r
              until: r.rc == 0
              retries: 3
              delay: 0
            - name: attempts
              debug: msg="{{{{ r.results | map(attribute='attempts') | list }}}}"
        """
    )
    assert rec.results("attempts")[0].result["msg"] == [2, 2]


async def test_ignore_unreachable(run_pb: RunFn, make_inventory: Callable[..., Inventory]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inv = make_inventory(
        {
            "gone": {
                "transport": "ssh",
                "address": "127.0.0.1",
                "ssh": {"port": port, "host_key_checking": False},
            }
        }
    )
    result, rec = await run_pb(
        """
        - hosts: all
          tasks:
            - {name: try, command: /bin/true, ignore_unreachable: true}
            - {name: next, debug: {msg: x}}
        """,
        inv,
    )
    assert rec.status("try") == {"gone": "ignored"}
    assert rec.ran("next") == ["gone"]
    assert result.exit_code == 0


async def test_start_at_unknown_task_warns(run_pb: RunFn) -> None:
    _, rec = await run_pb(
        "- hosts: h1\n  tasks: [{name: a, debug: {msg: x}}]\n", start_at_task="zzz"
    )
    assert any("zzz" in w.message for w in rec.of(Warning_))


async def test_serial_from_extra_vars(run_pb: RunFn) -> None:
    text = """
        - hosts: all
          serial: "{{ serial | default('100%') }}"
          tasks: [{debug: {msg: x}}]
        """
    _, rec = await run_pb(text, 4, extra_vars={"serial": "1"})
    assert [len(b.hosts) for b in rec.of(BatchStarted)] == [1, 1, 1, 1]
    _, rec = await run_pb(text, 4)
    assert rec.of(BatchStarted) == []


async def test_hostvars_across_plays_with_extract(run_pb: RunFn) -> None:
    _, rec = await run_pb(
        """
        - hosts: all
          tasks:
            - command: echo {{ inventory_hostname }}-done
              register: deploy
        - hosts: localhost
          tasks:
            - name: collect
              debug:
                msg: "{{ groups['all'] | map('extract', hostvars, ['deploy', 'stdout']) | list }}"
        """
    )
    assert rec.results("collect")[0].result["msg"] == ["h1-done", "h2-done", "h3-done"]
