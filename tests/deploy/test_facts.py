"""Host facts: one producer, one shape, whichever way the host is reached.

The same machine is read three ways here — the local transport, the SSH
transport through a loopback sshd, and a listener over a real nats-server —
and every way gives the keys of :data:`FACT_KEYS`, with only its own envelope
added. The producer's commands are those a NixOS unit's PATH has.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from fixtures.nats import NatsFleet, make_inventory
from fixtures.sshd import Sshd, SshLab
from hlplay.deploy.contract import ExecContext
from hlplay.deploy.facts import (
    FACT_KEYS,
    collect_facts,
    failed_units,
    parse_df,
    parse_loadavg,
    parse_meminfo,
    parse_nproc,
)
from hlplay.deploy.noop import NoopExecutor
from hlplay.inventory.model import Host
from hlplay.proc import CommandResult, CommandRunner, run_argv
from hlplay.transports.base import Unreachable
from hlplay.transports.local import LocalTransport
from hlplay.transports.nats import NatsTransport
from hlplay.transports.ssh import SshTransport

#: What each way of reaching a host adds to :data:`FACT_KEYS`.
DIRECT_KEYS = FACT_KEYS | {"transport"}
LISTENER_KEYS = FACT_KEYS | {"busy", "protocol"}

#: The Debian packages of the NixOS unit's PATH that facts may use (coreutils,
#: findutils, gnugrep, util-linux, bash, systemd).
UNIT_PACKAGES = ("coreutils", "findutils", "grep", "util-linux", "bash", "systemd")


async def local(argv: Sequence[str], timeout: float | None) -> CommandResult:
    return await run_argv(argv, timeout=timeout)


def context(runner: CommandRunner, state_dir: Path) -> ExecContext:
    return ExecContext(
        hostname="web1", tier="test", roles=("web",), runner=runner, state_dir=str(state_dir)
    )


def units_dir(where: Path) -> Path:
    where.mkdir()
    (where / "web.service").write_text("active\n")
    (where / "db.service").write_text("failed\n")
    (where / "cron.timer").write_text("failed")
    (where / "padded.service").write_text("  failed \n\n")
    (where / "log.service").write_text("active\nfailed\n")  # says more than failed
    (where / "sub").mkdir()
    (where / "sub" / "deep.service").write_text("failed\n")  # not a unit of the dir
    return where


def same_machine(facts: dict[str, object], other: dict[str, object]) -> None:
    """Facts that do not move between two reads of one machine agree."""
    for key in ("cpus", "failed_units", "failed_units_source", "generation", "revision"):
        assert facts[key] == other[key], key
    assert facts["memory"]["total"] == other["memory"]["total"]  # type: ignore[index]
    paths = [d["path"] for d in facts["disk"]]  # type: ignore[attr-defined]
    assert paths == [d["path"] for d in other["disk"]]  # type: ignore[attr-defined]
    assert facts["disk"][0]["total"] == other["disk"][0]["total"]  # type: ignore[index]


# -- the producer ---------------------------------------------------------------


async def test_facts_are_read_with_commands_in_one_shape(tmp_path: Path) -> None:
    units = units_dir(tmp_path / "units")
    seen: list[list[str]] = []

    async def runner(argv: Sequence[str], timeout: float | None) -> CommandResult:
        seen.append(list(argv))
        assert timeout is not None  # no fact's command may hang the reply
        return await run_argv(argv, timeout=timeout)

    facts = await collect_facts(
        context(runner, tmp_path / "state"),
        NoopExecutor(),
        units_dir=str(units),
        disk_paths=["/", str(tmp_path), "/no/such/disk"],
    )
    assert set(facts) == FACT_KEYS
    assert facts["failed_units"] == ["cron.timer", "db.service", "padded.service"]
    assert facts["failed_units_source"] == "units-dir"
    assert facts["cpus"] == len(os.sched_getaffinity(0))
    assert len(facts["load"]) == 3 and facts["uptime"] > 0
    assert facts["memory"]["total"] >= facts["memory"]["available"] > 0
    root, tmp, missing = facts["disk"]
    st = os.statvfs("/")
    assert root["path"] == "/" and root["total"] == st.f_blocks * st.f_frsize
    assert tmp["path"] == str(tmp_path) and 0 <= tmp["percent"] <= 100
    assert missing["path"] == "/no/such/disk" and "No such file" in missing["error"]
    assert facts["generation"] == 1 and facts["system"]["generation"] == 1
    assert facts["executor"] == "noop"
    assert all(argv[0] in {"cat", "df", "find", "nproc"} for argv in seen), seen


async def test_failed_units_sources(tmp_path: Path) -> None:
    assert await failed_units(local, str(tmp_path / "missing")) == (None, "units-dir")
    (tmp_path / "empty").mkdir()
    assert await failed_units(local, str(tmp_path / "empty")) == ([], "units-dir")
    units, source = await failed_units(local, None)
    if Path("/run/systemd/system").is_dir():
        assert source == "systemd" and isinstance(units, list)
    else:
        assert (units, source) == (None, "unavailable")


async def test_a_runner_that_loses_the_host_fails_the_facts(tmp_path: Path) -> None:
    async def lost(argv: Sequence[str], timeout: float | None) -> CommandResult:
        raise Unreachable("connection lost")

    with pytest.raises(Unreachable):
        await collect_facts(context(lost, tmp_path), NoopExecutor())


async def test_an_executor_without_a_system_leaves_the_other_facts(tmp_path: Path) -> None:
    class Broken(NoopExecutor):
        async def current(self, ctx: ExecContext) -> dict[str, object]:
            raise RuntimeError("no profile")

    facts = await collect_facts(context(local, tmp_path), Broken())
    assert facts["system"] == {"error": "RuntimeError: no profile"}
    assert facts["generation"] is None and facts["memory"] is not None


def test_parsers_refuse_what_they_cannot_read() -> None:
    assert parse_loadavg("0.50 0.25 0.10 1/200 4242\n") == [0.5, 0.25, 0.1]
    assert parse_loadavg("") is None and parse_loadavg("x y z") is None
    assert parse_meminfo("MemTotal: 2048 kB\nMemAvailable: 1024 kB\n") == {
        "total": 2048 * 1024,
        "available": 1024 * 1024,
    }
    assert parse_meminfo("MemFree: 1 kB\n") is None
    assert parse_nproc("4\n") == 4 and parse_nproc("") is None and parse_nproc("0") is None
    assert parse_df("/x", 1, "", "df: /x: No such file or directory\n") == {
        "path": "/x",
        "error": "/x: No such file or directory",
    }


def package_executables(package: str) -> list[Path]:
    res = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True)
    if res.returncode != 0:
        return []
    paths = (Path(line.strip()) for line in res.stdout.splitlines())
    return [
        p
        for p in paths
        if p.parent.name in ("bin", "sbin") and p.is_file() and os.access(p, os.X_OK)
    ]


async def test_facts_need_only_the_units_path(tmp_path: Path) -> None:
    if subprocess.run(["dpkg", "--version"], capture_output=True).returncode != 0:
        pytest.skip("dpkg lists the packages' executables")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for package in UNIT_PACKAGES:
        for exe in package_executables(package):
            link = bin_dir / exe.name
            if not link.exists():
                link.symlink_to(exe)
    assert (bin_dir / "cat").exists() and (bin_dir / "find").exists()

    async def unit_path(argv: Sequence[str], timeout: float | None) -> CommandResult:
        return await run_argv(argv, timeout=timeout, env={"PATH": str(bin_dir)})

    units = units_dir(tmp_path / "units")
    facts = await collect_facts(
        context(unit_path, tmp_path / "state"), NoopExecutor(), units_dir=str(units)
    )
    every = await collect_facts(
        context(local, tmp_path / "state"), NoopExecutor(), units_dir=str(units)
    )
    same_machine(facts, every)
    assert None not in (facts["load"], facts["cpus"], facts["memory"], facts["uptime"])
    assert "error" not in facts["disk"][0]


# -- every way of reaching the host ---------------------------------------------


def direct_hosts(lab: SshLab, server: Sshd, units: Path, state: Path) -> tuple[Host, Host]:
    """The machine as an SSH host and as a local one, with the same settings."""
    ssh = lab.host(
        server,
        name="same",
        roles=["web"],
        vars={
            "hlplay_executor": "noop",
            "hlplay_units_dir": str(units),
            "hlplay_state_dir": str(state),
            "hlplay_disk_paths": ["/", str(units)],
        },
    )
    return ssh, dataclasses.replace(ssh, transport="local")


@pytest.mark.sshd
async def test_local_and_ssh_facts_of_one_machine_have_one_shape(
    ssh_lab_session: SshLab, sshd: Sshd, tmp_path: Path
) -> None:
    units = units_dir(tmp_path / "units")
    ssh_host, local_host = direct_hosts(ssh_lab_session, sshd, units, tmp_path / "state")
    local_facts = await LocalTransport(ssh_lab_session.inventory([local_host])).facts(
        local_host, timeout=10
    )
    transport = SshTransport(ssh_lab_session.inventory([ssh_host]))
    try:
        ssh_facts = await transport.facts(ssh_host, timeout=10)
    finally:
        await transport.close()
    assert set(local_facts) == set(ssh_facts) == DIRECT_KEYS
    assert (local_facts["transport"], ssh_facts["transport"]) == ("local", "ssh")
    same_machine(local_facts, ssh_facts)
    assert ssh_facts["failed_units"] == ["cron.timer", "db.service", "padded.service"]
    assert ssh_facts["cpus"] is not None and ssh_facts["system"]["generation"] == 1


@pytest.mark.sshd
async def test_ssh_facts_of_a_down_host_are_unreachable(ssh_lab_session: SshLab) -> None:
    host = ssh_lab_session.down_host("facts-gone")
    transport = SshTransport(ssh_lab_session.inventory([host]))
    try:
        with pytest.raises(Unreachable, match="connection refused"):
            await transport.facts(host, timeout=5)
    finally:
        await transport.close()


@pytest.mark.nats
async def test_a_listeners_facts_have_the_same_shape(
    fleet_factory: Callable[..., NatsFleet], tmp_path: Path
) -> None:
    units = units_dir(tmp_path / "units")
    fleet = fleet_factory(make_inventory([("solo", "test", ("db",))]))
    fleet.start_listener("solo", "--units-dir", str(units), "--disk-path", "/")
    transport = NatsTransport(fleet.inventory_as("deployer-test"))
    try:
        facts = await transport.facts(fleet.inventory.hosts["solo"])
    finally:
        await transport.close()
    assert set(facts) == LISTENER_KEYS
    assert set(facts) - {"busy", "protocol"} == DIRECT_KEYS - {"transport"}
    local_host = dataclasses.replace(
        fleet.inventory.hosts["solo"],
        transport="local",
        vars={"hlplay_executor": "noop", "hlplay_units_dir": str(units)},
    )
    inventory = dataclasses.replace(fleet.inventory, hosts={"solo": local_host}, cache={})
    local_facts = await LocalTransport(inventory).facts(local_host, timeout=10)
    for key in ("cpus", "failed_units", "failed_units_source"):
        assert facts[key] == local_facts[key], key
    assert facts["memory"]["total"] == local_facts["memory"]["total"]
    assert facts["busy"] is False and facts["executor"] == "noop"
