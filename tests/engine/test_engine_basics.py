"""Core run semantics on real local execution: results, recap, exit codes, variables."""

from __future__ import annotations

from conftest import RunFn
from hlplay.engine.events import HostResult, NoHostsMatched


async def test_command_runs_per_host_and_registers(run_pb: RunFn) -> None:
    result, rec = await run_pb(
        """
        - hosts: all
          tasks:
            - name: echo
              command: echo hello {{ inventory_hostname }}
              register: out
            - name: show
              debug: msg="{{ out.stdout }}"
        """
    )
    assert result.exit_code == 0
    assert rec.status("echo") == {"h1": "changed", "h2": "changed", "h3": "changed"}
    assert {e.host: e.result["msg"] for e in rec.results("show")} == {
        "h1": "hello h1",
        "h2": "hello h2",
        "h3": "hello h3",
    }
    assert result.stats["h1"].ok == 2 and result.stats["h1"].changed == 1


async def test_failed_host_leaves_the_play_others_go_on(run_pb: RunFn) -> None:
    result, rec = await run_pb(
        """
        - hosts: all
          tasks:
            - name: maybe fail
              command: "{{ '/bin/false' if inventory_hostname == 'h2' else '/bin/true' }}"
            - name: after
              debug: msg=next
        """
    )
    assert rec.status("maybe fail") == {"h1": "changed", "h2": "failed", "h3": "changed"}
    assert sorted(rec.ran("after")) == ["h1", "h3"]
    assert result.exit_code == 2
    assert result.stats["h2"].failures == 1
    assert result.failed_hosts == ["h2"]


async def test_failed_host_is_left_out_of_later_plays(run_pb: RunFn) -> None:
    result, rec = await run_pb(
        """
        - hosts: all
          tasks:
            - fail: msg=no
              when: inventory_hostname == 'h1'
        - hosts: all
          tasks:
            - name: second play
              debug: msg=hi
        """
    )
    assert sorted(rec.ran("second play")) == ["h2", "h3"]
    assert result.exit_code == 2


async def test_undefined_variable_fails_only_that_hosts_task(run_pb: RunFn, make_inventory) -> None:
    inv = make_inventory({"h1": {"vars": {"color": "blue"}}, "h2": {}})
    result, rec = await run_pb(
        """
        - hosts: all
          tasks:
            - name: use var
              debug: msg="{{ color }}"
        """,
        inv,
    )
    status = rec.status("use var")
    assert status == {"h1": "ok", "h2": "failed"}
    msg = rec.results("use var")[1].result["msg"]
    assert "'color' is undefined" in msg
    assert result.exit_code == 2


async def test_variable_precedence(run_pb: RunFn, make_inventory) -> None:
    inv = make_inventory(
        {
            "h1": {
                "vars": {
                    "a": "inventory",
                    "b": "inventory",
                    "c": "inventory",
                    "d": "inventory",
                    "e": "inventory",
                }
            }
        }
    )
    _, rec = await run_pb(
        """
        - hosts: all
          vars: {b: play, c: play, d: play, e: play}
          tasks:
            - set_fact: {d: fact}
            - name: show
              debug:
                msg: "{{ [a, b, c, d, e] }}"
              vars: {c: task, d: task}
        """,
        inv,
        extra_vars={"e": "extra"},
    )
    assert rec.results("show")[0].result["msg"] == ["inventory", "play", "task", "fact", "extra"]


async def test_native_types_and_lazy_play_vars(run_pb: RunFn) -> None:
    _, rec = await run_pb(
        """
        - hosts: h1
          vars:
            base: 20
            doubled: "{{ base * 2 }}"
            items: "{{ [base, doubled] }}"
            url: "http://{{ inventory_hostname }}:{{ doubled }}/"
          tasks:
            - name: show
              debug: {msg: "{{ items }}"}
            - name: url
              debug: {msg: "{{ url }}"}
        """
    )
    assert rec.results("show")[0].result["msg"] == [20, 40]
    assert rec.results("url")[0].result["msg"] == "http://h1:40/"


async def test_magic_variables(run_pb: RunFn, make_inventory) -> None:
    inv = make_inventory({"web1": {"roles": ["web"]}, "db1": {"roles": ["db"], "tier": "prod"}})
    _, rec = await run_pb(
        """
        - hosts: all
          tasks:
            - name: magic
              debug:
                msg:
                  me: "{{ inventory_hostname }}"
                  tier: "{{ tier }}"
                  roles: "{{ roles }}"
                  in_role_web: "{{ groups['role_web'] }}"
                  groups_of_me: "{{ 'role_' ~ roles[0] in group_names }}"
                  play_hosts: "{{ ansible_play_hosts }}"
                  other_tier: "{{ hostvars['db1']['tier'] }}"
                  check: "{{ ansible_check_mode }}"
        """,
        inv,
    )
    by_host = {e.host: e.result["msg"] for e in rec.results("magic")}
    assert by_host["web1"] == {
        "me": "web1",
        "tier": "test",
        "roles": ["web"],
        "in_role_web": ["web1"],
        "groups_of_me": True,
        "play_hosts": ["web1", "db1"],
        "other_tier": "prod",
        "check": False,
    }
    assert by_host["db1"]["tier"] == "prod"


async def test_no_hosts_matched_is_not_an_error(run_pb: RunFn) -> None:
    result, rec = await run_pb(
        """
        - hosts: all
          tasks: [{debug: {msg: hi}}]
        """,
        limit="h1",
    )
    assert result.exit_code == 0
    assert [e.host for e in rec.of(HostResult)] == ["h1"]
    result, rec = await run_pb(
        """
        - hosts: tier=test
          tasks: [{debug: {msg: hi}}]
        """,
        inventory=None,
    )
    assert rec.of(NoHostsMatched)


async def test_implicit_localhost_without_inventory(run_pb: RunFn) -> None:
    result, rec = await run_pb(
        """
        - hosts: localhost
          tasks:
            - name: where
              command: echo controller
              register: out
            - debug: var=out.stdout
        """,
        inventory=None,
    )
    assert result.exit_code == 0
    assert rec.ran("where") == ["localhost"]
