"""Detached activation: a controller or SSH session that dies mid-activation
leaves the activation to finish (or roll back) on the host.

Real sshd, real Nix. The lab hosts run no systemd, so the activation goes
through the setsid wrapper (``hlplay.nix.system.DETACH_SCRIPT``). Each test
holds the activation (``nix_flake.hold``) until past its ``activate_timeout``:
by then the host's timeout(1) has killed the command's process group, which a
plain child would not have survived.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fixtures.nix import SWITCH_SH, NixTestFlake
from fixtures.sshd import Sshd, SshLab
from hlplay.nix import system
from hlplay.proc import run_argv
from hlplay.transports.ssh import SshTransport
from realparts import NIX_CONFIG

pytestmark = [pytest.mark.sshd, pytest.mark.nix]

ACTIVATE_TIMEOUT = 2
CONFIRM_TIMEOUT = 5

# A controller of its own, so that the test can SIGKILL it mid-activation.
CONTROLLER = r"""
import asyncio, json, sys
from hlplay.inventory.model import Group, Host, Inventory, Settings, SshSettings
from hlplay.transports.ssh import SshTransport

spec = json.loads(sys.argv[1])
host = Host(
    name=spec["name"], tier="test", address=spec["address"], transport="ssh",
    ssh=SshSettings(**spec["ssh"]), vars=spec["vars"],
)
inventory = Inventory(
    hosts={host.name: host},
    groups={"all": Group("all", hosts=[host.name], implicit=True)},
    settings=Settings(),
    group_chain={host.name: ["all"]},
)

async def main():
    t = SshTransport(inventory)
    out = await t.deploy([host], spec["request"], timeout=120)
    print(json.dumps({k: v.status for k, v in out.items()}), flush=True)

asyncio.run(main())
"""


class Lab:
    """One SSH host with a real Nix toy system; its temporary directory is ours."""

    def __init__(self, lab: SshLab, flake: NixTestFlake, tmp: Path, name: str) -> None:
        conf = tmp / "nix.conf"
        conf.write_text(NIX_CONFIG)
        self.tmpdir = tmp / "host-tmp"  # where a detached activation's output goes
        self.tmpdir.mkdir()
        self.lab, self.flake, self.name = lab, flake, name
        self.server = lab.start(
            f"ssh-{name}",
            netns=False,
            set_env={"NIX_USER_CONF_FILES": str(conf), "TMPDIR": str(self.tmpdir)},
        )
        self.host = lab.host(
            self.server, name=name, vars={**flake.host_vars(name), "hlplay_executor": "nix"}
        )

    def transport(self) -> SshTransport:
        return SshTransport(self.lab.inventory([self.host]))

    def commit(self, version: str, services: list[str], **kw: Any) -> str:
        self.flake.set_host(self.name, {"hello": version}, services=services, **kw)
        return self.flake.commit(f"hello {version}")

    def units(self) -> dict[str, str]:
        d = self.flake.units_dir(self.name)
        return {p.name: p.read_text().strip() for p in d.iterdir()} if d.is_dir() else {}

    def leftover_output(self) -> list[str]:
        return [
            (d / "out").read_text()
            for d in sorted(self.tmpdir.glob("hlplay-activation.*"))
            if (d / "out").exists()
        ]


@pytest.fixture
def make_lab(
    ssh_lab_session: SshLab, nix_flake: NixTestFlake, tmp_path: Path
) -> Callable[[str], Lab]:
    return lambda name: Lab(ssh_lab_session, nix_flake, tmp_path, name)


def request(revision: str) -> dict[str, Any]:
    return {
        "action": "switch",
        "revision": revision,
        "options": {"confirm_timeout": CONFIRM_TIMEOUT, "activate_timeout": ACTIVATE_TIMEOUT},
    }


async def wait_for(what: str, check: Callable[[], object], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


def processes() -> dict[int, tuple[int, str, list[str]]]:
    """pid -> (parent pid, comm, argv), for every process we can read."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")[:-1]
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        out[int(entry)] = (ppid, comm, [a.decode(errors="replace") for a in argv])
    return out


def activation_processes(toplevel: str) -> list[int]:
    """The activation itself (``/bin/sh <toplevel>/bin/switch-to-configuration …``)."""
    script = f"{toplevel}/bin/switch-to-configuration"
    return [pid for pid, (_, _, argv) in processes().items() if argv[1:2] == [script]]


