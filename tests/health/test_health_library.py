"""The health library: thresholds, measures, drift, and the monitoring APIs over real HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from health_support import alert, monitor_server, target

from hlplay.health.drift import tier_drift
from hlplay.health.evaluate import (
    BAD,
    OK,
    UNREACHABLE,
    WARN,
    evaluate,
    human_age,
    measure_disk,
    measure_load,
    unreachable,
)
from hlplay.health.fleet import FleetOptions, check_fleet
from hlplay.health.http import HttpError, UrlError, http_get, join_url
from hlplay.health.monitoring import alertmanager_alerts, prometheus_targets
from hlplay.health.report import FleetReport
from hlplay.health.thresholds import ThresholdError, Thresholds, thresholds_for
from hlplay.inventory.loader import load_inventory
from hlplay.inventory.model import Host

GiB = 1024**3
HOST = Host(name="web1", tier="test", roles=("web",), transport="nats")


def facts(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "hostname": "web1",
        "tier": "test",
        "failed_units": [],
        "load": [0.5, 0.4, 0.3],
        "cpus": 4,
        "memory": {"total": 8 * GiB, "available": 4 * GiB},
        "disk": [{"path": "/", "total": 100 * GiB, "used": 40 * GiB, "free": 55 * GiB}],
        "generation": 7,
        "revision": "a" * 40,
        "generation_age": 3 * 86400 + 5 * 3600,
    }
    base.update(over)
    return base


def test_a_healthy_host_has_no_findings_and_its_row_reads_well() -> None:
    h = evaluate(HOST, facts(), Thresholds())
    assert h.verdict == OK and h.findings == []
    row = h.row()
    assert row["generation"] == 7 and row["age"] == "3d 5h" and row["revision"] == "a" * 12
    assert row["revision_full"] == "a" * 40
    # df's arithmetic: reserved blocks are not available, 40 / (40 + 55)
    assert row["disk_used_pct"] == 42.1
    assert row["mem_avail_pct"] == 50.0 and row["load1"] == 0.5 and row["cpus"] == 4


@pytest.mark.parametrize(
    ("over", "check", "level"),
    [
        ({"failed_units": ["postgresql.service"]}, "units", BAD),
        ({"disk": [{"path": "/var", "total": 10, "used": 9, "free": 0}]}, "disk", BAD),
        ({"memory": {"total": 100, "available": 9}}, "memory", BAD),
        ({"load": [8.5, 1, 1]}, "load", WARN),  # 8.5 on 4 CPUs: 2.1 per CPU
        ({"failed_units": None}, "units", WARN),
        ({"generation": None}, "generation", WARN),
        ({"tier": "prod"}, "tier", WARN),
    ],
)
def test_each_problem_is_one_finding_at_its_level(
    over: dict[str, Any], check: str, level: str
) -> None:
    h = evaluate(HOST, facts(**over), Thresholds())
    assert [(f.check, f.level) for f in h.findings] == [(check, level)]
    assert h.verdict == level
    assert h.notes == h.findings[0].message


def test_boundaries_follow_the_documented_defaults() -> None:
    t = Thresholds()
    full = {"disk": [{"path": "/", "total": 100, "used": 90, "free": 10}]}
    assert measure_disk(full, t.disk_max_percent).ok is False  # 90% used is bad
    almost = {"disk": [{"path": "/", "total": 100, "used": 89, "free": 11}]}
    assert measure_disk(almost, t.disk_max_percent).ok is True
    two_cpus = {"load": [4.0, 0, 0], "cpus": 2}
    assert measure_load(two_cpus, t.load_max_per_cpu).ok is True  # 2.0 per CPU is fine
    assert measure_load({"load": [4.1, 0, 0], "cpus": 2}, 2.0).ok is False


def test_the_fullest_disk_counts_and_a_missing_path_is_named() -> None:
    disks = [
        {"path": "/", "total": 100, "used": 10, "free": 90},
        {"path": "/data", "total": 100, "used": 95, "free": 5},
        {"path": "/gone", "error": "No such file or directory"},
    ]
    m = measure_disk({"disk": disks}, 90)
    assert m.ok is False and m.value == 95.0 and "/data" in m.message
    only_root = measure_disk({"disk": disks}, 90, path="/")
    assert only_root.ok is True and only_root.value == 10.0
    missing = measure_disk({"disk": disks}, 90, path="/srv")
    assert missing.ok is None and "/srv is not reported" in missing.message


def test_thresholds_precedence_and_errors() -> None:
    assert thresholds_for({}) == Thresholds(90, 10, 2)
    from_vars = thresholds_for({"health_disk_max_percent": 80, "health_load_max_per_cpu": "3"})
    assert (from_vars.disk_max_percent, from_vars.load_max_per_cpu) == (80, 3)
    flags = thresholds_for({"health_disk_max_percent": 80}, {"disk_max": 70, "mem_min": None})
    assert flags.disk_max_percent == 70 and flags.mem_min_percent == 10
    with pytest.raises(ThresholdError, match="health_disk_max_percent must be between 0 and 100"):
        thresholds_for({"health_disk_max_percent": 150})
    with pytest.raises(ThresholdError, match="must be a number, got 'lots'"):
        thresholds_for({"health_mem_min_percent": "lots"})


def test_drift_names_each_tier_with_more_than_one_revision() -> None:
    rows: list[dict[str, Any]] = [
        {"host": "t1", "tier": "test", "revision_full": "b" * 40, "reachable": True},
        {"host": "t2", "tier": "test", "revision_full": "a" * 40, "reachable": True},
        {"host": "t3", "tier": "test", "revision_full": "a" * 40, "reachable": True},
        {"host": "t4", "tier": "test", "revision_full": None, "reachable": True},
        {"host": "t5", "tier": "test", "revision_full": "c" * 40, "reachable": False},
        {"host": "p1", "tier": "prod", "revision_full": "a" * 40, "reachable": True},
    ]
    drift = tier_drift(rows)
    assert len(drift) == 1 and drift[0]["tier"] == "test"
    assert drift[0]["revisions"] == {"a" * 40: ["t2", "t3"], "b" * 40: ["t1"]}
    assert drift[0]["message"] == (
        f"tier test runs 2 revisions: {'a' * 12} (t2, t3); {'b' * 12} (t1)"
    )
    assert tier_drift(rows[1:3] + rows[5:]) == []


def test_human_age() -> None:
    assert [human_age(s) for s in (None, 5, 600, 3 * 3600 + 120, 4 * 86400)] == [
        None, "5s", "10m", "3h 2m", "4d 0h",
    ]  # fmt: skip


async def test_prometheus_and_alertmanager_over_http_with_filters() -> None:
    with monitor_server() as mon:
        mon.targets = [
            target("node", "web1:9100"),
            target("node", "db1:9100", "down", "connection refused"),
            target("nginx", "web1:9113", "unknown"),
        ]
        mon.alerts = [
            alert("DiskFull", "critical", instance="db1"),
            alert("HighLoad", "warning", instance="web1"),
            alert("Silenced", "critical", state="suppressed"),
        ]
        prom = await prometheus_targets(mon.url)
        assert not prom.ok and len(prom.targets) == 3
        assert [(t["instance"], t["health"]) for t in prom.down] == [
            ("db1:9100", "down"),
            ("web1:9113", "unknown"),
        ]
        assert prom.down[0]["last_error"] == "connection refused"
        assert "db1:9100 is down: connection refused" in prom.markdown()
        nginx_only = await prometheus_targets(mon.url + "/", job="nginx")
        assert [t["job"] for t in nginx_only.targets] == ["nginx"]
        node_web = await prometheus_targets(mon.url, labels={"instance": "web1:9100"})
        assert node_web.ok and len(node_web.targets) == 1

        am = await alertmanager_alerts(mon.url)
        assert [a["alertname"] for a in am.firing] == ["DiskFull", "HighLoad"]
        assert len(am.alerts) == 3 and not am.ok
        critical = await alertmanager_alerts(mon.url, severity="critical")
        assert [a["alertname"] for a in critical.firing] == ["DiskFull"]
        web = await alertmanager_alerts(mon.url, labels={"instance": "web1"})
        assert [a["alertname"] for a in web.firing] == ["HighLoad"]
        quiet = await alertmanager_alerts(mon.url, severity=["info"])
        assert quiet.ok and quiet.alerts == []


async def test_unreadable_monitoring_is_an_error_not_a_crash() -> None:
    with monitor_server() as mon:
        mon.pages["/broken/api/v1/targets?state=active"] = (200, "not json")
        broken = await prometheus_targets(mon.url + "/broken")
        assert broken.error is not None and "did not answer JSON" in broken.error
        missing = await alertmanager_alerts(mon.url + "/nothing")
        assert missing.error == f"HTTP 404 from {mon.url}/nothing/api/v2/alerts"
    refused = await prometheus_targets(mon.url, timeout=2)
    assert refused.error is not None and not refused.ok
    with pytest.raises(UrlError, match="must be an http:// or https:// URL"):
        await prometheus_targets("file:///etc/passwd")
    for broken_url in ("http://[::1", "http://prom:port/", "http://prom:99999/"):
        with pytest.raises(UrlError, match="is not a valid URL"):
            await alertmanager_alerts(broken_url)


async def test_http_get_keeps_error_statuses_and_does_not_follow_redirects() -> None:
    with monitor_server() as mon:
        mon.pages["/teapot"] = (418, "short and stout")
        resp = await http_get(mon.url + "/teapot")
        assert (resp.status, resp.text()) == (418, "short and stout")
        mon.pages["/moved"] = (302, "elsewhere")
        assert (await http_get(mon.url + "/moved")).status == 302
    with pytest.raises(HttpError):
        await http_get(mon.url + "/", timeout=2)
    assert join_url("http://x/prom/", "/api/v1/targets") == "http://x/prom/api/v1/targets"


def test_fleet_report_exit_codes_and_sections() -> None:
    ok = evaluate(HOST, facts(), Thresholds())
    warn = evaluate(Host("web2", "test", transport="ssh"), facts(load=[99, 0, 0]), Thresholds())
    bad = evaluate(Host("db1", "test"), facts(failed_units=["x.service"]), Thresholds())
    gone = unreachable(Host("db2", "prod"), "connection refused")
    assert gone.verdict == UNREACHABLE and gone.notes == "connection refused"
    assert FleetReport([ok, warn]).exit_code == 0
    assert FleetReport([ok, warn], strict=True).exit_code == 2
    assert FleetReport([ok, bad]).exit_code == 2
    assert FleetReport([ok, bad, gone]).exit_code == 4  # unreachable is checked first
    md, doc = FleetReport([ok, bad, gone]).render()
    assert doc["columns"][:4] == ["host", "tier", "via", "reachable"]
    assert [r["verdict"] for r in doc["rows"]] == ["ok", "bad", "unreachable"]
    assert doc["exit_code"] == 4 and doc["healthy"] is False
    assert doc["counts"] == {"ok": 1, "warn": 0, "bad": 1, "unreachable": 1}
    assert doc["sections"][0]["title"] == "Fleet"
    assert "| db1 | test | nats | yes | 7 | 3d 5h |" in md
    assert "| db2 | prod | nats | no |" in md and "### Fleet" in md


async def test_hosts_that_cannot_be_reached_do_not_stop_the_others(tmp_path: Path) -> None:
    """A local host is read in-process; an SSH host with nothing listening is unreachable."""
    units = tmp_path / "units"
    units.mkdir()
    (units / "ok.service").write_text("active")
    inv_file = tmp_path / "inv.yml"
    inv_file.write_text(
        f"""
