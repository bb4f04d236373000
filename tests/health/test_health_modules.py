"""health, http_check, prometheus_targets and alertmanager_alerts, run through the engine.

The hosts are ``transport: local`` (the controller itself, read in-process as a
listener would read it); the HTTP servers are real, in threads.
"""

from __future__ import annotations

import asyncio
import json
import socket
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from health_support import alert, full_disk, monitor_server, target

from hlplay.engine.api import run_playbook
from hlplay.engine.events import Event, HostResult
from hlplay.inventory.loader import load_inventory


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


def write_inventory(tmp_path: Path, monitoring: dict[str, str] | None = None) -> Path:
    units = tmp_path / "units"
    units.mkdir(exist_ok=True)
    (units / "web.service").write_text("active")
    (units / "db.service").write_text("failed")
    doc: dict[str, Any] = {
        "hosts": {
            "h1": {
                "tier": "test",
                "transport": "local",
                "address": "127.0.0.1",
                "vars": {
                    "hlplay_units_dir": str(units),
                    "hlplay_disk_paths": [str(tmp_path)],
                    "hlplay_profile": str(tmp_path / "profile" / "system"),
                },
            }
        }
    }
    if monitoring:
        doc["hlplay"] = {"monitoring": monitoring}
    inv = tmp_path / "inv.yml"
    inv.write_text(yaml.safe_dump(doc))
    return inv


async def run(tmp_path: Path, tasks: str, inv: Path | None = None, **kw: Any) -> Recorder:
    pb = tmp_path / "pb.yml"
    pb.write_text("- hosts: all\n  tasks:\n" + textwrap.indent(textwrap.dedent(tasks), "    "))
    rec = Recorder()
    inventory = load_inventory(inv or write_inventory(tmp_path))
    await run_playbook(pb, inventory, reporters=[rec], **kw)
    return rec


async def test_unit_checks_pass_fail_and_retry_until_the_unit_recovers(tmp_path: Path) -> None:
    units = tmp_path / "units"
    units.mkdir()
    (units / "late.service").write_text("failed")

    def recover() -> None:
        time.sleep(0.6)
        (units / "late.service").write_text("active")

    threading.Thread(target=recover, daemon=True).start()
    rec = await run(
        tmp_path,
        """
        - name: active
          health: {check: unit_active, target: web.service}
        - name: failed
          health: {check: unit_active, target: db.service}
          ignore_errors: true
        - name: retried
          health: {check: unit_active, target: late.service, period: 0.2, timeout: 10}
        - name: no failed units
          health: {check: units}
          ignore_errors: true
        - name: bad unit name
          health: {check: unit_active, target: "-rf /"}
          ignore_errors: true
        """,
    )
    assert rec.result("active").status == "ok"
    failed = rec.result("failed")
    assert failed.status == "ignored"
    assert failed.result["attempts"] == 1 and failed.result["last_error"] == "db.service: failed"
    retried = rec.result("retried").result
    assert retried["ok"] is True and retried["attempts"] >= 2 and retried["last_error"] is None
    assert "tries in" in retried["msg"]
    units_res = rec.result("no failed units").result
    assert units_res["failed"] and units_res["value"] == ["db.service"]
    assert "invalid unit name" in rec.result("bad unit name").result["msg"]


async def test_a_check_that_never_passes_gives_up_at_its_timeout(tmp_path: Path) -> None:
    start = time.monotonic()
    rec = await run(
        tmp_path,
        """
        - name: never
          health: {check: unit_active, target: db.service, period: 0.3, timeout: 1}
          ignore_errors: true
        """,
    )
    took = time.monotonic() - start
    res = rec.result("never").result
    assert res["failed"] and 3 <= res["attempts"] <= 5 and res["last_error"] == "db.service: failed"
    assert took < 10


async def test_tcp_and_http_checks_from_the_controller(tmp_path: Path) -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    try:
        with monitor_server() as mon:
            mon.pages["/health"] = (200, "ok")
            mon.pages["/teapot"] = (418, "no")
            rec = await run(
                tmp_path,
                f"""
                - name: tcp port of the host itself
                  health: {{check: tcp, target: "{port}"}}
                - name: tcp closed
                  health: {{check: tcp, target: "127.0.0.1:{closed_port}"}}
                  ignore_errors: true
                - name: http
                  health: {{check: http, target: "{mon.url}/health"}}
                - name: http exact status
                  health: {{check: http, target: "{mon.url}/teapot", status: 418}}
                - name: http wrong status
                  health: {{check: http, target: "{mon.url}/teapot"}}
                  ignore_errors: true
                """,
            )
    finally:
        server.close()
        await server.wait_closed()
    assert rec.result("tcp port of the host itself").status == "ok"
    closed = rec.result("tcp closed").result
    assert closed["failed"] and closed["last_error"].endswith("connection refused")
    assert rec.result("http").result["value"] == 200
    assert rec.result("http exact status").status == "ok"
    wrong = rec.result("http wrong status").result
    assert wrong["last_error"].endswith("HTTP 418, expected 2xx or 3xx")


