"""``hlplay listen`` with only the PATH its NixOS unit gets.

``systemd.services.hlplay-listener.path`` in nixos/module.nix decides which
programs the listener finds: nothing else is on a NixOS unit's PATH. This
test builds a bin directory holding exactly the executables those packages
provide on this (Debian) machine — nix, systemd, bash (also ``sh``, as NixOS'
bash provides it), util-linux, coreutils, findutils, grep, git, openssh —
starts a real listener with that PATH and the module's defaults (the nix
pipeline), and deploys through a real nats-server: diff, a confirmed switch
behind a health check, a failing switch that rolls back, and rollback.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.nats import ListenerProc, NatsFleet, build_fleet, make_inventory
from fixtures.nix import NixTestFlake
from hlplay.transports.nats import NatsTransport
from realparts import NIX_CONFIG

pytestmark = pytest.mark.nats

#: The module's ``path`` list, as Debian packages: (module entry, Debian packages).
MODULE_PATH = (
    ("config.nix.package", ("nix-bin",)),
    ("config.systemd.package", ("systemd",)),
    ("pkgs.bash", ("bash",)),
    ("pkgs.util-linux", ("util-linux",)),
    ("pkgs.coreutils", ("coreutils",)),
    ("pkgs.findutils", ("findutils",)),
    ("pkgs.gnugrep", ("grep",)),
    ("pkgs.git", ("git",)),
    ("pkgs.openssh", ("openssh-client",)),
)
MODULE = Path(__file__).resolve().parents[2] / "nixos" / "module.nix"


def module_path_entries() -> list[str]:
    text = MODULE.read_text()
    m = re.search(r"^\s*path = \[(.*?)\];", text, re.MULTILINE | re.DOTALL)
    assert m, "no path list in nixos/module.nix"
    return [
        line.split("#")[0].strip() for line in m.group(1).splitlines() if line.split("#")[0].strip()
    ]


def package_executables(package: str) -> list[Path]:
    """The executables ``dpkg -L`` lists in bin/ and sbin/ directories (none if absent)."""
    res = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True)
    if res.returncode != 0:
        return []
    out = []
    for line in res.stdout.splitlines():
        p = Path(line.strip())
        if p.parent.name in ("bin", "sbin") and p.is_file() and os.access(p, os.X_OK):
            out.append(p)
    return out


def module_bin_dir(where: Path) -> tuple[Path, list[str]]:
    """A directory of symlinks to what the module's packages provide; the packages found."""
    where.mkdir()
    found = []
    for _, packages in MODULE_PATH:
        for package in packages:
            exes = package_executables(package)
            if exes:
                found.append(package)
            for exe in exes:
                link = where / exe.name
                if not link.exists():
                    link.symlink_to(exe)
    bash = where / "bash"
    if bash.exists():  # NixOS' bash package provides sh
        (where / "sh").unlink(missing_ok=True)
        (where / "sh").symlink_to(bash.resolve())
    return where, found


@pytest.fixture
def minimal_listener(
    nix_flake: NixTestFlake, tmp_path: Path
) -> Iterator[tuple[NatsFleet, ListenerProc, NixTestFlake, Path]]:
    if subprocess.run(["which", "dpkg"], capture_output=True).returncode != 0:
        pytest.skip("dpkg not available: this test maps the module's packages with dpkg -L")
    bindir, found = module_bin_dir(tmp_path / "module-bin")
    for needed in ("nix-bin", "bash", "coreutils"):
        if needed not in found:
            pytest.skip(f"{needed} is not installed")
    work = tmp_path / "fleet"
    work.mkdir()
    fleet = build_fleet(make_inventory([("web1", "test", ())]), work)
    nix_conf = tmp_path / "nix.conf"
    nix_conf.write_text(NIX_CONFIG)
    home = tmp_path / "home"
    home.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PATH", "NIX_CONFIG", "NIX_USER_CONF_FILES", "HOME", "VIRTUAL_ENV")
    }
    env.update(
        PATH=str(bindir),
        HOME=str(home),  # the module's HOME is the listener's state directory
        NIX_USER_CONF_FILES=str(nix_conf),
        PYTHONUNBUFFERED="1",
    )
    argv = [
        sys.executable, "-m", "hlplay.cli.main", "listen",
        "--hostname", "web1", "--tier", "test",
        "--nats-url", fleet.url,
        "--nkey-file", str(fleet.seed_file("web1")),
        "--trusted-keys", str(fleet.trust_file("test")),
        "--flake", str(nix_flake.root),
        "--profile", nix_flake.profile("web1"),
        "--state-dir", nix_flake.state_dir("web1"),
        "--units-dir", str(nix_flake.units_dir("web1")),
        "--progress-interval", "0.1",
        "--log-level", "info",
    ]  # fmt: skip
    log = work / "listener-web1.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env
        )
    lp = ListenerProc("web1", proc, log)
    fleet.listeners["web1"] = lp
    try:
        lp.wait_ready()
        yield fleet, lp, nix_flake, bindir
    finally:
        fleet.close()


