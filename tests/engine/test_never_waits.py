"""Work that never awaits still lets the run be stopped: a stop set from the event loop
lands in an ``until`` loop with no delay and in a loop over many items."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from conftest import RunFn

UNTIL = """
- hosts: h1
  tasks:
    - name: spin
      debug: {msg: again}
      register: r
      until: r.msg == 'never'
      retries: 1000000000
      delay: 0
"""

ITEMS = """
- hosts: h1
  tasks:
    - name: many
      debug: {msg: "{{ item }}"}
      loop: "{{ range(100000) | list }}"
"""


async def _stopped_after(run_pb: RunFn, text: str, seconds: float) -> tuple[int, float]:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, stop.set)
    start = time.monotonic()
    result, _ = await asyncio.wait_for(run_pb(text, 1, stop=stop), 60)
    return result.exit_code, time.monotonic() - start - seconds


async def test_an_until_loop_with_no_delay_sees_the_stop(run_pb: RunFn) -> None:
    code, late = await _stopped_after(run_pb, UNTIL, 0.3)
    assert code == 99
    assert late < 1


async def test_a_long_loop_over_items_sees_the_stop(run_pb: RunFn) -> None:
    code, late = await _stopped_after(run_pb, ITEMS, 0.3)
    assert code == 99
    assert late < 1


async def test_deploy_report_refuses_a_report_dir_that_is_not_a_path(
    run_pb: RunFn, tmp_path: Path
) -> None:
    _, rec = await run_pb(
        """
        - hosts: localhost
          tasks:
            - name: report
              deploy_report:
                dest: "{{ report_dir ~ '/deploy-report.md' }}"
        """,
        None,
        extra_vars={"report_dir": ["x"]},
    )
    (got,) = rec.results("report")
    assert got.status == "failed"
    assert got.result["msg"] == f"report_dir must be a directory path, got {json.dumps(['x'])}"
    assert not (tmp_path / "['x']").exists()


async def test_nixos_rebuild_refuses_an_endless_confirm_timeout(run_pb: RunFn) -> None:
    for value in ("1e309", "nan", "3601", "-5"):
        _, rec = await run_pb(
            f"""
            - hosts: h1
              tasks:
                - name: deploy
                  nixos_rebuild: {{revision: main, confirm_timeout: "{value}"}}
            """,
            1,
        )
        (got,) = rec.results("deploy")
        assert got.status == "failed", got.result
        expected = f"confirm_timeout must be from 0 to 3600 seconds, got {float(value)!r}"
        assert expected in got.result["msg"], got.result
