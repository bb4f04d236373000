"""deploy-all.yml on the built-in lab: real listeners, real sshd, real Nix."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from fixtures.lab import LabEnv

pytestmark = [pytest.mark.slow, pytest.mark.nix, pytest.mark.nats]

TEST_HOSTS = ["test-web1", "test-db1", "test-mon1", "test-web2"]
PROD_HOSTS = ["prod-web1", "prod-db1", "prod-mon1"]


def recap(output: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for line in output.split("PLAY RECAP", 1)[-1].splitlines():
        m = re.match(r"^(\S+)\s+:\s+(.*)$", line)
        if m:
            out[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return out


def test_deploy_test_tier_then_nothing_to_do(lab_factory) -> None:
    lab: LabEnv = lab_factory()
    before = {h: lab.current_generation(h) for h in TEST_HOSTS + PROD_HOSTS}
    assert all(g == 1 for g in before.values()), before

    # dry run: the diff is shown, nothing is activated
    dry = lab.playbook("deploy-all.yml", "-l", "tier=test", "--check", "--diff")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "[U*]  #1  nginx-lite  1.24.0 -> 1.25.3" in dry.stdout
    assert {h: lab.current_generation(h) for h in before} == before

    run = lab.playbook("deploy-all.yml", "-l", "tier=test")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "nginx-lite  1.24.0 -> 1.25.3" in run.stdout
    # the web hosts changed (one over NATS, one over SSH); the others had nothing to do
    assert lab.current_generation("test-web1") == 2
    assert lab.current_generation("test-web2") == 2
    assert lab.current_generation("test-db1") == 1
    # killed before or during its deploy: either way it is reported, never silently left
    assert lab.current_generation("test-mon1") in (1, 2)
    # prod untouched
    assert all(lab.current_generation(h) == 1 for h in PROD_HOSTS)
    assert lab.units("test-web1").get("nginx.service") == "active"
    assert "| test-web1 | test | nats | 1 | 2 |" in run.stdout
    stats = recap(run.stdout)
    assert set(stats) >= set(TEST_HOSTS)
    assert not set(stats) & set(PROD_HOSTS)

    again = lab.playbook("deploy-all.yml", "-l", "tier=test")
    assert again.returncode == 0, again.stdout
    assert all(s["changed"] == 0 for s in recap(again.stdout).values()), again.stdout
    assert lab.current_generation("test-web1") == 2


def test_failed_activation_rolls_back_exactly_those_hosts(lab_factory) -> None:
    lab: LabEnv = lab_factory()
    lab.set_switch("failActivationRoles", ["db"])
    lab.bump("openssl-lite", "3.0.14")  # every host changes

    run = lab.playbook("deploy-all.yml", "-l", "tier=test")
    assert run.returncode == 2, run.stdout + run.stderr
    stats = recap(run.stdout)
    assert stats["test-db1"]["failed"] == 1
    for host in ("test-web1", "test-mon1", "test-web2"):
        assert stats[host]["failed"] == 0
        assert lab.current_generation(host) == 2
    # rolled back to generation 1; the failed generation is gone
    assert lab.current_generation("test-db1") == 1
    assert lab.profile_generations("test-db1") == [1]
    assert "rolled back" in run.stdout
    assert all(lab.current_generation(h) == 1 for h in PROD_HOSTS)
    # lab status: each host's generation and health, and the tier's revision drift
    status = lab.hlplay("lab", "status", "-i", str(lab.inventory))
    assert status.returncode == 0, status.stdout + status.stderr
    rows = {line.split()[0]: line.split() for line in status.stdout.splitlines()[1:]}
    assert rows["test-db1"][3] == "1" and rows["test-web1"][3] == "2"
    assert rows["test-db1"][-1] == rows["test-web1"][-1] == "ok"
    assert rows["test-db1"][4] != rows["test-web1"][4]
    assert re.search(r"^revision drift in tier test: \w{12}, \w{12}$", status.stdout, re.M)
    assert "revision drift in tier prod" not in status.stdout


def test_failed_health_gate_rolls_back(lab_factory) -> None:
    lab: LabEnv = lab_factory()
    lab.set_switch("failServiceRoles", ["mon"])
    lab.bump("prometheus-lite", "2.46.0")

    run = lab.playbook("deploy-all.yml", "-l", "tier=test")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "health_failed" in run.stdout
    # killed before or during its deploy: either way it is reported, never silently left
    assert lab.current_generation("test-mon1") in (1, 2)
    assert lab.units("test-mon1").get("prometheus.service") == "active"


def test_stopped_listener_is_unreachable_while_the_rest_deploy(lab_factory) -> None:
    lab: LabEnv = lab_factory()
    lab.bump("openssl-lite", "3.0.14")
    lab.stop_listener("test-mon1")

    run = lab.playbook("deploy-all.yml", "-l", "tier=test", timeout=300)
    assert run.returncode == 4, run.stdout + run.stderr
    stats = recap(run.stdout)
    assert stats["test-mon1"]["unreachable"] == 1
    for host in ("test-web1", "test-db1", "test-web2"):
        assert lab.current_generation(host) == 2, run.stdout


def test_lab_down_leaves_nothing_running(lab_factory) -> None:
    lab: LabEnv = lab_factory()
    pids = [int(p.read_text().split()[0]) for p in (lab.state / "pids").glob("*.pid")]
    assert len(pids) >= 7
    text = (lab.inventory / "hosts.yml").read_text()
    ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", text)]
    ports += [int(p) for p in re.findall(r"port: (\d+)", text)]
    down = lab.hlplay("lab", "down", "-i", str(lab.inventory))
    assert down.returncode == 0, down.stderr
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        )
    for port in ports:
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"
    status = lab.hlplay("lab", "status", "-i", str(lab.inventory))
    assert status.returncode == 3
    assert status.stderr.startswith("ERROR: the lab is not running"), status.stderr


def test_listener_stopped_mid_run_is_unreachable_while_the_rest_finish(lab_factory) -> None:
    import subprocess
    import sys

    from fixtures.lab import REPO

    lab: LabEnv = lab_factory()
    hosts_yml = lab.inventory / "hosts.yml"
    hosts_yml.write_text(hosts_yml.read_text().replace("timeout: 120", "timeout: 15"))
    lab.bump("openssl-lite", "3.0.14")  # every host changes
    argv = [
        sys.executable,
        "-m",
        "hlplay.cli.main",
        str(REPO / "playbooks" / "deploy-all.yml"),
        "-i",
        str(lab.inventory),
        "-l",
        "tier=test",
        "-e",
        "serial=2",
    ]
    proc = subprocess.Popen(
        argv,
        cwd=lab.root,
        env=lab.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    in_deploy = killed = False
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("PLAY [Deploy the test tier]"):
            in_deploy = True
        # the first batch (test-web1, test-db1) is done: test-mon1 is in the next one,
        # which may already be on its way (the listener then vanishes after "started")
        if in_deploy and not killed and re.match(r"^(changed|ok): \[test-(web1|db1)\]", line):
            lab.stop_listener("test-mon1")
            killed = True
    rc = proc.wait(timeout=120)
    out = "".join(lines)
    assert killed, out
    assert rc == 4, out
    stats = recap(out)
    assert stats["test-mon1"]["unreachable"] == 1, out
    for host in ("test-web1", "test-db1", "test-web2"):
        assert stats[host]["failed"] == 0 and stats[host]["unreachable"] == 0, out
        assert lab.current_generation(host) == 2, out
    # killed before or during its deploy: either way it is reported, never silently left
    assert lab.current_generation("test-mon1") in (1, 2)