async def test_disk_memory_load_and_the_host_row(tmp_path: Path) -> None:
    rec = await run(
        tmp_path,
        """
        - name: disk
          health: {check: disk}
        - name: disk too strict
          health: {check: disk, disk_max: 0}
          ignore_errors: true
        - name: memory
          health: {check: memory, mem_min: 0}
        - name: load from vars
          health: {check: load}
          vars: {health_load_max_per_cpu: 100000}
        - name: load too strict
          health: {check: load, load_max: 0}
          ignore_errors: true
        - name: row
          health: {check: host}
          register: row
          ignore_errors: true
        """,
    )
    assert rec.result("disk").status == "ok"
    strict = rec.result("disk too strict").result
    assert strict["failed"] and "(limit 0%)" in strict["last_error"]
    assert rec.result("memory").status == "ok"
    assert rec.result("load from vars").status == "ok"
    assert "per CPU" in rec.result("load too strict").result["last_error"]
    row = rec.result("row").result["row"]
    assert row["host"] == "h1" and row["via"] == "local" and row["reachable"] is True
    assert row["failed_units"] == ["db.service"] and row["verdict"] == "bad"
    assert row["disks"][0]["path"] == str(tmp_path)


async def test_a_full_disk_fails_the_disk_check(tmp_path: Path) -> None:
    with full_disk(tmp_path / "full") as full:
        if full is None:
            pytest.skip("mounting a tmpfs needs root")
        inv = write_inventory(tmp_path)
        data = yaml.safe_load(inv.read_text())
        data["hosts"]["h1"]["vars"]["hlplay_disk_paths"] = ["/", str(full)]
        inv.write_text(yaml.safe_dump(data))
        rec = await run(
            tmp_path,
            f"""
            - name: fullest
              health: {{check: disk}}
              ignore_errors: true
            - name: root only
              health: {{check: disk, target: /}}
            - name: the full one
              health: {{check: disk, target: "{full}"}}
              ignore_errors: true
            """,
            inv,
        )
    fullest = rec.result("fullest").result
    assert fullest["failed"] and fullest["value"] == 100.0
    assert fullest["last_error"] == f"disk {full} 100% used (limit 90%)"
    assert rec.result("root only").status == "ok"
    assert rec.result("the full one").result["failed"]


