"""The magic-rollback watchdog in a transient systemd unit, against real Nix.

On a host running systemd the watchdog must live outside the listener's
cgroup (the unit's ``KillMode`` would take it down with the listener), so it
starts as ``systemd-run … --unit=hlplay-watchdog-<random> sh -c <script>``
and systemd-run returns at once. The runner here reports systemd present
(``test -d /run/systemd/system``) and runs ``systemd-run`` argv through a
stand-in: with ``--pipe`` it waits for the command (an activation), without
it the command starts detached in a session of its own with only the
environment the unit gets (its ``-E`` variables) and systemd-run returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hlplay.deploy.nix import NixExecutor, local_runner
from hlplay.nix import system
from hlplay.protocol.messages import DeployRequest
from hlplay.transports.base import CommandResult

ex = NixExecutor()


def req(action: str, revision: str, rid: str = "r1", **options: Any) -> DeployRequest:
    return DeployRequest(action=action, revision=revision, id=rid, options=options)


class SystemdHost:
    """A runner for a host that (says it) runs systemd; records every argv."""

    def __init__(self, *, fail_units: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.units: dict[str, subprocess.Popen[bytes]] = {}
        self.fail_units = fail_units

    def runs(self) -> list[list[str]]:
        return [c for c in self.calls if c and c[0] == "systemd-run"]

    def watchdog_runs(self) -> list[list[str]]:
        return [c for c in self.runs() if "--pipe" not in c]

    async def __call__(self, argv: Any, timeout: float | None) -> CommandResult:
        argv = list(argv)
        self.calls.append(argv)
        if argv == ["test", "-d", "/run/systemd/system"]:
            return CommandResult(argv=argv, rc=0, stdout="", stderr="")
        if not argv or argv[0] != "systemd-run":
            return await local_runner(argv, timeout)
        env: dict[str, str] = {}
        opts: list[str] = []
        rest = argv[1:]
        while rest and rest[0].startswith("-"):
            opt = rest.pop(0)
            opts.append(opt)
            if opt == "-E":
                value = rest.pop(0)
                name, eq, val = value.partition("=")
                if eq:
                    env[name] = val
                elif name in os.environ:
                    env[name] = os.environ[name]
        if "--pipe" in opts:  # an activation: the caller waits for it
            merged = [f"{k}={v}" for k, v in env.items()]
            return await local_runner(
                ["env", "-u", "NIXOS_INSTALL_BOOTLOADER", *merged, *rest], timeout
            )
        if self.fail_units:
            return CommandResult(
                argv=argv, rc=1, stdout="", stderr="Failed to start transient service unit"
            )
        unit = next(o.split("=", 1)[1] for o in opts if o.startswith("--unit="))
        # A unit's environment is the manager's plus -E: nothing of the caller's else.
        self.units[unit] = subprocess.Popen(
            rest,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        return CommandResult(argv=argv, rc=0, stdout="", stderr="")

    def stop(self) -> None:
        for proc in self.units.values():
            if proc.poll() is None:
                proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)


@pytest.fixture
def host() -> Iterator[SystemdHost]:
    h = SystemdHost()
    yield h
    h.stop()


@pytest.fixture
def web1(nix_flake):  # type: ignore[no-untyped-def]
    """web1 at revisions 1 and 2; its switch-to-configuration logs HLPLAY_TEST_VAR."""
    from fixtures.nix import SWITCH_SH

    log_env = 'echo "$action ${HLPLAY_TEST_VAR-unset}" >> "$STATE/env.log"\n'
    (nix_flake.root / "switch-to-configuration.sh").write_text(
        SWITCH_SH.replace('mkdir -p "$STATE/units"\n', 'mkdir -p "$STATE/units"\n' + log_env, 1)
    )
    nix_flake.set_host("web1", {"hello": "1.0"}, services=["web"])
    rev1 = nix_flake.commit("v1")
    nix_flake.set_host("web1", {"hello": "1.1"}, services=["web"])
    rev2 = nix_flake.commit("v2")
    return nix_flake, rev1, rev2


def expected_argv(unit: str, canary: str, profile: str, timeout: int, *rest: str) -> list[str]:
    return [
        "systemd-run", "--collect", "--no-ask-password", "--quiet", f"--unit={unit}",
        "-E", "PATH", "-E", "LOCALE_ARCHIVE",
        "sh", "-c", system.WATCHDOG_SCRIPT, "hlplay-watchdog",
        canary, profile, str(timeout), *rest,
    ]  # fmt: skip


def unit_of(argv: list[str]) -> str:
    return next(a.split("=", 1)[1] for a in argv if a.startswith("--unit="))


async def wait_for(predicate: Any, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


async def test_an_unconfirmed_canary_rolls_back_from_its_unit(web1, host: SystemdHost) -> None:  # type: ignore[no-untyped-def]
    flake, rev1, rev2 = web1
    ctx = flake.context("web1", runner=host)
    first = await ex.execute(req("switch", rev1), ctx)
    assert first.ok, first.message
    res = await ex.execute(req("switch", rev2, confirm_timeout=1), ctx)
    assert res.ok and res.data["awaiting_confirm"] is True, res.message
    assert res.data["systemd_run"] is True
    [run] = host.watchdog_runs()
    unit = unit_of(run)
    assert unit.startswith("hlplay-watchdog-") and len(unit) == len("hlplay-watchdog-") + 16
    canary = res.data["canary"]
    # armed before the activation, which may take its 600 s before the window opens
    assert run == expected_argv(unit, canary, flake.profile("web1"), 1, "1", "2", "switch", "600")
    assert "--pipe" not in run and "--wait" not in run
    assert Path(canary).read_text() == "1 2 switch\n"
    # the unit, not the listener, rolls the host back
    await wait_for(
        lambda: flake.current_generation("web1") == 1 and len(flake.activations("web1")) == 3,
        "the watchdog unit did not roll back",
    )
    assert flake.activations("web1")[-1] == ("switch", first.data["path"])
    assert flake.generations("web1") == [1]  # the unconfirmed generation is gone
    assert host.units[unit].wait(10) == 0
    late = await ex.confirm("r1", ctx)
    assert not late.ok and late.error is not None and late.error.value == "confirm_timeout"
    assert late.data["rolled_back"] is True


async def test_a_confirmed_canary_keeps_the_system_and_the_unit_stands_down(
    web1,  # type: ignore[no-untyped-def]
    host: SystemdHost,
) -> None:
    flake, rev1, rev2 = web1
    ctx = flake.context("web1", runner=host)
    assert (await ex.execute(req("switch", rev1), ctx)).ok
    res = await ex.execute(req("switch", rev2, confirm_timeout=2), ctx)
    assert res.ok, res.message
    confirmed = await ex.confirm("r1", ctx)
    assert confirmed.ok and confirmed.data["generation"] == 2
    [run] = host.watchdog_runs()
    assert host.units[unit_of(run)].wait(10) == 0  # it saw the confirmation and ended
    await asyncio.sleep(2.5)
    assert flake.current_generation("web1") == 2
    assert flake.activations("web1")[-1] == ("switch", res.data["path"])


async def test_the_watchdog_unit_starts_before_the_activation(web1, host: SystemdHost) -> None:  # type: ignore[no-untyped-def]
    flake, rev1, rev2 = web1
    ctx = flake.context("web1", runner=host)
    assert (await ex.execute(req("switch", rev1), ctx)).ok
    first = len(host.calls)
    res = await ex.execute(req("switch", rev2, confirm_timeout=5), ctx)
    assert res.ok, res.message
    starts = [i for i, c in enumerate(host.calls) if i >= first and c and c[0] == "systemd-run"]
    watchdog = next(i for i in starts if unit_of(host.calls[i]).startswith("hlplay-watchdog-"))
    activation = next(
        i for i in starts if unit_of(host.calls[i]).startswith("hlplay-switch-to-configuration")
    )
    # a host cut off during the activation is already guarded
    assert watchdog < activation
    assert (await ex.confirm("r1", ctx)).ok


async def test_the_activation_environment_reaches_the_watchdogs_rollback(
    web1,  # type: ignore[no-untyped-def]
    host: SystemdHost,
    tmp_path: Path,
) -> None:
    flake, rev1, rev2 = web1
    ctx = flake.context("web1")
    first = await ex.execute(req("switch", rev1), ctx)
    second = await ex.execute(req("switch", rev2), ctx)
    assert first.ok and second.ok
    gens = await system.list_generations(local_runner, flake.profile("web1"))
    canary = str(tmp_path / "state" / "canary-env")
    unit = await system.arm_watchdog(
        host,
        canary=canary,
        profile=flake.profile("web1"),
        timeout=1,
        old=gens[0],
        new=gens[1],
        action="test",
        env={"HLPLAY_TEST_VAR": "x y"},
        unit="hlplay-watchdog-fixed",
    )
    assert unit == "hlplay-watchdog-fixed"
    assert host.calls[0][0] == "mkdir" and host.calls[1] == ["test", "-d", "/run/systemd/system"]
    [run] = host.watchdog_runs()
    assert run == [
        *expected_argv(unit, canary, flake.profile("web1"), 1, "1", "2", "test", "0")[:9],
        "-E", "HLPLAY_TEST_VAR=x y",
        *expected_argv(unit, canary, flake.profile("web1"), 1, "1", "2", "test", "0")[9:],
    ]  # fmt: skip
    assert host.units[unit].wait(15) == 0
    assert Path(canary + ".expired").read_text().splitlines()[-1] == "rollback: ok generation 1"
    env_log = (flake.state / "web1" / "env.log").read_text().splitlines()
    assert env_log == ["switch unset", "switch unset", "test x y"]
    # test re-activates what the profile holds and leaves the profile alone
    assert flake.generations("web1") == [1, 2]
    assert flake.activations("web1")[-1] == ("test", second.data["path"])


async def test_a_unit_that_does_not_start_leaves_no_canary(web1, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    flake, rev1, _ = web1
    assert (await ex.execute(req("switch", rev1), flake.context("web1"))).ok
    gens = await system.list_generations(local_runner, flake.profile("web1"))
    failing = SystemdHost(fail_units=True)
    canary = tmp_path / "canary-x"
    with pytest.raises(system.NixOpError, match="hlplay-watchdog-"):
        await system.arm_watchdog(
            failing,
            canary=str(canary),
            profile=flake.profile("web1"),
            timeout=5,
            old=gens[0],
            new=None,
            action="switch",
        )
    assert not canary.exists()
    assert (await system.confirm_canary(local_runner, str(canary))).confirmed is False


async def test_without_systemd_the_watchdog_is_a_setsid_process(web1) -> None:  # type: ignore[no-untyped-def]
    flake, rev1, rev2 = web1
    calls: list[list[str]] = []

    async def runner(argv: Any, timeout: float | None) -> CommandResult:
        calls.append(list(argv))
        return await local_runner(argv, timeout)

    ctx = flake.context("web1", runner=runner)
    assert (await ex.execute(req("switch", rev1), ctx)).ok
    res = await ex.execute(req("switch", rev2, confirm_timeout=1), ctx)
    assert res.ok and res.data["systemd_run"] is False
    assert not [c for c in calls if c and c[0] == "systemd-run"]
    [launch] = [c for c in calls if c[:4] == ["sh", "-c", system.LAUNCH_SCRIPT, "hlplay-launch"]]
    assert launch[4:] == [
        system.WATCHDOG_SCRIPT,
        res.data["canary"],
        flake.profile("web1"),
        "1",
        "1",
        "2",
        "switch",
        "600",
    ]
    await wait_for(
        lambda: flake.current_generation("web1") == 1, "the setsid watchdog did not roll back"
    )
