"""Each playbook keyword's semantics, on real local execution."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from conftest import RunFn
from hlplay.engine.events import BatchStarted, HostResult, ItemResult, RetryAttempt, TaskStarted
from hlplay.inventory.model import Inventory


async def test_serial_list_gives_batches_1_2_2(run_pb: RunFn) -> None:
    result, rec = await run_pb(
        """
        - hosts: all
          serial: [1, "50%"]
          tasks:
            - name: one
              debug: msg=a
            - name: two
              debug: msg=b
        """,
        5,
    )
    assert result.exit_code == 0
    batches = [list(b.hosts) for b in rec.of(BatchStarted)]
    assert batches == [["h1"], ["h2", "h3"], ["h4", "h5"]]
    # each batch runs the whole play before the next batch starts
    order = [(e.task.name, e.host) for e in rec.of(HostResult)]
    assert order[:2] == [("one", "h1"), ("two", "h1")]
    assert order.index(("two", "h3")) < order.index(("one", "h4"))


async def test_serial_percentage_and_int(run_pb: RunFn) -> None:
    _, rec = await run_pb(
        """
        - hosts: all
          serial: "40%"
          tasks: [{debug: {msg: x}}]
        - hosts: all
          serial: 3
          tasks: [{debug: {msg: x}}]
        """,
        5,
    )
    sizes = [len(b.hosts) for b in rec.of(BatchStarted)]
    assert sizes == [2, 2, 1, 3, 2]


async def test_max_fail_percentage_must_be_exceeded(run_pb: RunFn) -> None:
    text = """
        - hosts: all
          max_fail_percentage: {mfp}
          tasks:
            - name: fail two
              fail: msg=down
              when: inventory_hostname in ['h1', 'h2']
            - name: next
              debug: msg=on
        """
    result, rec = await run_pb(text.format(mfp=50), 4)
    assert sorted(rec.ran("next")) == ["h3", "h4"]  # 50% failed: not above 50
    result, rec = await run_pb(text.format(mfp=49), 4)
    assert rec.ran("next") == []  # 50% > 49%: the play stops for everyone
    assert result.exit_code == 2


async def test_max_fail_percentage_stops_later_batches(run_pb: RunFn) -> None:
    result, rec = await run_pb(
        """
        - hosts: all
          serial: 2
          max_fail_percentage: 0
          tasks:
            - name: t
              command: "{{ '/bin/false' if inventory_hostname == 'h2' else '/bin/true' }}"
        """,
        4,
    )
    assert sorted(rec.ran("t")) == ["h1", "h2"]
    assert result.exit_code == 2


async def test_any_errors_fatal_stops_all_hosts_after_the_failing_task(run_pb: RunFn) -> None:
    result, rec = await run_pb(
        """
        - hosts: all
          any_errors_fatal: true
          tasks:
            - name: first
              command: "{{ '/bin/false' if inventory_hostname == 'h2' else 'sleep 0.1' }}"
            - name: second
              debug: msg=never
        - hosts: all
          tasks:
            - name: other play
              debug: msg=never
        """
    )
    # the fatal task finished on every host, then nothing else ran anywhere
    assert rec.status("first") == {"h1": "changed", "h2": "failed", "h3": "changed"}
    assert rec.ran("second") == []
    assert rec.ran("other play") == []
    assert result.exit_code == 2


async def test_any_errors_fatal_on_a_task_and_rescue_is_not_fatal(run_pb: RunFn) -> None:
    _, rec = await run_pb(
        """
        - hosts: all
          tasks:
            - block:
                - name: guarded
                  fail: msg=x
                  when: inventory_hostname == 'h1'
                  any_errors_fatal: true
              rescue:
                - debug: msg=rescued
            - name: after
              debug: msg=ok
        """
    )
    assert sorted(rec.ran("after")) == ["h1", "h2", "h3"]


async def test_free_lets_a_fast_host_finish_before_a_slow_one(
    run_pb: RunFn, make_inventory: Callable[..., Inventory], tmp_path: Path
) -> None:
    inv = make_inventory({"fast": {}, "slow": {}})
    # free: the slow host's first task can only end once the fast host has run
    # its last task, which it does without waiting for the slow one
    done = tmp_path / "fast-done"
    _, rec = await run_pb(
        f"""
        - hosts: all
          strategy: free
          tasks:
            - name: work
              shell: >-
                [ {{{{ inventory_hostname }}}} = fast ] && exit 0;
                for i in $(seq 600); do [ -e {done} ] && exit 0; sleep 0.05; done; exit 1
            - name: done
              command: touch {done}
        """,
        inv,
    )
    # the slow host's work ended only because the fast host had already done it all
    assert rec.status("work") == {"fast": "changed", "slow": "changed"}
    assert rec.status("done") == {"fast": "changed", "slow": "changed"}
    # linear: lockstep, every host finishes a task before any host starts the next
    _, rec = await run_pb(
        """
        - hosts: all
          strategy: linear
          tasks:
            - name: work
              command: sleep {{ '0.3' if inventory_hostname == 'slow' else '0' }}
            - name: done
              debug: msg=done
        """,
        inv,
    )
    order = [(e.task.name, e.host) for e in rec.of(HostResult)]
    assert order.index(("work", "slow")) < order.index(("done", "fast"))


async def test_sections_run_in_order_and_handlers_flush_after_each(run_pb: RunFn) -> None:
    _, rec = await run_pb(
        """
        - hosts: h1
          handlers:
            - name: h
              debug: msg=handler
          pre_tasks:
            - name: pre
              command: /bin/true
              notify: h
          tasks:
            - name: main
              command: /bin/true
              notify: h
          post_tasks:
            - name: post
              debug: msg=post
        """
    )
    names = [e.task.name for e in rec.of(TaskStarted)]
    assert names == ["pre", "h", "main", "h", "post"]


async def test_handler_notified_three_times_runs_once_in_definition_order(run_pb: RunFn) -> None:
    result, rec = await run_pb(
        """
        - hosts: all
          handlers:
            - name: first
              debug: msg=first
            - name: second
              debug: msg=second
              listen: restart things
          tasks:
            - command: /bin/true
              notify: [restart things]
            - command: /bin/true
              notify: [first, restart things]
            - command: /bin/true
              notify: restart things
            - name: unchanged
              command: /bin/true
              changed_when: false
              notify: first
        """
    )
    handler_starts = [e.task.name for e in rec.of(TaskStarted) if e.task.is_handler]
    assert handler_starts == ["first", "second"]
    assert sorted(rec.ran("second")) == ["h1", "h2", "h3"]
    assert result.exit_code == 0


async def test_handlers_skip_failed_hosts_unless_forced(run_pb: RunFn) -> None:
    text = """
        - hosts: all
          handlers:
            - name: restart
              debug: msg=restart
          tasks:
            - command: /bin/true
              notify: restart
            - fail: msg=broken
              when: inventory_hostname == 'h1'
        """
    _, rec = await run_pb(text)
    assert sorted(rec.ran("restart")) == ["h2", "h3"]
    _, rec = await run_pb(text, force_handlers=True)
    assert sorted(rec.ran("restart")) == ["h1", "h2", "h3"]


async def test_tags_skip_tags_always_never(run_pb: RunFn) -> None:
    text = """
        - hosts: h1
          tasks:
            - {name: a, debug: {msg: a}, tags: [web]}
            - {name: b, debug: {msg: b}, tags: db}
            - {name: c, debug: {msg: c}, tags: [always]}
            - {name: d, debug: {msg: d}, tags: [never, debug]}
            - {name: e, debug: {msg: e}}
            - block:
                - {name: f, debug: {msg: f}}
              tags: [web]
        """

    async def ran(**kw: object) -> list[str]:
        _, rec = await run_pb(text, **kw)
        return [e.task.name for e in rec.of(HostResult)]

    assert await ran() == ["a", "b", "c", "e", "f"]
    assert await ran(tags=["web"]) == ["a", "c", "f"]
    assert await ran(tags=["debug"]) == ["c", "d"]
    assert await ran(skip_tags=["web"]) == ["b", "c", "e"]
    assert await ran(tags=["web"], skip_tags=["always"]) == ["a", "f"]
    assert await ran(tags=["untagged"]) == ["c", "e"]


async def test_check_mode(run_pb: RunFn, tmp_path: Path) -> None:
    marker = tmp_path / "touched"
    text = f"""
        - hosts: h1
          tasks:
            - name: would touch
              command: touch {marker}
            - name: always real
              command: echo real
              check_mode: false
            - name: always check
              command: echo no
              check_mode: true
            - name: debug runs
              debug: msg="{{{{ hlplay_check_mode }}}}"
        """
    result, rec = await run_pb(text, check=True)
    assert not marker.exists()
    assert rec.status("would touch") == {"h1": "skipped"}
    assert "does not support check mode" in rec.results("would touch")[0].result["msg"]
    assert rec.status("always real") == {"h1": "changed"}
    assert rec.status("always check") == {"h1": "skipped"}
    assert rec.results("debug runs")[0].result["msg"] is True
    assert result.exit_code == 0
    _, rec = await run_pb(text)
    assert marker.exists()
    assert rec.status("always check") == {"h1": "skipped"}


async def test_diff_flag_reaches_results(run_pb: RunFn) -> None:
    _, rec = await run_pb(
        """
        - hosts: h1
          tasks:
            - {name: plain, debug: {msg: x}}
            - {name: forced, debug: {msg: x}, diff: true}
        """
    )
    assert [e.diff_mode for e in rec.of(HostResult)] == [False, True]
    _, rec = await run_pb("- hosts: h1\n  tasks: [{name: t, debug: {msg: x}}]\n", diff=True)
    assert rec.results("t")[0].diff_mode


async def test_when_forms(run_pb: RunFn) -> None:
    _, rec = await run_pb(
        """
        - hosts: all
          vars: {flag: true}
          tasks:
            - {name: literal false, debug: {msg: x}, when: false}
            - {name: list and, debug: {msg: x}, when: [flag, "inventory_hostname != 'h2'"]}
            - {name: braces, debug: {msg: x}, when: "{{ inventory_hostname == 'h3' }}"}
            - {name: string false, debug: {msg: x}, when: "'false'"}
        """
    )
    assert set(rec.status("literal false").values()) == {"skipped"}
    assert rec.status("list and") == {"h1": "ok", "h2": "skipped", "h3": "ok"}
    assert rec.status("braces") == {"h1": "skipped", "h2": "skipped", "h3": "ok"}
    assert set(rec.status("string false").values()) == {"skipped"}


async def test_loops_register_labels_and_item_conditions(run_pb: RunFn) -> None:
    _, rec = await run_pb(
        """
        - hosts: h1
          tasks:
            - name: loop
              command: echo {{ pkg.name }}-{{ idx }}
              loop: "{{ [{'name': 'a'}, {'name': 'b'}, {'name': 'c'}] }}"
              loop_control: {loop_var: pkg, index_var: idx, label: "{{ pkg.name }}"}
              when: pkg.name != 'b'
              register: out
            - name: outputs
              debug:
                msg: "{{ out.results | selectattr('stdout', 'defined')
                         | map(attribute='stdout') | list }}"
            - name: items
              debug: msg="{{ item }}"
              with_items: [[1, 2], 3]
            - name: dict
              debug: msg="{{ item.key }}={{ item.value }}"
              with_dict: {x: 1}
            - name: empty
              debug: msg=x
              loop: []
        """
    )
    items = [e for e in rec.of(ItemResult) if e.task.name == "loop"]
    assert [(i.label, i.status) for i in items] == [
        ("a", "changed"),
        ("b", "skipped"),
        ("c", "changed"),
    ]
    assert rec.results("outputs")[0].result["msg"] == ["a-0", "c-2"]
    assert [i.label for i in rec.of(ItemResult) if i.task.name == "items"] == ["1", "2", "3"]
    assert [i.result["msg"] for i in rec.of(ItemResult) if i.task.name == "dict"] == ["x=1"]
    assert rec.status("empty") == {"h1": "skipped"}
    assert rec.status("loop") == {"h1": "changed"}


async def test_loop_item_failure_fails_the_task(run_pb: RunFn) -> None:
    result, rec = await run_pb(
        """
        - hosts: h1
          tasks:
            - name: loop
              command: "{{ item }}"
              loop: [/bin/true, /bin/false, /bin/true]
        """
    )
    assert rec.status("loop") == {"h1": "failed"}
    assert rec.results("loop")[0].result["msg"] == "One or more items failed"
    assert result.exit_code == 2


async def test_until_retries_and_records_attempts(run_pb: RunFn, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    result, rec = await run_pb(
        f"""
        - hosts: h1
          tasks:
            - name: flaky
              shell: >-
                n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1));
                echo $n > {counter}; test $n -ge 3
              register: r
              until: r.rc == 0
              retries: 5
              delay: 0
            - name: attempts
              debug: msg="{{{{ r.attempts }}}}"
            - name: hopeless
              command: /bin/false
              register: h
              until: h.rc == 0
              retries: 2
              delay: 0
              ignore_errors: true
            - name: hopeless attempts
              debug: msg="{{{{ h.attempts }}}}"
        """
    )
    assert rec.results("attempts")[0].result["msg"] == 3
    retries = [e for e in rec.of(RetryAttempt) if e.task.name == "flaky"]
    assert [(e.attempt, e.retries_left) for e in retries] == [(1, 5), (2, 4)]
    assert rec.status("hopeless") == {"h1": "ignored"}
    assert rec.results("hopeless attempts")[0].result["msg"] == 3
    assert result.exit_code == 0


async def test_changed_when_failed_when(run_pb: RunFn) -> None:
    _, rec = await run_pb(
        """
        - hosts: h1
          tasks:
            - name: never changed
              command: echo hi
              changed_when: false
            - name: changed by output
              command: echo CHANGED
              register: r
              changed_when: "'CHANGED' in r.stdout"
            - name: grep-like
              command: /bin/false
              failed_when: r2.rc > 1
              register: r2
            - name: fail on output
              command: echo ERROR
              register: r3
              failed_when: ["'ERROR' in r3.stdout", r3.rc == 0]
        """
    )
    assert rec.status("never changed") == {"h1": "ok"}
    assert rec.status("changed by output") == {"h1": "changed"}
    assert rec.status("grep-like") == {"h1": "changed"}
    assert rec.status("fail on output") == {"h1": "failed"}


async def test_ignore_errors(run_pb: RunFn) -> None:
    result, rec = await run_pb(
        """
        - hosts: h1
          tasks:
            - {name: bad, command: /bin/false, ignore_errors: true}
            - {name: next, debug: {msg: x}}
        """
    )
    assert rec.status("bad") == {"h1": "ignored"}
    assert rec.ran("next") == ["h1"]
    assert result.stats["h1"].ignored == 1 and result.stats["h1"].failures == 0
    assert result.exit_code == 0


async def test_block_rescue_always(run_pb: RunFn) -> None:
    result, rec = await run_pb(
        """
        - hosts: all
          tasks:
            - block:
                - name: risky
                  command: "{{ '/bin/false' if inventory_hostname != 'h3' else '/bin/true' }}"
                - name: rest of block
                  debug: msg=x
              rescue:
                - name: rescue
                  debug: msg="{{ ansible_failed_task.name }}"
                - name: rescue fails on h2
                  fail: msg=still broken
                  when: inventory_hostname == 'h2'
              always:
                - name: always
                  debug: msg=cleanup
            - name: after
              debug: msg=x
        """
    )
    assert rec.status("risky") == {"h1": "rescued", "h2": "rescued", "h3": "changed"}
    assert rec.ran("rest of block") == ["h3"]
    assert {e.host: e.result["msg"] for e in rec.results("rescue")} == {
        "h1": "risky",
        "h2": "risky",
    }
    assert sorted(rec.ran("always")) == ["h1", "h2", "h3"]
    assert sorted(rec.ran("after")) == ["h1", "h3"]
    assert result.stats["h1"].rescued == 1 and result.stats["h1"].failures == 0
    assert result.stats["h2"].failures == 1
    assert result.exit_code == 2


async def test_always_runs_after_unrescued_failure_and_host_stays_failed(run_pb: RunFn) -> None:
    result, rec = await run_pb(
        """
        - hosts: h1
          tasks:
            - block:
                - block:
                    - {name: inner, command: /bin/false}
                  always:
                    - {name: inner always, debug: {msg: x}}
              rescue:
                - {name: outer rescue, debug: {msg: x}}
            - block:
                - {name: boom, command: /bin/false}
              always:
                - {name: last always, debug: {msg: x}}
            - {name: never, debug: {msg: x}}
        """
    )
    assert rec.status("inner") == {"h1": "rescued"}
    assert rec.ran("inner always") == ["h1"]
    assert rec.ran("outer rescue") == ["h1"]
    assert rec.status("boom") == {"h1": "failed"}
    assert rec.ran("last always") == ["h1"]
    assert rec.ran("never") == []
    assert result.exit_code == 2


async def test_run_once_runs_on_one_host_and_shares_register(run_pb: RunFn) -> None:
    _, rec = await run_pb(
        """
        - hosts: all
          tasks:
            - name: once
              command: echo {{ inventory_hostname }}
              run_once: true
              register: o
            - name: seen
              debug: msg="{{ o.stdout }}"
        """
    )
    assert rec.ran("once") == ["h1"]
    assert {e.result["msg"] for e in rec.results("seen")} == {"h1"}
    assert len(rec.results("seen")) == 3


async def test_delegate_to_localhost_and_unknown_host(run_pb: RunFn) -> None:
    result, rec = await run_pb(
        """
        - hosts: all
          tasks:
            - name: on controller
              command: echo for {{ inventory_hostname }}
              delegate_to: localhost
              register: d
            - name: to peer
              debug: msg="{{ d.stdout }}"
              delegate_to: "{{ groups['all'][0] }}"
            - name: nowhere
              command: /bin/true
              delegate_to: nosuchhost
        """,
        2,
    )
    assert [(e.host, e.delegated_to) for e in rec.results("on controller")] == [
        ("h1", "localhost"),
        ("h2", "localhost"),
    ]
    assert [e.result["msg"] for e in rec.results("to peer")] == ["for h1", "for h2"]
    assert set(rec.status("nowhere").values()) == {"failed"}
    assert "unknown host 'nosuchhost'" in rec.results("nowhere")[0].result["msg"]
    assert result.exit_code == 2


async def test_timeout(run_pb: RunFn) -> None:
    _, rec = await run_pb(
        """
        - hosts: h1
          tasks:
            - name: slow
              command: sleep 10
              timeout: 0.3
        """
    )
    assert rec.status("slow") == {"h1": "failed"}
    assert "timed out" in rec.results("slow")[0].result["msg"]


async def test_no_log_hides_output_but_register_keeps_it(run_pb: RunFn) -> None:
    result, rec = await run_pb(
        """
        - hosts: h1
          tasks:
            - name: secret
              command: echo s3cret
              register: s
              no_log: true
            - name: show
              debug: msg="{{ s.stdout | length }}"
        """
    )
    shown = rec.results("secret")[0].result
    assert "s3cret" not in str(shown) and "censored" in shown
    assert rec.results("show")[0].result["msg"] == 6
    assert "s3cret" not in str(result.document["plays"][0]["tasks"][0])


async def test_vars_on_tasks_and_blocks(run_pb: RunFn) -> None:
    _, rec = await run_pb(
        """
        - hosts: h1
          vars: {who: play}
          tasks:
            - block:
                - name: block var
                  debug: msg="{{ who }}"
                - name: task var
                  debug: msg="{{ who }}"
                  vars: {who: task}
              vars: {who: block}
            - name: play var
              debug: msg="{{ who }}"
        """
    )
    assert rec.results("block var")[0].result["msg"] == "block"
    assert rec.results("task var")[0].result["msg"] == "task"
    assert rec.results("play var")[0].result["msg"] == "play"


def _intervals(path: Path) -> list[tuple[float, float]]:
    out = []
    for line in path.read_text().split():
        a, b = line.split(",")
        out.append((float(a), float(b)))
    return sorted(out)


def _overlaps(iv: list[tuple[float, float]]) -> bool:
    return any(iv[i + 1][0] < iv[i][1] for i in range(len(iv) - 1))


async def test_throttle_and_forks_bound_concurrency(run_pb: RunFn, tmp_path: Path) -> None:
    log = tmp_path / "spans"
    task = f"shell: s=$(date +%s.%N); sleep 0.15; echo $s,$(date +%s.%N) >> {log}"
    await run_pb(f"- hosts: all\n  tasks:\n    - {task}\n      throttle: 1\n")
    assert not _overlaps(_intervals(log))
    log.unlink()
    await run_pb(f"- hosts: all\n  tasks:\n    - {task}\n", forks=1)
    assert not _overlaps(_intervals(log))
    # unbounded, all three run at once: each waits until it sees the other two
    running, seen = tmp_path / "running", tmp_path / "seen"
    running.mkdir()
    seen.mkdir()
    barrier = (
        f"shell: touch {running}/{{{{ inventory_hostname }}}}; "
        f"for i in $(seq 400); do [ $(ls {running} | wc -l) -ge 3 ] && break; sleep 0.05; done; "
        f"ls {running} | wc -l > {seen}/{{{{ inventory_hostname }}}}"
    )
    await run_pb(f"- hosts: all\n  tasks:\n    - {barrier}\n")
    assert {p.name: p.read_text().strip() for p in seen.iterdir()} == {
        "h1": "3",
        "h2": "3",
        "h3": "3",
    }


async def test_meta_actions(run_pb: RunFn) -> None:
    _, rec = await run_pb(
        """
        - hosts: all
          handlers:
            - {name: h, debug: {msg: h}}
          tasks:
            - {name: change, command: /bin/true, notify: h}
            - meta: flush_handlers
            - {name: mid, debug: {msg: x}}
            - meta: end_host
              when: inventory_hostname == 'h1'
            - {name: after end_host, debug: {msg: x}}
            - meta: end_play
            - {name: never, debug: {msg: x}}
        - hosts: all
          tasks:
            - {name: next play, debug: {msg: x}}
        """
    )
    names = [e.task.name for e in rec.of(TaskStarted)]
    assert names[:3] == ["change", "h", "mid"]
    assert sorted(rec.ran("after end_host")) == ["h2", "h3"]
    assert rec.ran("never") == []
    assert sorted(rec.ran("next play")) == ["h1", "h2", "h3"]


async def test_start_at_task(run_pb: RunFn) -> None:
    _, rec = await run_pb(
        """
        - hosts: h1
          tasks:
            - {name: one, debug: {msg: x}}
            - {name: two, debug: {msg: x}}
            - {name: three, debug: {msg: x}}
        """,
        start_at_task="two",
    )
    assert [e.task.name for e in rec.of(HostResult)] == ["two", "three"]
