"""One run at a time on an SSH host: the lock kept on the host (hlplay.deploy.hostlock).

Real sshd, real Nix: two controllers (two transports, each its own
connection) deploy one host while its activation is held in the middle.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fixtures.nix import NixTestFlake
from fixtures.sshd import SshLab
from hlplay.transports.ssh import SshTransport
from realparts import NIX_CONFIG

pytestmark = [pytest.mark.sshd, pytest.mark.nix]


class Lab:
    def __init__(self, lab: SshLab, flake: NixTestFlake, tmp: Path, name: str) -> None:
        conf = tmp / "nix.conf"
        conf.write_text(NIX_CONFIG)
        self.lab, self.flake, self.name = lab, flake, name
        server = lab.start(f"ssh-{name}", netns=False, set_env={"NIX_USER_CONF_FILES": str(conf)})
        self.host = lab.host(
            server, name=name, vars={**flake.host_vars(name), "hlplay_executor": "nix"}
        )

    def transport(self) -> SshTransport:
        return SshTransport(self.lab.inventory([self.host]))

    def commit(self, version: str) -> str:
        self.flake.set_host(self.name, {"hello": version}, services=["web.service"])
        return self.flake.commit(f"hello {version}")

    @property
    def lock(self) -> Path:
        return Path(self.flake.state_dir(self.name)) / "system.lock"


@pytest.fixture
def make_lab(
    ssh_lab_session: SshLab, nix_flake: NixTestFlake, tmp_path: Path
) -> Callable[[str], Lab]:
    return lambda name: Lab(ssh_lab_session, nix_flake, tmp_path, name)


def switch(rev: str, rid: str, **options: Any) -> dict[str, Any]:
    return {"action": "switch", "revision": rev, "id": rid, "options": options}


async def wait_for(what: str, check: Callable[[], object], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_a_second_controller_is_refused_while_the_first_activates(
    make_lab: Callable[[str], Lab],
) -> None:
    lab = make_lab("lock-two")
    rev1 = lab.commit("1.0")
    rev2 = lab.commit("2.0")
    first, second = lab.transport(), lab.transport()
    lab.flake.hold(lab.name)
    run = asyncio.create_task(first.deploy([lab.host], switch(rev1, "first-run"), timeout=120))
    try:
        await wait_for(
            "the activation did not start",
            lambda: lab.flake.activations(lab.name) or run.done(),
        )
        assert not run.done(), run.result()
        holder = (lab.lock / "holder").read_text().splitlines()
        assert json.loads(holder[4])["request_id"] == "first-run"
        refused = (await second.deploy([lab.host], switch(rev2, "second-run"), timeout=120))[
            lab.name
        ]
        assert (refused.status, refused.error) == ("rejected", "already_running"), refused
        assert refused.message.startswith(f"a switch of {rev1} is already running on lock-two")
        assert f"by {socket.gethostname()}:{os.getpid()}, request first-run" in refused.message
        assert " s ago " in refused.message
        # nothing of the second run reached the host
        assert lab.flake.activations(lab.name) == [("switch", lab.flake.build(lab.name, rev1))]
        lab.flake.hold(lab.name, False)
        done = (await asyncio.wait_for(run, 60))[lab.name]
        assert done.status == "completed", done
        assert not lab.lock.exists()
        # released: the next run goes through
        again = (await second.deploy([lab.host], switch(rev2, "third-run"), timeout=120))[lab.name]
        assert again.status == "completed", again
        assert lab.flake.current_path(lab.name) == lab.flake.build(lab.name, rev2)
        assert not lab.lock.exists()
    finally:
        lab.flake.hold(lab.name, False)
        run.cancel()
        await first.close()
        await second.close()


async def test_the_lock_is_held_while_the_host_awaits_confirmation(
    make_lab: Callable[[str], Lab],
) -> None:
    lab = make_lab("lock-confirm")
    rev1, rev2 = lab.commit("1.0"), lab.commit("2.0")
    first, second = lab.transport(), lab.transport()
    try:
        out = (
            await first.deploy(
                [lab.host], switch(rev1, "canary-1", confirm_timeout=30), timeout=120
            )
        )[lab.name]
        assert out.status == "awaiting_confirm", out
        refused = (await second.deploy([lab.host], switch(rev2, "other"), timeout=120))[lab.name]
        assert refused.error == "already_running", refused
        assert "request canary-1" in refused.message and "awaits confirmation" in refused.message
        kept = (await first.confirm([lab.host], "canary-1"))[lab.name]
        assert kept.status == "completed", kept
        assert not lab.lock.exists()
        # a rejection releases it too
        out = (
            await second.deploy(
                [lab.host], switch(rev2, "canary-2", confirm_timeout=30), timeout=120
            )
        )[lab.name]
        assert out.status == "awaiting_confirm", out
        await second.reject([lab.host], "canary-2")
        assert not lab.lock.exists()
    finally:
        await first.close()
        await second.close()


def write_lock(lock: Path, *, started: int, ttl: int, until: int | None = None) -> None:
    lock.mkdir(parents=True)
    info = {
        "controller": "gone",
        "pid": 1,
        "request_id": "old",
        "action": "switch",
        "revision": "x",
    }
    (lock / "holder").write_text(f"tok-old\nold\n{started}\n{ttl}\n{json.dumps(info)}\n")
    if until is not None:
        (lock / "until").write_text(f"{until} old\n")


async def test_a_stale_lock_is_taken_over_and_a_fresh_one_is_not(
    make_lab: Callable[[str], Lab],
) -> None:
    lab = make_lab("lock-stale")
    rev = lab.commit("1.0")
    t = lab.transport()
    now = int(time.time())
    try:
        # fresh: its holder may still run
        write_lock(lab.lock, started=now - 5, ttl=600)
        out = (await t.deploy([lab.host], switch(rev, "r1"), timeout=120))[lab.name]
        assert out.error == "already_running", out
        assert "by gone:1, request old" in out.message and "counts as stale in" in out.message
        assert lab.flake.activations(lab.name) == []
        # past its time limit and the margin: the holder is gone
        (lab.lock / "holder").unlink()
        lab.lock.rmdir()
        write_lock(lab.lock, started=now - 1000, ttl=600)
        out = (await t.deploy([lab.host], switch(rev, "r2"), timeout=120))[lab.name]
        assert out.status == "completed", out
        assert any("took over a stale lock" in line and "gone:1" in line for line in out.progress)
        assert not lab.lock.exists()
        # a confirmation window long over frees it, whatever the time limit said
        write_lock(lab.lock, started=now - 200, ttl=86400, until=now - 100)
        out = (await t.deploy([lab.host], switch(rev, "r3"), timeout=120))[lab.name]
        assert out.status == "completed", out
        assert any("confirmation window is over" in line for line in out.progress), out.progress
        # a lock without its holder file: its taker is writing it, or died before
        lab.lock.mkdir()
        out = (await t.deploy([lab.host], switch(rev, "r4"), timeout=120))[lab.name]
        assert out.error == "already_running" and "a run is starting" in out.message, out
        os.utime(lab.lock, (now - 100, now - 100))
        out = (await t.deploy([lab.host], switch(rev, "r5"), timeout=120))[lab.name]
        assert out.status == "completed", out
        assert any("had no holder" in line for line in out.progress), out.progress
    finally:
        await t.close()


async def test_a_cancelled_run_releases_the_lock(make_lab: Callable[[str], Lab]) -> None:
    lab = make_lab("lock-cancel")
    rev1, rev2 = lab.commit("1.0"), lab.commit("2.0")
    t = lab.transport()
    lab.flake.hold(lab.name)
    run = asyncio.create_task(t.deploy([lab.host], switch(rev1, "cancelled"), timeout=120))
    try:
        await wait_for(
            "the activation did not start", lambda: lab.flake.activations(lab.name) or run.done()
        )
        assert lab.lock.exists()
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        assert not lab.lock.exists()
        lab.flake.hold(lab.name, False)
        # the activation itself runs to its end on the host; then the host is free
        await wait_for("the activation did not end", lambda: lab.flake.current_generation(lab.name))
        out = (await t.deploy([lab.host], switch(rev2, "after"), timeout=120))[lab.name]
        assert out.status == "completed", out
    finally:
        lab.flake.hold(lab.name, False)
        await t.close()
