"""``hlplay_build_on``: where a host's system is built and how its closure gets there.

Real Nix and real sshd. The SSH hosts here share the machine's /nix/store, so
a copy to them has nothing to carry; the copy is shown by its progress line
and a second login, and one test copies into a store of its own
(``?remote-store=``) where the paths must then be valid.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fixtures.nix import NixTestFlake
from fixtures.sshd import SshLab
from hlplay.errors import InventoryError
from hlplay.inventory.hostsettings import BuildOnError, host_settings, nix_sshopts, store_uri
from hlplay.inventory.loader import load_inventory
from hlplay.inventory.model import Host
from hlplay.transports.ssh import SshTransport
from realparts import NIX_CONFIG

pytestmark = [pytest.mark.sshd, pytest.mark.nix]


def _host_nix_env(tmp_path: Path) -> dict[str, str]:
    """What the host's Nix reads over SSH: flakes on, no substituters."""
    conf = tmp_path / "nix.conf"
    conf.write_text(NIX_CONFIG)
    return {"NIX_USER_CONF_FILES": str(conf)}


def _store_has(store: str, path: str, host: Host) -> bool:
    res = subprocess.run(
        ["nix", "path-info", "--store", store, path],
        capture_output=True,
        text=True,
        env={**os.environ, "NIX_SSHOPTS": nix_sshopts(host)},
        check=False,
    )
    return res.returncode == 0


async def test_build_on_controller_copies_the_closure_to_an_ssh_host_and_activates(
    ssh_lab_session: SshLab, nix_flake: NixTestFlake, tmp_path: Path
) -> None:
    server = ssh_lab_session.start("bo-ctl", netns=False, set_env=_host_nix_env(tmp_path))
    nix_flake.set_host("bo1", packages={"hello": "1.0"})
    rev = nix_flake.commit()
    host = ssh_lab_session.host(
        server,
        name="bo1",
        vars={**nix_flake.host_vars("bo1"), "hlplay_build_on": "controller"},
    )
    t = SshTransport(ssh_lab_session.inventory([host]))
    logins = server.accepted_logins()
    try:
        out = (await t.deploy([host], {"action": "switch", "revision": rev}, timeout=120))["bo1"]
        assert out.status == "completed", out
        path = out.data["path"]
        uri = f"ssh-ng://root@{server.address}"
        assert any(
            line.startswith("building ") and "on the controller" in line for line in out.progress
        )
        assert f"copying {path} to {uri}" in out.progress
        assert out.data["copied_to"] == uri
        # the transport's own connection, and nix copy's
        assert server.accepted_logins() >= logins + 2
        assert _store_has(uri, path, host)
        assert nix_flake.activations("bo1") == [("switch", path)]
    finally:
        await t.close()


async def test_copy_to_and_substitute_on_destination_reach_a_store_of_its_own(
    ssh_lab_session: SshLab, nix_flake: NixTestFlake, tmp_path: Path
) -> None:
    server = ssh_lab_session.start("bo-own", netns=False, set_env=_host_nix_env(tmp_path))
    nix_flake.set_host("bo2", packages={"hello": "2.0"})
    rev = nix_flake.commit()
    own = tmp_path / "own-store"
    uri = f"ssh-ng://root@{server.address}?remote-store={own}"
    host = ssh_lab_session.host(
        server,
        name="bo2",
        vars={
            **nix_flake.host_vars("bo2"),
            "hlplay_build_on": "controller",
            "hlplay_copy_to": uri,
            "hlplay_substitute_on_destination": True,
        },
    )
    t = SshTransport(ssh_lab_session.inventory([host]))
    try:
        out = (await t.deploy([host], {"action": "switch", "revision": rev}, timeout=120))["bo2"]
        assert out.status == "completed", out
        path = out.data["path"]
        assert f"copying {path} to {uri} (substitutes on the host)" in out.progress
        # a store of its own really received the closure
        assert (own / path.lstrip("/")).is_dir()
        assert _store_has(uri, path, host)
    finally:
        await t.close()


async def test_a_build_host_builds_and_the_closure_goes_on_to_the_target(
    ssh_lab_session: SshLab, nix_flake: NixTestFlake, tmp_path: Path
) -> None:
    env = _host_nix_env(tmp_path)
    builder_sshd = ssh_lab_session.start("bo-builder", netns=False, set_env=env)
    target_sshd = ssh_lab_session.start("bo-target", netns=False, set_env=env)
    nix_flake.set_host("bo3", packages={"hello": "3.0"})
    rev = nix_flake.commit()
    builder = ssh_lab_session.host(builder_sshd, name="bo-builder")
    target = ssh_lab_session.host(
        target_sshd,
        name="bo3",
        vars={**nix_flake.host_vars("bo3"), "hlplay_build_on": "bo-builder"},
    )
    t = SshTransport(ssh_lab_session.inventory([target, builder]))
    built_before = builder_sshd.accepted_logins()
    try:
        out = (await t.deploy([target], {"action": "switch", "revision": rev}, timeout=120))["bo3"]
        assert out.status == "completed", out
        path = out.data["path"]
        build_store = store_uri(builder)
        assert any(line.endswith(f"on {build_store}") for line in out.progress), out.progress
        assert f"built {path}; copying it from {build_store}" in out.progress
        assert f"copying {path} to {store_uri(target)}" in out.progress
        # the build, then the copy back: both through the build host's sshd
        assert builder_sshd.accepted_logins() >= built_before + 2
        assert out.data["build_host_store"] == build_store
        assert nix_flake.activations("bo3") == [("switch", path)]
    finally:
        await t.close()


