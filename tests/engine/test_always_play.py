"""A play tagged ``always`` on localhost still runs after a fatal stop; no other play does."""

from __future__ import annotations

from conftest import RunFn
from hlplay.engine.events import HostResult

PLAYBOOK = """
- hosts: all
  any_errors_fatal: true
  tasks:
    - {name: gate, fail: {msg: stop}, when: inventory_hostname == 'h1'}
- hosts: all
  tags: [always]
  tasks:
    - {name: fleet after stop, debug: {msg: x}}
- hosts: localhost
  tasks:
    - {name: untagged report, debug: {msg: x}}
- hosts: localhost
  tags: [always]
  tasks:
    - {name: report, debug: {msg: x}}
"""


async def test_only_the_controller_play_tagged_always_runs_after_a_fatal_stop(
    run_pb: RunFn,
) -> None:
    result, rec = await run_pb(PLAYBOOK, 2)
    assert result.exit_code == 2
    ran = [(e.task.name, e.host) for e in rec.of(HostResult)]
    assert ("report", "localhost") in ran
    assert not [r for r in ran if r[0] in ("fleet after stop", "untagged report")]
    # only the host whose task failed counts as failed
    assert result.stats["h1"].failures == 1 and result.stats["h2"].failures == 0