def kill_sessions(server: Sshd) -> int:
    """SIGKILL the sshd processes serving connections; the listener stays up."""
    procs = processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    killed = 0
    todo = list(children.get(server.proc.pid, []))
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        if procs[pid][1] == "sshd":
            os.kill(pid, signal.SIGKILL)
            killed += 1
    return killed


async def first_generation(lab: Lab) -> tuple[str, str]:
    rev1 = lab.commit("1.0", ["web.service"])
    t = lab.transport()
    try:
        out = (await t.deploy([lab.host], {"action": "switch", "revision": rev1}, timeout=120))[
            lab.name
        ]
    finally:
        await t.close()
    assert out.status == "completed", out
    p1 = lab.flake.current_path(lab.name)
    assert p1 is not None and lab.units() == {"web.service": "active"}
    return rev1, p1


async def outlives_its_caller_then_rolls_back(lab: Lab, rev1: str, p1: str, p2: str) -> None:
    """What the host does once its caller is gone mid-activation, and what the next run sees."""
    flake, name = lab.flake, lab.name
    # past the host's timeout(1), TERM and all: a plain child would be dead now
    await asyncio.sleep(ACTIVATE_TIMEOUT + 1.0)
    assert activation_processes(p2), "the activation died with its caller"
    assert lab.units() == {"web.service": "active"}  # still held in the middle
    flake.hold(name, False)
    # the new system's activation ran to its end: its units, its last words
    await wait_for("the activation did not finish", lambda: "api.service" in lab.units())
    assert lab.units() == {"web.service": "active", "api.service": "active"}
    assert any(f"activated {p2}" in out for out in lab.leftover_output())
    # nobody confirmed: the watchdog armed before the activation rolls back
    await wait_for(
        "the watchdog did not roll back",
        lambda: flake.current_generation(name) == 1 and flake.generations(name) == [1],
    )
    await wait_for("the rollback did not activate", lambda: len(flake.activations(name)) == 3)
    assert flake.activations(name) == [("switch", p1), ("switch", p2), ("switch", p1)]
    await wait_for("the old units are not back", lambda: lab.units() == {"web.service": "active"})
    # the next run reports the host's true state
    t = lab.transport()
    try:
        facts = await t.facts(lab.host)
        assert (facts["generation"], facts["revision"]) == (1, rev1)
        gens = await t.generations(lab.host)
        assert [(g["number"], g["path"], g["revision"]) for g in gens] == [(1, p1, rev1)]
    finally:
        await t.close()