async def test_a_controller_checkout_is_refused_before_any_build_on_another_machine(
    ssh_lab_session: SshLab, nix_flake: NixTestFlake, tmp_path: Path
) -> None:
    # A host in a network namespace has an address of its own: not the controller.
    server = ssh_lab_session.start("bo-far", set_env=_host_nix_env(tmp_path))
    if server.netns is None:
        pytest.skip("needs network namespaces for a host that is not the controller")
    nix_flake.set_host("bo4", packages={"hello": "4.0"})
    rev = nix_flake.commit()
    host = ssh_lab_session.host(server, name="bo4", vars=nix_flake.host_vars("bo4"))
    t = SshTransport(ssh_lab_session.inventory([host]))
    try:
        out = (await t.deploy([host], {"action": "switch", "revision": rev}, timeout=60))["bo4"]
        assert (out.status, out.error) == ("failed", "invalid_request"), out
        assert out.message == (
            f"the flake {nix_flake.root} is a checkout on the controller; host bo4 cannot "
            "read it: set hlplay_build_on: controller or give a flake URL the host can fetch"
        )
        assert not any(line.startswith("building") for line in out.progress)
        assert nix_flake.generations("bo4") == []
        assert nix_flake.activations("bo4") == []
    finally:
        await t.close()


def _inventory(tmp_path: Path, web1_vars: dict[str, Any], **hosts: Any) -> Path:
    import yaml

    doc = {
        "hosts": {
            "web1": {"tier": "test", "transport": "ssh", "vars": web1_vars},
            "build1": {"tier": "test", "transport": "ssh", "address": "10.0.0.9"},
            "nats1": {"tier": "test"},
            **hosts,
        }
    }
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("sideways", "'sideways', no host of the inventory"),
        ("web1", "'web1', itself"),
        ("nats1", "build host 'nats1' must be an SSH host (its transport is nats)"),
        (3, "must be host, controller or the name of a build host, got 3"),
    ],
)
def test_an_invalid_build_on_is_an_inventory_error_at_its_line(
    tmp_path: Path, value: Any, words: str
) -> None:
    inv = load_inventory(_inventory(tmp_path, {"hlplay_build_on": value}))
    with pytest.raises(InventoryError) as err:
        host_settings(inv, inv.hosts["web1"])
    assert "'hlplay_build_on' of host 'web1'" in err.value.message
    assert words in err.value.message
    assert isinstance(err.value, ValueError)  # a failed host, not a failed run
    loc = err.value.location
    assert loc is not None and loc.file.endswith("inventory.yml") and loc.line > 0


def test_build_on_controller_is_for_ssh_hosts_and_a_typo_gets_a_suggestion(
    tmp_path: Path,
) -> None:
    inv = load_inventory(
        _inventory(tmp_path, {"hlplay_build_on": "controler"}, nats2={"tier": "test"})
    )
    with pytest.raises(BuildOnError, match="did you mean 'controller'"):
        host_settings(inv, inv.hosts["web1"])
    inv.hosts["nats1"].vars["hlplay_build_on"] = "controller"
    with pytest.raises(BuildOnError, match="a NATS host's listener builds for itself"):
        host_settings(inv, inv.hosts["nats1"])


def test_context_options_say_where_to_build_and_where_to_copy(tmp_path: Path) -> None:
    inv = load_inventory(
        _inventory(
            tmp_path,
            {"hlplay_build_on": "build1", "ansible_user": "deploy", "ansible_port": 2222},
            local1={
                "tier": "test",
                "transport": "local",
                "vars": {"hlplay_build_on": "controller"},
            },
        )
    )
    opts = host_settings(inv, inv.hosts["web1"]).context_options()
    assert opts["build_on"] == "controller"
    assert opts["copy_to"] == "ssh-ng://deploy@web1"
    assert opts["nix_sshopts"].startswith("-p 2222 ")
    assert opts["build_store"].endswith("@10.0.0.9")
    assert opts["build_sshopts"].startswith("-p 22 ")
    assert opts["host_is_controller"] is False
    # a local host is the controller: "controller" builds right there, no copy
    local = host_settings(inv, inv.hosts["local1"]).context_options()
    assert "build_on" not in local and local["host_is_controller"] is True
    # a build host's closure comes back to the controller's store: the local host's
    inv.hosts["local1"].vars["hlplay_build_on"] = "build1"
    local = host_settings(inv, inv.hosts["local1"]).context_options()
    assert (local["build_on"], local["copy_to"]) == ("controller", "auto")
    assert "nix_sshopts" not in local
