"""``hlplay health`` and system-health-check.yml on the built-in lab.

Real listeners over a real nats-server, a real sshd, real Nix generations; a
real full file system (a tmpfs) where the machine allows mounting one, and a
real HTTP server standing in for Prometheus and Alertmanager.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from health_support import alert, full_disk, monitor_server, target

from fixtures.lab import LabEnv

pytestmark = [pytest.mark.slow, pytest.mark.nix, pytest.mark.nats]

HOSTS = ["test-web1", "test-db1", "test-mon1", "prod-web1", "prod-db1", "prod-mon1", "test-web2"]
FINE = ("ok", "warn")  # a loaded CI machine may warn about load; that is still healthy


def health(lab: LabEnv, *args: str) -> tuple[int, dict[str, Any]]:
    res = lab.hlplay("health", "-i", str(lab.inventory), "--json", *args, timeout=120)
    try:
        doc = json.loads(res.stdout)
    except ValueError:
        raise AssertionError(
            f"not JSON (exit {res.returncode}):\n{res.stdout}\n{res.stderr}"
        ) from None
    assert doc["exit_code"] == res.returncode
    return res.returncode, doc


def rows(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["host"]: r for r in doc["rows"]}


def recap(output: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for line in output.split("PLAY RECAP", 1)[-1].splitlines():
        m = re.match(r"^(\S+)\s+:\s+(.*)$", line)
        if m:
            out[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return out


def monitoring_inventory(path: Path, url: str) -> Path:
    path.write_text(
        yaml.safe_dump({"hlplay": {"monitoring": {"prometheus_url": url, "alertmanager_url": url}}})
    )
    return path


def stop_sshd(lab: LabEnv) -> None:
    pid = int((lab.state / "pids" / "sshd.pid").read_text().split()[0])
    os.killpg(pid, signal.SIGKILL)


def test_a_healthy_lab_reports_every_host_and_exits_0(lab_session: LabEnv, tmp_path: Path) -> None:
    md = tmp_path / "health.md"
    rc, doc = health(lab_session, "--markdown", str(md), "--json-out", str(tmp_path / "h.json"))
    assert rc == 0, doc
    assert [r["host"] for r in doc["rows"]] == HOSTS
    for row in doc["rows"]:
        assert row["reachable"] is True and row["verdict"] in FINE, row
        assert row["failed_units"] == [] and row["generation"] is not None
        assert row["revision"] and row["age"] and row["disk_used_pct"] is not None
    assert rows(doc)["test-web2"]["via"] == "ssh" and rows(doc)["test-web1"]["via"] == "nats"
    assert doc["fleet"]["drift"] == []
    assert doc["fleet"]["discovery"]["answered"] == sorted(HOSTS[:6])
    text = md.read_text()
    for host in HOSTS:
        assert re.search(rf"^\| {host} \| (test|prod) \| (nats|ssh) \| yes \|", text, re.M), text
    assert json.loads((tmp_path / "h.json").read_text())["rows"] == doc["rows"]

    # the playbook form: the same rows, the same verdict
    out = tmp_path / "pb"
    run = lab_session.playbook("system-health-check.yml", "-e", f"report_dir={out}")
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads((out / "health-report.json").read_text())
    assert [r["host"] for r in report["rows"]] == HOSTS
    assert report["columns"] == doc["columns"]
    assert report["sections"][0]["data"]["drift"] == []
    assert "| test-web2 | test | ssh | yes |" in run.stdout
    assert all(s["failed"] == 0 and s["unreachable"] == 0 for s in recap(run.stdout).values())


def test_down_targets_and_firing_alerts_are_reported(lab_session: LabEnv, tmp_path: Path) -> None:
    with monitor_server() as mon:
        mon.targets = [
            target("node", "test-web1:9100"),
            target("node", "test-db1:9100", "down", "connection refused"),
        ]
        mon.alerts = [
            alert("PostgresDown", "critical", instance="test-db1"),
            alert("Silenced", "warning", state="suppressed"),
        ]
        mon_inv = monitoring_inventory(tmp_path / "monitoring.yml", mon.url)
        rc, doc = health(lab_session, "-i", str(mon_inv))
        out = tmp_path / "pb"
        run = lab_session.playbook(
            "system-health-check.yml", "-i", str(mon_inv), "-e", f"report_dir={out}"
        )
    assert rc == 2, doc
    assert all(r["verdict"] in FINE for r in doc["rows"])  # the hosts are fine, the fleet is not
    prom, am = doc["fleet"]["prometheus"], doc["fleet"]["alertmanager"]
    assert [t["instance"] for t in prom["down"]] == ["test-db1:9100"] and prom["total"] == 2
    assert [a["alertname"] for a in am["firing"]] == ["PostgresDown"]
    checks = {f["check"] for f in doc["fleet"]["findings"] if f["level"] == "bad"}
    assert checks == {"prometheus", "alertmanager"}

    assert run.returncode == 2, run.stdout + run.stderr
    assert "node test-db1:9100 is down: connection refused" in run.stdout
    assert "PostgresDown (critical) on test-db1" in run.stdout
    fleet = json.loads((out / "health-report.json").read_text())["sections"][0]["data"]
    assert [t["instance"] for t in fleet["prometheus"]["down"]] == ["test-db1:9100"]
    assert [a["alertname"] for a in fleet["alertmanager"]["firing"]] == ["PostgresDown"]
    assert recap(run.stdout)["localhost"]["failed"] == 1


def test_failed_unit_full_disk_drift_and_unreachable_hosts(
    lab_factory: Any, tmp_path: Path
) -> None:
    lab: LabEnv = lab_factory()
    (lab.state / "hosts" / "test-db1" / "units" / "postgresql.service").write_text("failed\n")
    with full_disk(tmp_path / "full") as full:
        # test-web2 (SSH) reports the disks its host vars name; a full tmpfs is a
        # really full disk. Where mounting is not allowed, a zero threshold makes
        # its ordinary disk count as full instead.
        host_vars = (
            {"hlplay_disk_paths": ["/", str(full)]}
            if full is not None
            else {"health_disk_max_percent": 0}
        )
        (lab.inventory / "host_vars").mkdir(exist_ok=True)
        (lab.inventory / "host_vars" / "test-web2.yml").write_text(yaml.safe_dump(host_vars))

        rc, doc = health(lab)
        out = tmp_path / "pb"
        run = lab.playbook("system-health-check.yml", "-e", f"report_dir={out}")
    assert rc == 2, doc
    by_host = rows(doc)
    db = by_host["test-db1"]
    assert db["verdict"] == "bad" and db["failed_units"] == ["postgresql.service"]
    assert db["notes"].startswith("failed units: postgresql.service")
    web2 = by_host["test-web2"]
    assert web2["verdict"] == "bad" and web2["reachable"] is True
    if full is not None:
        assert web2["disk_used_pct"] == 100.0
        assert f"disk {full} 100% used (limit 90%)" in web2["notes"]
    for host in set(HOSTS) - {"test-db1", "test-web2"}:
        assert by_host[host]["verdict"] in FINE, by_host[host]

    assert run.returncode == 2, run.stdout + run.stderr
    stats = recap(run.stdout)
    assert stats["test-db1"]["failed"] == 1 and stats["test-web2"]["failed"] == 1
    assert stats["test-web1"]["failed"] == 0
    report = rows(json.loads((out / "health-report.json").read_text()))
    assert report["test-db1"]["failed_units"] == ["postgresql.service"]

    # morph-style retries on a listener host: the check waits for the unit to recover
    unit = lab.state / "hosts" / "test-db1" / "units" / "postgresql.service"

    def recover() -> None:
        time.sleep(1.0)
        unit.write_text("active\n")

    pb = tmp_path / "wait.yml"
    pb.write_text(
        "- hosts: test-db1\n  tasks:\n    - name: postgres comes back\n"
        "      health: {check: unit_active, target: postgresql.service, period: 0.3,"
        " timeout: 30}\n"
    )
    threading.Thread(target=recover, daemon=True).start()
    waited = lab.hlplay(str(pb), "-i", str(lab.inventory), "-v")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    attempts = int(re.search(r'"attempts": (\d+)', waited.stdout).group(1))  # type: ignore[union-attr]
    assert attempts >= 2

    # revision drift: deploy the configuration's HEAD to one host of the test tier
    deploy = lab.playbook("deploy-all.yml", "-l", "test-web1")
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    (lab.inventory / "host_vars" / "test-web2.yml").unlink()
    rc, doc = health(lab)
    assert rc == 0, doc
    (drift,) = doc["fleet"]["drift"]
    assert drift["tier"] == "test"
    head = rows(doc)["test-web1"]["revision_full"]
    assert drift["revisions"][head] == ["test-web1"]
    assert sorted(h for hs in drift["revisions"].values() for h in hs) == sorted(
        ["test-web1", "test-db1", "test-mon1", "test-web2"]
    )
    assert "tier test runs 2 revisions" in json.dumps(doc["fleet"]["findings"])

    # a listener and the SSH host go away: unreachable, the others still reported
    lab.stop_listener("test-mon1")
    stop_sshd(lab)
    rc, doc = health(lab)
    assert rc == 4, doc
    by_host = rows(doc)
    for host in ("test-mon1", "test-web2"):
        assert by_host[host]["reachable"] is False and by_host[host]["verdict"] == "unreachable"
        assert by_host[host]["notes"]
    assert "sshd" in by_host["test-web2"]["notes"] or "connect" in by_host["test-web2"]["notes"]
    for host in set(HOSTS) - {"test-mon1", "test-web2"}:
        assert by_host[host]["reachable"] is True and by_host[host]["generation"] is not None
    assert doc["fleet"]["discovery"]["missing"] == ["test-mon1"]

    out = tmp_path / "pb-down"
    run = lab.playbook("system-health-check.yml", "-e", f"report_dir={out}")
    assert run.returncode == 4, run.stdout + run.stderr
    stats = recap(run.stdout)
    assert stats["test-mon1"]["unreachable"] == 1 and stats["test-web2"]["unreachable"] == 1
    report = rows(json.loads((out / "health-report.json").read_text()))
    assert len(report) == len(HOSTS) and report["test-mon1"]["verdict"] == "unreachable"


def test_bad_thresholds_are_one_line_errors(lab_session: LabEnv) -> None:
    res = lab_session.hlplay("health", "-i", str(lab_session.inventory), "--disk-max", "120")
    assert res.returncode == 5 and "Traceback" not in res.stderr
    res = lab_session.hlplay(
        "health", "-i", str(lab_session.inventory), "-e", "health_mem_min_percent=lots"
    )
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "health_mem_min_percent must be a number, got 'lots'" in res.stderr
    res = lab_session.hlplay(
        "health", "-i", str(lab_session.inventory), "--prometheus-url", "file:///etc/passwd"
    )
    assert res.returncode == 1 and "--prometheus-url must be an http:// or https:// URL" in (
        res.stderr
    )
    res = lab_session.hlplay("health", "-i", str(lab_session.inventory), "-l", "nosuchhost")
    assert res.returncode != 0 and "Traceback" not in res.stderr
