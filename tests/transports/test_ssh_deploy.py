"""Deploy actions and facts over SSH: a host without a listener deploys too."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from fixtures.nix import NixTestFlake, nix_system
from fixtures.sshd import Sshd, SshLab
from hlplay.transports.ssh import SshTransport
from realparts import NIX_CONFIG

pytestmark = pytest.mark.sshd

NOOP = {"hlplay_executor": "noop"}


async def test_noop_deploy_over_ssh_completes_while_a_down_host_is_unreachable(
    ssh_lab_session: SshLab, sshd_fleet: list[Sshd]
) -> None:
    hosts = [ssh_lab_session.host(s, vars=NOOP) for s in sshd_fleet]
    down = ssh_lab_session.down_host("ssh-gone")
    down = type(down)(**{**down.__dict__, "vars": NOOP})
    t = SshTransport(ssh_lab_session.inventory([*hosts, down]))
    seen: list[tuple[str, str]] = []

    async def progress(host: str, line: str) -> None:
        seen.append((host, line))

    try:
        outcomes = await t.deploy(
            [*hosts, down],
            {"action": "switch", "revision": "main", "options": {"lines": 2}},
            timeout=30,
            progress=progress,
        )
        assert outcomes["ssh-gone"].status == "unreachable"
        assert "connection refused" in outcomes["ssh-gone"].message
        for h in hosts:
            o = outcomes[h.name]
            assert (o.status, o.error) == ("completed", None), o
            assert o.data["generation"] == 2 and o.data["revision"] == "main"
            assert o.data["transport"] == "ssh" and o.data["executor"] == "noop"
            assert o.progress == [
                "noop: step 1/2 of switch main",
                "noop: step 2/2 of switch main",
            ]
            assert (h.name, "noop: step 2/2 of switch main") in seen
        # the same transport remembers the host's state, as a listener would
        again = await t.deploy(hosts[:1], {"action": "switch", "revision": "v2"}, timeout=30)
        assert again[hosts[0].name].data["generation"] == 3
    finally:
        await t.close()


async def test_invalid_request_is_rejected_without_touching_hosts(
    ssh_lab_session: SshLab, sshd: Sshd
) -> None:
    host = ssh_lab_session.host(sshd, vars=NOOP)
    t = SshTransport(ssh_lab_session.inventory([host]))
    try:
        bad_rev = await t.deploy([host], {"action": "switch", "revision": "--upgrade; rm -rf /"})
        assert bad_rev[host.name].status == "rejected"
        assert bad_rev[host.name].error == "invalid_revision"
        bad_action = await t.deploy([host], {"action": "reboot", "revision": "main"})
        assert bad_action[host.name].error == "invalid_action"
        assert t.connects == 0
    finally:
        await t.close()


async def test_failed_and_timed_out_deploys_are_failures(
    ssh_lab_session: SshLab, sshd: Sshd
) -> None:
    host = ssh_lab_session.host(sshd, vars=NOOP)
    t = SshTransport(ssh_lab_session.inventory([host]))
    try:
        failed = await t.deploy(
            [host], {"action": "switch", "revision": "main", "options": {"fail": True}}
        )
        assert (failed[host.name].status, failed[host.name].error) == ("failed", "exec_failed")
        slow = await t.deploy(
            [host],
            {"action": "switch", "revision": "main", "options": {"sleep": 30}},
            timeout=0.3,
        )
        assert (slow[host.name].status, slow[host.name].error) == ("failed", "timeout")
        assert "did not finish within 0.3s" in slow[host.name].message
    finally:
        await t.close()


def _processes_with(arg: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if arg.encode() in cmd:
                found.append(int(entry))
    return found


HANG_FLAKE = r"""
{
  outputs = { self }: {
    nixosConfigurations.ssh-hang.config.system.build.toplevel = derivation {
      name = "nixos-system-ssh-hang";
      system = "@SYSTEM@";
      builder = "/bin/sh";
      PATH = "/usr/bin:/bin";
      args = [ "-c" "sleep 41.7; mkdir $out" ];
    };
  };
}
"""


async def test_the_default_pipeline_builds_on_the_host_and_a_timeout_ends_it_there(
    ssh_lab_session: SshLab, tmp_path: Path
) -> None:
    # No hlplay_executor: the default pipeline (nix build, diff, activate) runs
    # on the host over SSH. A broken revision fails with Nix's own words; a
    # build that hangs times out and the host's timeout(1) ends it there.
    conf = tmp_path / "nix.conf"
    conf.write_text(NIX_CONFIG)
    flake = tmp_path / "hang-flake"
    flake.mkdir()
    (flake / "flake.nix").write_text(HANG_FLAKE.replace("@SYSTEM@", nix_system()))
    git = ["git", "-C", str(flake), "-c", "user.name=t", "-c", "user.email=t@localhost"]
    import subprocess

    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "flake.nix"], check=True)
    subprocess.run([*git, "commit", "-qm", "hang"], check=True)
    server = ssh_lab_session.start(
        "ssh-hang", netns=False, set_env={"NIX_USER_CONF_FILES": str(conf)}
    )
    host = ssh_lab_session.host(
        server,
        name="ssh-hang",
        vars={
            "hlplay_flake": f"git+file://{flake}",
            "hlplay_profile": str(tmp_path / "profiles" / "system"),
            "hlplay_state_dir": str(tmp_path / "state"),
        },
    )
    t = SshTransport(ssh_lab_session.inventory([host]))
    try:
        bad = await t.deploy([host], {"action": "switch", "revision": "no-such-branch"})
        assert bad[host.name].status == "failed", bad[host.name]
        assert bad[host.name].error == "build_failed"
        assert bad[host.name].data["executor"] == "nix"
        hung = await t.deploy([host], {"action": "switch", "revision": "HEAD"}, timeout=3)
        assert (hung[host.name].status, hung[host.name].error) == ("failed", "timeout")
        deadline = time.monotonic() + 5
        while _processes_with("sleep 41.7; mkdir $out") and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert _processes_with("sleep 41.7; mkdir $out") == []
    finally:
        await t.close()


async def test_facts_match_the_listeners_shape(
    ssh_lab_session: SshLab, sshd: Sshd, tmp_path: Path
) -> None:
    units = tmp_path / "units"
    units.mkdir()
    (units / "web.service").write_text("active\n")
    (units / "db.service").write_text("failed\n")
    (units / "cron.service").write_text("failed\n")
    host = ssh_lab_session.host(
        sshd,
        roles=["web"],
        vars={
            **NOOP,
            "hlplay_units_dir": str(units),
            "hlplay_disk_paths": ["/", "/no/such/disk"],
        },
    )
    t = SshTransport(ssh_lab_session.inventory([host]))
    try:
        facts = await t.facts(host)
        assert facts["hostname"] == host.name and facts["roles"] == ["web"]
        assert facts["failed_units"] == ["cron.service", "db.service"]
        assert facts["failed_units_source"] == "units-dir"
        assert len(facts["load"]) == 3
        assert facts["memory"]["total"] > facts["memory"]["available"] > 0
        assert facts["uptime"] > 0
        root, missing = facts["disk"]
        st = os.statvfs("/")
        assert root["path"] == "/" and root["total"] == st.f_blocks * st.f_frsize
        assert 0 <= root["percent"] <= 100
        assert missing["path"] == "/no/such/disk" and "No such file" in missing["error"]
        assert facts["generation"] == 1  # the noop executor's first generation
    finally:
        await t.close()


async def test_facts_without_units_dir_or_systemd_say_unavailable(
    ssh_lab_session: SshLab, sshd: Sshd
) -> None:
    host = ssh_lab_session.host(sshd, vars=NOOP)
    t = SshTransport(ssh_lab_session.inventory([host]))
    try:
        facts = await t.facts(host)
        if Path("/run/systemd/system").is_dir():
            assert facts["failed_units_source"] == "systemd"
            assert isinstance(facts["failed_units"], list)
        else:
            assert (facts["failed_units"], facts["failed_units_source"]) == (None, "unavailable")
    finally:
        await t.close()


async def test_executor_and_settings_come_from_group_vars(
    ssh_lab_session: SshLab, sshd: Sshd
) -> None:
    host = ssh_lab_session.host(sshd)  # no vars of its own
    inventory = ssh_lab_session.inventory([host])
    inventory.groups["all"].vars.update({"hlplay_executor": "noop"})
    t = SshTransport(inventory)
    try:
        out = await t.deploy([host], {"action": "boot", "revision": "main"})
        assert out[host.name].status == "completed"
        assert out[host.name].data["executor"] == "noop"
    finally:
        await t.close()


async def test_nix_executor_switches_a_host_over_ssh(
    ssh_lab_session: SshLab, nix_flake: NixTestFlake, tmp_path: Path
) -> None:
    # The host's Nix reads its settings from a file of its own (flakes on,
    # no substituters), as a host's nix.conf would say.
    conf = tmp_path / "nix.conf"
    conf.write_text(NIX_CONFIG)
    server = ssh_lab_session.start(
        "ssh-nix", netns=False, set_env={"NIX_USER_CONF_FILES": str(conf)}
    )
    nix_flake.set_host("web9", packages={"hello": "1.0"})
    rev = nix_flake.commit()
    host = ssh_lab_session.host(
        server, name="web9", vars={**nix_flake.host_vars("web9"), "hlplay_executor": "nix"}
    )
    t = SshTransport(ssh_lab_session.inventory([host]))
    try:
        out = (await t.deploy([host], {"action": "switch", "revision": rev}, timeout=120))["web9"]
        assert out.status == "completed", out
        assert nix_flake.current_generation("web9") == 1
        assert nix_flake.activations("web9") == [("switch", nix_flake.current_path("web9"))]
        facts = await t.facts(host)
        assert facts["generation"] == 1
    finally:
        await t.close()