async def test_a_controller_killed_mid_activation_leaves_the_host_to_finish_and_roll_back(
    make_lab: Callable[[str], Lab],
) -> None:
    lab = make_lab("detach-kill")
    rev1, p1 = await first_generation(lab)
    rev2 = lab.commit("2.0", ["web.service", "api.service"])
    p2 = lab.flake.build(lab.name, rev2)
    lab.flake.hold(lab.name)
    spec = {
        "name": lab.name,
        "address": lab.host.address,
        "ssh": dataclasses.asdict(lab.host.ssh),
        "vars": lab.host.vars,
        "request": request(rev2),
    }
    controller = subprocess.Popen(
        [sys.executable, "-c", CONTROLLER, json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        await wait_for(
            "the activation did not start",
            lambda: len(lab.flake.activations(lab.name)) == 2 or controller.poll() is not None,
            timeout=90,
        )
        assert controller.poll() is None, controller.communicate()
        assert lab.flake.activations(lab.name)[-1] == ("switch", p2)
        controller.kill()
        controller.wait(5)
        await outlives_its_caller_then_rolls_back(lab, rev1, p1, p2)
    finally:
        if controller.poll() is None:
            controller.kill()
            controller.wait(5)
        lab.flake.hold(lab.name, False)


async def test_an_ssh_session_cut_mid_activation_leaves_the_host_to_finish_and_roll_back(
    make_lab: Callable[[str], Lab],
) -> None:
    lab = make_lab("detach-cut")
    rev1, p1 = await first_generation(lab)
    rev2 = lab.commit("2.0", ["web.service", "api.service"])
    p2 = lab.flake.build(lab.name, rev2)
    lab.flake.hold(lab.name)
    t = lab.transport()
    run = asyncio.create_task(t.deploy([lab.host], request(rev2), timeout=120))
    try:
        await wait_for(
            "the activation did not start",
            lambda: len(lab.flake.activations(lab.name)) == 2 or run.done(),
            timeout=90,
        )
        assert not run.done(), run.result()
        assert kill_sessions(lab.server) > 0
        out = (await asyncio.wait_for(run, 30))[lab.name]
        assert out.status != "completed", out  # the controller lost the host
        await outlives_its_caller_then_rolls_back(lab, rev1, p1, p2)
    finally:
        run.cancel()
        await t.close()
        lab.flake.hold(lab.name, False)


# -- the exit-code contract through the detached path ----------------------------

# switch-to-configuration-ng's statuses: 4 when units failed (it names them), any
# other status a failed activation.
CONTRACT_SH = SWITCH_SH.replace(
    'echo "activated $SYSTEM"',
    'case " $SERVICES " in *" rc-100 "*) echo "exiting 100" >&2; exit 100 ;; esac\n'
    'if [ -n "$FAILED_SERVICES" ]; then\n'
    '  echo "warning: the following units failed: $(echo $FAILED_SERVICES | sed "s/ /, /g")" >&2\n'
    "  exit 4\n"
    "fi\n"
    'echo "activated $SYSTEM"',
)


async def test_exit_codes_and_failed_units_reach_the_controller_through_the_detached_path(
    make_lab: Callable[[str], Lab],
) -> None:
    lab = make_lab("detach-rc")
    (lab.flake.root / "switch-to-configuration.sh").write_text(CONTRACT_SH)
    await first_generation(lab)
    t = lab.transport()
    try:
        rev2 = lab.commit("2.0", ["web.service", "a.service"], failed_services=["a.service"])
        out = (await t.deploy([lab.host], {"action": "switch", "revision": rev2}))[lab.name]
        assert (out.status, out.error) == ("failed", "activation_failed"), out
        assert out.data["systemd_run"] is False and "activation_unit" not in out.data
        assert out.data["activation_rc"] == 4
        assert out.data["units_failed"] is True and out.data["failed_units"] == ["a.service"]
        assert "rolled back to generation 1" in out.message
        rev3 = lab.commit("3.0", ["web.service", "rc-100"])
        out = (await t.deploy([lab.host], {"action": "switch", "revision": rev3}))[lab.name]
        assert out.data["activation_rc"] == 100 and "exiting 100" in out.message, out
        assert lab.flake.current_generation(lab.name) == 1
    finally:
        await t.close()
    # delivered output is not left behind
    assert lab.leftover_output() == []


# -- the wrapper itself, on this machine ---------------------------------------------


def fake_toplevel(tmp: Path, body: str) -> str:
    top = tmp / "toplevel"
    (top / "bin").mkdir(parents=True)
    stc = top / "bin" / "switch-to-configuration"
    stc.write_text("#!/bin/sh\n" + body)
    stc.chmod(0o755)
    return str(top)


# The session ids (field 6 of /proc/<pid>/stat) of the activation and its parent.
SESSION_SH = """\
sid() { read -r stat < "/proc/$1/stat"; set -- ${stat##*) }; echo "$4"; }
echo "pid $$ session $(sid $$) parent $PPID parent-session $(sid $PPID) tmp ${TMPDIR:-unset}"
echo "to stderr" >&2
exit 3
"""


async def test_the_activation_runs_in_a_session_of_its_own_and_its_status_comes_back(
    tmp_path: Path,
) -> None:
    top = fake_toplevel(tmp_path, SESSION_SH)
    argv = system.activation_argv(top, "switch", {"TMPDIR": "/nowhere"})
    assert argv[:2] == ["sh", "-c"]
    assert argv[-4:] == ["env", "TMPDIR=/nowhere", f"{top}/bin/switch-to-configuration", "switch"]
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    res = await run_argv(argv, env={"TMPDIR": str(tmp)}, timeout=30)
    assert res.rc == 3 and res.stderr == "to stderr\n", res
    f = res.stdout.split()
    info = dict(zip(f[::2], f[1::2], strict=True))
    # a session of its own, beside the wrapper's (run_argv made that one)
    assert info["session"] == info["pid"]
    assert info["parent-session"] == info["parent"] != info["pid"]
    assert info["tmp"] == "/nowhere"  # the activation environment reaches it
    assert list(tmp.iterdir()) == []  # delivered output is not left behind


async def test_without_setsid_the_activation_runs_attached(tmp_path: Path) -> None:
    bin_dir = tmp_path / "path"
    bin_dir.mkdir()
    for tool in ("sh", "mktemp", "cat", "rm"):
        found = subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, text=True)
        (bin_dir / tool).symlink_to(found.stdout.strip())
    top = fake_toplevel(tmp_path, 'echo "ran $1"; exit 4\n')
    res = await run_argv(
        system.activation_argv(top, "test"), env={"PATH": str(bin_dir)}, timeout=30
    )
    assert (res.rc, res.stdout) == (4, "ran test\n"), res