def test_the_module_path_is_what_this_test_maps() -> None:
    assert module_path_entries() == [entry for entry, _ in MODULE_PATH]


async def test_a_full_deploy_with_only_the_modules_path(
    minimal_listener: tuple[NatsFleet, ListenerProc, NixTestFlake, Path],
) -> None:
    fleet, listener, flake, bindir = minimal_listener
    assert not (bindir / "python3").exists() and not (bindir / "curl").exists()
    assert (bindir / "setsid").exists() and (bindir / "nix-env").exists()
    environ = Path(f"/proc/{listener.proc.pid}/environ").read_bytes().split(b"\0")
    assert f"PATH={bindir}".encode() in environ  # and nothing else on it
    flake.set_host("web1", {"hello": "1.0"}, services=["web.service"])
    rev1 = flake.commit("v1")
    flake.set_host("web1", {"hello": "1.1", "curl": "8.0"}, services=["web.service"])
    rev2 = flake.commit("v2")
    flake.set_host("web1", {"hello": "1.2"}, services=["web.service"], fail_activation=True)
    rev3 = flake.commit("v3")
    flake.set_host("web1", {"hello": "1.3"}, services=["web.service"])
    rev4 = flake.commit("v4")

    transport = NatsTransport(fleet.inventory_as("admin"))
    web1 = fleet.inventory.hosts["web1"]
    try:
        first = await transport.deploy([web1], {"action": "switch", "revision": rev1}, timeout=120)
        assert first["web1"].status == "completed", (first["web1"].message, listener.text())
        assert first["web1"].data["generation"] == 1

        diff = await transport.deploy([web1], {"action": "diff", "revision": rev2}, timeout=120)
        out = diff["web1"]
        assert out.status == "completed", (out.message, listener.text())
        assert out.data["changed"] is True
        assert "1.0 -> 1.1" in out.data["diff_text"] and "curl" in out.data["diff_text"]
        assert flake.generations("web1") == [1]

        confirmations: list[dict[str, Any]] = []

        async def confirm(outcome: Any) -> None:
            confirmations.append(await transport.confirm([web1], "minimal-confirm"))

        switched = await transport.deploy(
            [web1],
            {
                "action": "switch",
                "revision": rev2,
                "id": "minimal-confirm",
                "options": {
                    "confirm_timeout": 5,
                    "health": [{"unit_active": "web.service", "retries": 0}],
                },
            },
            timeout=120,
            awaiting=confirm,
        )
        out = switched["web1"]
        # activated and waiting; the confirmation sent at once kept it
        assert out.status == "awaiting_confirm", (out.message, listener.text())
        assert [c["web1"].status for c in confirmations] == ["completed"]
        assert confirmations[0]["web1"].data["confirmed"] is True
        assert out.data["generation"] == 2
        assert [h["ok"] for h in out.data["health"]] == [True]
        assert flake.current_generation("web1") == 2

        # a new system whose activation fails: the host returns to generation 2
        broken = await transport.deploy([web1], {"action": "switch", "revision": rev3}, timeout=120)
        out = broken["web1"]
        assert out.status == "failed" and out.error == "activation_failed", out.message
        assert "rolled back to generation 2" in out.message
        assert out.data["rollback"]["ok"] is True and out.data["rollback"]["generation"] == 2
        assert flake.current_generation("web1") == 2 and flake.generations("web1") == [1, 2]
        assert flake.activations("web1")[-1] == ("switch", flake.current_path("web1"))

        # every activation fails (the marker): the profile still goes back,
        # and the user is told the re-activation failed too
        flake.fail_marker("web1")
        failed = await transport.deploy([web1], {"action": "switch", "revision": rev4}, timeout=120)
        flake.fail_marker("web1", on=False)
        out = failed["web1"]
        assert out.status == "failed" and out.error == "activation_failed", out.message
        assert "rollback incomplete" in out.message, out.message
        assert out.data["rollback"]["ok"] is False and out.data["rollback"]["generation"] == 2
        assert flake.current_generation("web1") == 2 and flake.generations("web1") == [1, 2]

        back = await transport.deploy([web1], {"action": "rollback", "revision": rev2}, timeout=120)
        out = back["web1"]
        assert out.status == "completed", (out.message, listener.text())
        assert out.message == "rolled back to generation 1"
        assert (out.data["old_generation"], out.data["generation"]) == (2, 1)
        assert out.data["rollback"]["ok"] is True and out.data["revision"] == rev1
        assert flake.generations("web1") == [1, 2]  # an explicit rollback keeps what it leaves
        assert flake.current_generation("web1") == 1
    finally:
        await transport.close()
    assert "not found" not in listener.text() and "No such file" not in listener.text()
    assert listener.proc.poll() is None