async def test_unreachable_host_and_drift(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yml"
    inv.write_text(
        yaml.safe_dump(
            {
                "hosts": {
                    "gone": {
                        "tier": "test",
                        "transport": "ssh",
                        "address": "127.0.0.1",
                        "ssh": {"port": 1, "user": "root"},
                    }
                }
            }
        )
    )
    rows = [
        {"host": "a", "tier": "test", "revision_full": "1" * 40, "reachable": True},
        {"host": "b", "tier": "test", "revision_full": "2" * 40, "reachable": True},
    ]
    rec = Recorder()
    pb = tmp_path / "pb.yml"
    pb.write_text(
        yaml.safe_dump(
            [
                {
                    "hosts": "all",
                    "tasks": [
                        {
                            "name": "row",
                            "health": {"check": "host"},
                            "register": "r",
                            "ignore_unreachable": True,
                        }
                    ],
                },
                {
                    "hosts": "localhost",
                    "tasks": [
                        {
                            "name": "drift",
                            "health": {"check": "drift", "rows": rows},
                            "ignore_errors": True,
                        },
                        {"name": "none", "health": {"check": "drift", "rows": rows[:1]}},
                    ],
                },
            ]
        )
    )
    result = await run_playbook(pb, load_inventory(inv), reporters=[rec])
    row = rec.result("row", "gone")
    assert row.status == "ignored" or row.result.get("unreachable")
    assert row.result["row"]["verdict"] == "unreachable"
    assert row.result["row"]["reachable"] is False
    drift = rec.result("drift", "localhost").result
    assert drift["failed"] and drift["drift"][0]["tier"] == "test"
    assert rec.result("none", "localhost").result["drift"] == []
    assert result.exit_code == 0


async def test_http_check_status_body_and_retries(tmp_path: Path) -> None:
    with monitor_server() as mon:
        mon.pages["/ok"] = (200, '{"status": "ok", "version": "1.2"}')
        mon.pages["/flaky"] = [(503, "starting"), (503, "starting"), (200, "ready")]
        mon.pages["/empty"] = (204, "")
        rec = await run(
            tmp_path,
            f"""
            - name: body
              http_check: {{url: "{mon.url}/ok", body_regex: 'version": "([0-9.]+)'}}
            - name: body mismatch
              http_check: {{url: "{mon.url}/ok", body_regex: 'degraded'}}
              ignore_errors: true
            - name: flaky
              http_check: {{url: "{mon.url}/flaky", retries: 3, delay: 0.05}}
            - name: statuses
              http_check: {{url: "{mon.url}/empty", status: [200, 204]}}
            - name: wrong status
              http_check: {{url: "{mon.url}/empty"}}
              ignore_errors: true
            - name: bad regex
              http_check: {{url: "{mon.url}/ok", body_regex: '('}}
              ignore_errors: true
            - name: not http
              http_check: {{url: "ftp://example.org/"}}
              ignore_errors: true
            """,
        )
    body = rec.result("body").result
    assert body["status"] == 200 and body["match"] == 'version": "1.2'
    assert "does not match 'degraded'" in rec.result("body mismatch").result["last_error"]
    flaky = rec.result("flaky").result
    assert flaky["attempts"] == 3 and flaky["status"] == 200 and flaky["last_error"] is None
    assert rec.result("statuses").status == "ok"
    assert "HTTP 204, expected 200" in rec.result("wrong status").result["msg"]
    assert "not a valid regex" in rec.result("bad regex").result["msg"]
    assert "http:// or https://" in rec.result("not http").result["msg"]


async def test_prometheus_and_alertmanager_modules(tmp_path: Path) -> None:
    with monitor_server() as mon:
        mon.targets = [target("node", "h1:9100"), target("node", "h2:9100", "down", "refused")]
        mon.alerts = [alert("DiskFull", "critical"), alert("Noise", "info")]
        inv = write_inventory(
            tmp_path, {"prometheus_url": mon.url, "alertmanager_url": mon.url + "/"}
        )
        rec = await run(
            tmp_path,
            """
            - name: targets
              prometheus_targets: {}
              ignore_errors: true
            - name: targets reported only
              prometheus_targets: {fail_on_down: false, job: [node]}
            - name: labels
              prometheus_targets: {labels: {instance: "h1:9100"}}
            - name: alerts
              alertmanager_alerts: {}
              ignore_errors: true
            - name: only info
              alertmanager_alerts: {severity: info, fail_on_firing: false}
            - name: none firing
              alertmanager_alerts: {severity: [warning]}
            """,
            inv,
        )
        targets = rec.result("targets").result
        assert targets["failed"] and targets["total"] == 2 and targets["up"] == 1
        assert [t["instance"] for t in targets["down"]] == ["h2:9100"]
        assert targets["msg"] == "1 of 2 targets down: node/h2:9100"
        assert rec.result("targets reported only").status == "ok"
        assert rec.result("labels").result["total"] == 1
        alerts = rec.result("alerts").result
        assert alerts["failed"] and [a["alertname"] for a in alerts["firing"]] == [
            "DiskFull",
            "Noise",
        ]
        assert rec.result("only info").result["firing"][0]["alertname"] == "Noise"
        assert rec.result("none firing").status == "ok"
    # without a URL in the inventory or the task, there is nothing to check
    rec = await run(
        tmp_path,
        """
        - name: no prometheus
          prometheus_targets: {}
        - name: no alertmanager
          alertmanager_alerts: {}
        """,
    )
    assert rec.result("no prometheus").status == "skipped"
    assert rec.result("no alertmanager").status == "skipped"


async def test_report_sections_reach_markdown_and_json(tmp_path: Path) -> None:
    out = tmp_path / "out"
    rec = await run(
        tmp_path,
        f"""
        - name: report
          report:
            title: T
            rows: [{{host: a, verdict: ok}}]
            sections:
              - title: Fleet
                markdown: "- no revision drift"
                data: {{drift: []}}
            dest: {out}/r.md
            json_dest: {out}/r.json
            show: true
          run_once: true
        """,
    )
    res = rec.result("report").result
    assert "### Fleet\n\n- no revision drift" in res["display"]
    doc = json.loads((out / "r.json").read_text())
    assert doc["sections"] == [{"title": "Fleet", "data": {"drift": []}}]
    assert "| a | ok |" in (out / "r.md").read_text()


async def test_a_report_that_cannot_be_written_fails_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file, not a directory")
    rec = await run(
        tmp_path,
        f"""
        - name: report
          report:
            title: T
            rows: [{{host: a}}]
            json_dest: {tmp_path}/taken/r.json
          run_once: true
          ignore_errors: true
        - name: deploy report
          deploy_report:
            dest: {tmp_path}/taken/d.md
          run_once: true
        """,
        check=True,
    )
    for name, path in (("report", "r.json"), ("deploy report", "d.md")):
        res = rec.result(name).result
        assert res["failed"], res
        assert res["msg"].startswith(f"cannot write the report to {tmp_path}/taken/{path}: ")


async def test_thresholds_are_validated_for_every_host_without_contacting_any(
    tmp_path: Path,
) -> None:
    task = """
        - name: thresholds
          health:
            check: thresholds
            hosts: "{{ ansible_play_hosts_all }}"
            load_max: 3
          run_once: true
        """
    rec = await run(tmp_path, task, extra_vars={"health_disk_max_percent": "80"})
    res = rec.result("thresholds").result
    assert not res.get("failed"), res
    assert res["thresholds"] == {
        "h1": {"disk_max_percent": 80.0, "mem_min_percent": 10.0, "load_max_per_cpu": 3.0}
    }
    rec = await run(tmp_path, task, extra_vars={"health_mem_min_percent": "lots"})
    res = rec.result("thresholds").result
    assert res["failed"]
    assert res["msg"] == "host h1: variable health_mem_min_percent must be a number, got 'lots'"
