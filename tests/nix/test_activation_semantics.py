"""NixOS activation semantics against real Nix: exit codes, systemd-run, the running system.

The test systems' ``switch-to-configuration`` follows switch-to-configuration-ng's
contract: 0 when all went well; 4 when the new system is active but units
failed (it names them: "warning: the following units failed: …"); any other
status is a failed activation. Like the real one it points
``<state>/current-system`` at the system it activated (switch, test), which
the tests hand to the executor as ``current_system``.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from hlplay.deploy.nix import NixExecutor, local_runner
from hlplay.protocol.messages import DeployRequest
from hlplay.transports.base import CommandResult

ex = NixExecutor()

SWITCH_SH = r"""
action="${1:-}"
case "$action" in
  switch|boot|test|dry-activate) ;;
  *) echo "usage: switch-to-configuration switch|boot|test|dry-activate" >&2; exit 1 ;;
esac
mkdir -p "$STATE/units"
echo "$action $SYSTEM" >> "$STATE/activations.log"
echo "$action ${NIXOS_INSTALL_BOOTLOADER-unset} ${HLPLAY_TEST_VAR-unset}" >> "$STATE/env.log"
case "$action" in dry-activate|boot) exit 0 ;; esac
ln -sfn "$SYSTEM" "$STATE/current-system"
for f in "$STATE"/units/*; do
  [ -e "$f" ] || continue
  case " $SERVICES " in *" $(basename "$f") "*) ;; *) rm -f "$f" ;; esac
done
failed=""
for s in $SERVICES; do
  case " $FAILED_SERVICES " in
    *" $s "*) echo failed > "$STATE/units/$s"; failed="${failed:+$failed, }$s" ;;
    *) echo active > "$STATE/units/$s" ;;
  esac
done
case " $SERVICES " in *" rc-100 "*)
  echo "switch-to-configuration: exiting 100" >&2; exit 100 ;;
esac
if [ -n "$FAIL_ACTIVATION" ] || [ -e "$STATE/fail" ]; then
  echo "activation of $SYSTEM failed" >&2
  exit 1
fi
if [ -n "$failed" ]; then
  echo "warning: the following units failed: $failed" >&2
  exit 4
fi
echo "activated $SYSTEM"
"""


def req(action: str, revision: str, **options: Any) -> DeployRequest:
    return DeployRequest(action=action, revision=revision, id="r1", options=options)


class Host:
    def __init__(self, flake: Any, name: str = "web1") -> None:
        self.flake = flake
        self.name = name
        (flake.root / "switch-to-configuration.sh").write_text(SWITCH_SH)
        self.current = flake.state / name / "current-system"

    def commit(self, version: str, **kw: Any) -> str:
        kw.setdefault("services", ["web.service"])
        self.flake.set_host(self.name, {"hello": version}, **kw)
        return str(self.flake.commit(f"hello {version}"))

    def context(self, **kw: Any) -> Any:
        options = {"current_system": str(self.current), **kw.pop("options", {})}
        return self.flake.context(self.name, options=options, **kw)

    def env_log(self) -> list[str]:
        log = self.flake.state / self.name / "env.log"
        return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def host(nix_flake) -> Host:  # type: ignore[no-untyped-def]
    return Host(nix_flake)


# -- exit codes ----------------------------------------------------------------------


async def test_exit_0_is_a_plain_success(host: Host) -> None:
    rev = host.commit("1.0")
    res = await ex.execute(req("switch", rev), host.context())
    assert res.ok, res.message
    assert res.error is None and res.data["activation_rc"] == 0
    assert "units_failed" not in res.data and "reboot_required" not in res.data
    assert res.data["systemd_run"] is False  # this host has no /run/systemd/system
    assert os.path.realpath(host.current) == res.data["path"]


async def test_exit_4_without_health_checks_fails_the_host_and_rolls_back(host: Host) -> None:
    rev1 = host.commit("1.0")
    good = await ex.execute(req("switch", rev1), host.context())
    assert good.ok, good.message
    rev2 = host.commit(
        "2.0", services=["web.service", "db.service"], failed_services=["db.service"]
    )
    res = await ex.execute(req("switch", rev2), host.context())
    assert not res.ok
    assert res.error is not None and res.error.value == "activation_failed"
    assert res.data["activation_rc"] == 4
    assert res.data["units_failed"] is True and res.data["failed_units"] == ["db.service"]
    assert "units failed: db.service" in res.message
    assert "no health check vouches" in res.message and "rolled back to generation 1" in res.message
    assert host.flake.current_generation("web1") == 1
    assert os.path.realpath(host.current) == good.data["path"]


async def test_exit_4_with_passing_health_checks_keeps_the_new_system(host: Host) -> None:
    rev1 = host.commit("1.0")
    assert (await ex.execute(req("switch", rev1), host.context())).ok
    rev2 = host.commit(
        "2.0", services=["web.service", "db.service"], failed_services=["db.service"]
    )
    checks = [{"unit_active": "web.service", "retries": 0}]
    res = await ex.execute(req("switch", rev2, health=checks), host.context())
    assert res.ok, res.message
    assert res.error is None
    assert res.data["activation_rc"] == 4 and res.data["units_failed"] is True
    assert res.data["failed_units"] == ["db.service"]
    assert "some units failed: db.service" in res.message
    assert [h["ok"] for h in res.data["health"]] == [True]
    assert res.data["generation"] == 2 and host.flake.current_generation("web1") == 2


async def test_exit_4_with_a_failing_health_check_rolls_back(host: Host) -> None:
    rev1 = host.commit("1.0")
    good = await ex.execute(req("switch", rev1), host.context())
    rev2 = host.commit(
        "2.0", services=["web.service", "db.service"], failed_services=["db.service"]
    )
    checks = [{"unit_active": "db.service", "retries": 0}]
    res = await ex.execute(req("switch", rev2, health=checks), host.context())
    assert not res.ok and res.error is not None and res.error.value == "health_failed"
    assert res.data["units_failed"] is True and res.data["activation_rc"] == 4
    assert "rolled back to generation 1" in res.message
    assert host.flake.current_generation("web1") == 1
    assert os.path.realpath(host.current) == good.data["path"]


async def test_exit_100_is_a_failed_activation_not_a_reboot_request(host: Host) -> None:
    rev1 = host.commit("1.0")
    assert (await ex.execute(req("switch", rev1), host.context())).ok
    rev2 = host.commit("2.0", services=["web.service", "rc-100"])
    res = await ex.execute(req("switch", rev2), host.context())
    assert not res.ok and res.error is not None and res.error.value == "activation_failed"
    assert res.data["activation_rc"] == 100 and "exit 100" in res.message
    assert "reboot_required" not in res.data and "units_failed" not in res.data
    assert res.data["rollback"]["ok"] and host.flake.current_generation("web1") == 1


async def test_exit_1_rolls_back_as_before(host: Host) -> None:
    rev1 = host.commit("1.0")
    assert (await ex.execute(req("switch", rev1), host.context())).ok
    rev2 = host.commit("2.0", fail_activation=True)
    res = await ex.execute(req("switch", rev2), host.context())
    assert not res.ok and res.error is not None and res.error.value == "activation_failed"
    assert res.data["activation_rc"] == 1 and "units_failed" not in res.data
    assert "rolled back to generation 1" in res.message
    assert host.flake.current_generation("web1") == 1


# -- the running system, not only the profile -------------------------------------------


async def test_a_profile_ahead_of_the_running_system_is_activated(host: Host) -> None:
    rev1 = host.commit("1.0")
    first = await ex.execute(req("switch", rev1), host.context())
    rev2 = host.commit("2.0")
    booted = await ex.execute(req("boot", rev2), host.context())
    assert booted.ok and booted.data["generation"] == 2
    # `boot` set the profile; the host still runs rev1.
    assert os.path.realpath(host.current) == first.data["path"]
    res = await ex.execute(req("switch", rev2), host.context())
    assert res.ok, res.message
    assert res.data["changed"] is True and res.data["running_path"] == first.data["path"]
    assert res.data["generation"] == 2 and host.flake.generations("web1") == [1, 2]
    assert os.path.realpath(host.current) == booted.data["path"]
    # Now it runs what it was asked to: nothing more to do.
    again = await ex.execute(req("switch", rev2), host.context())
    assert again.ok and again.data["changed"] is False
    assert [a for a, _ in host.flake.activations("web1")] == ["switch", "boot", "switch"]


async def test_a_failure_on_a_host_whose_profile_was_ahead_returns_to_what_ran(
    host: Host,
) -> None:
    rev1 = host.commit("1.0")
    first = await ex.execute(req("switch", rev1), host.context())
    rev2 = host.commit("2.0", fail_activation=True)
    assert (await ex.execute(req("boot", rev2), host.context())).ok
    res = await ex.execute(req("switch", rev2), host.context())
    assert not res.ok and res.error is not None and res.error.value == "activation_failed"
    assert "rolled back to generation 1" in res.message
    assert host.flake.current_generation("web1") == 1
    assert os.path.realpath(host.current) == first.data["path"]


async def test_without_a_running_system_the_profile_decides(host: Host) -> None:
    rev1 = host.commit("1.0")
    ctx = host.context(options={"current_system": str(host.current) + "-absent"})
    assert (await ex.execute(req("switch", rev1), ctx)).ok
    again = await ex.execute(req("switch", rev1), ctx)
    assert again.ok and again.data["changed"] is False and "running_path" not in again.data


# -- systemd-run ---------------------------------------------------------------------------


def systemd_host_runner(calls: list[list[str]]) -> Any:
    """The local runner on a host that (says it) runs systemd.

    ``test -d /run/systemd/system`` succeeds, and ``systemd-run … CMD`` runs
    CMD with the variables given as ``-E K=V`` (the unit's environment).
    """

    async def runner(argv: Any, timeout: float | None) -> CommandResult:
        argv = list(argv)
        calls.append(argv)
        if argv == ["test", "-d", "/run/systemd/system"]:
            return CommandResult(argv=argv, rc=0, stdout="", stderr="")
        if argv and argv[0] == "systemd-run":
            env: list[str] = []
            rest = argv[1:]
            while rest and rest[0].startswith("-"):
                opt = rest.pop(0)
                if opt == "-E":
                    value = rest.pop(0)
                    if "=" in value:
                        env.append(value)
                    elif value in os.environ:
                        env.append(f"{value}={os.environ[value]}")
            return await local_runner(
                ["env", "-u", "NIXOS_INSTALL_BOOTLOADER", *env, *rest], timeout
            )
        return await local_runner(argv, timeout)

    return runner


async def test_with_systemd_the_activation_runs_in_a_transient_unit(host: Host) -> None:
    calls: list[list[str]] = []
    rev1 = host.commit("1.0")
    ctx = host.context(
        runner=systemd_host_runner(calls), options={"activation_env": {"HLPLAY_TEST_VAR": "x y"}}
    )
    res = await ex.execute(req("switch", rev1), ctx)
    assert res.ok, res.message
    assert res.data["systemd_run"] is True
    unit = res.data["activation_unit"]
    assert unit.startswith("hlplay-switch-to-configuration-")
    runs = [c for c in calls if c and c[0] == "systemd-run"]
    assert runs == [
        [
            "systemd-run",
            "-E", "LOCALE_ARCHIVE",
            "-E", "NIXOS_INSTALL_BOOTLOADER",
            "-E", "HLPLAY_TEST_VAR=x y",
            "--collect", "--no-ask-password", "--pipe", "--quiet", "--service-type=exec",
            f"--unit={unit}",
            f"{res.data['path']}/bin/switch-to-configuration", "switch",
        ]
    ]  # fmt: skip
    assert host.env_log() == ["switch unset x y"]


async def test_boot_does_not_ask_for_a_bootloader_install(host: Host) -> None:
    calls: list[list[str]] = []
    rev1 = host.commit("1.0")
    assert (await ex.execute(req("switch", rev1), host.context())).ok
    rev2 = host.commit("2.0")
    res = await ex.execute(req("boot", rev2), host.context(runner=systemd_host_runner(calls)))
    assert res.ok, res.message
    assert host.env_log()[-1] == "boot unset unset"
    forced = host.commit("3.0")
    ctx = host.context(
        runner=systemd_host_runner(calls),
        options={"activation_env": {"NIXOS_INSTALL_BOOTLOADER": "1"}},
    )
    assert (await ex.execute(req("boot", forced), ctx)).ok
    assert host.env_log()[-1] == "boot 1 unset"
    last = [c for c in calls if c and c[0] == "systemd-run"][-1]
    assert last.count("NIXOS_INSTALL_BOOTLOADER") == 0 and "NIXOS_INSTALL_BOOTLOADER=1" in last


async def test_with_systemd_a_rollback_runs_in_a_unit_of_its_own(host: Host) -> None:
    calls: list[list[str]] = []
    rev1 = host.commit("1.0")
    assert (await ex.execute(req("switch", rev1), host.context())).ok
    rev2 = host.commit("2.0", fail_activation=True)
    res = await ex.execute(req("switch", rev2), host.context(runner=systemd_host_runner(calls)))
    assert not res.ok and res.data["rollback"]["ok"]
    units = [a for c in calls if c and c[0] == "systemd-run" for a in c if a.startswith("--unit=")]
    assert len(units) == 2 and len(set(units)) == 2


def build_toplevel(files: str) -> str:
    """A real store path holding ``files`` (space-separated names), built without nixpkgs."""
    import json
    import subprocess

    from fixtures.nix import nix_system

    expr = (
        f'derivation {{ name = "nixos-system-x"; system = "{nix_system()}"; '
        'builder = "/bin/sh"; PATH = "/usr/bin:/bin"; '
        f'args = [ "-c" "mkdir $out; cd $out; for f in {files}; '
        f'do echo x > $f; done" ]; }}'
    )
    out = subprocess.run(
        ["nix", "--extra-experimental-features", "nix-command", "build", "--impure",
         "--json", "--no-link", "--expr", expr],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return str(json.loads(out)[0]["outputs"]["out"])


async def test_a_nixos_looking_toplevel_without_nixos_version_is_refused(nix_flake) -> None:  # type: ignore[no-untyped-def]
    from hlplay.nix import system

    with pytest.raises(system.NixOpError, match="no nixos-version"):
        await system.check_nixos_toplevel(local_runner, build_toplevel("init"))
    await system.check_nixos_toplevel(local_runner, build_toplevel("init nixos-version"))
    await system.check_nixos_toplevel(local_runner, build_toplevel("packages"))  # not NixOS