hosts:
  here:
    tier: test
    transport: local
    vars:
      hlplay_units_dir: {units}
      hlplay_disk_paths: [{tmp_path}]
      hlplay_profile: {tmp_path}/profile/system
      health_disk_max_percent: 99
  gone:
    tier: test
    transport: ssh
    address: 127.0.0.1
    ssh: {{port: 1, user: root, known_hosts: {tmp_path}/known_hosts}}
"""
    )
    inv = load_inventory(inv_file)
    report = await check_fleet(inv, ["here", "gone"], FleetOptions(timeout=5))
    here, gone = report.hosts
    assert here.reachable and here.failed_units == [] and here.via == "local"
    assert here.disks[0]["path"] == str(tmp_path) and here.cpus
    assert not gone.reachable and gone.verdict == UNREACHABLE and gone.error
    assert report.exit_code == 4
    assert here.thresholds.disk_max_percent == 99 and gone.thresholds.disk_max_percent == 90
    assert report.thresholds_vary and "some hosts have their own" in report.render()[0]
    (units / "db.service").write_text("failed")
    report = await check_fleet(inv, ["here"], FleetOptions(flags={"disk_max": 100}))
    assert report.hosts[0].failed_units == ["db.service"] and report.exit_code == 2


async def test_a_bad_monitoring_url_stops_the_check_before_any_host(tmp_path: Path) -> None:
    """The URL is checked first, and nothing is left running behind the error."""
    import asyncio

    inv_file = tmp_path / "inv.yml"
    inv_file.write_text(
        f"""
hlplay:
  monitoring:
    prometheus_url: "http://[::1"
hosts:
  here:
    tier: test
    transport: local
    vars:
      hlplay_profile: {tmp_path}/profile/system
"""
    )
    inv = load_inventory(inv_file)
    with pytest.raises(UrlError, match=r"the Prometheus URL is not a valid URL"):
        await check_fleet(inv, ["here"], FleetOptions(timeout=5))
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
    with pytest.raises(UrlError, match=r"the Alertmanager URL must be an http"):
        options = FleetOptions(
            prometheus_url="http://127.0.0.1:1", alertmanager_url="ftp://am", timeout=5
        )
        await check_fleet(inv, ["here"], options)
