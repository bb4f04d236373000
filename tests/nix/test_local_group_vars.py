"""A local host's deploy settings come from its groups too, as every variable does."""

from __future__ import annotations

import asyncio

import yaml

from fixtures.nix import NixTestFlake
from hlplay.inventory.loader import load_inventory
from hlplay.transports.local import LocalTransport


def test_group_vars_place_a_local_hosts_profile_and_state(nix_flake: NixTestFlake) -> None:
    nix_flake.set_host("web1", {"hello": "1.0"})
    rev = nix_flake.commit()
    settings = nix_flake.host_vars("web1")
    path = nix_flake.base / "inventory.yml"
    # Every hlplay_* setting on the group, none on the host.
    doc = {
        "hlplay": {"nix": {"flake": str(nix_flake.root)}},
        "groups": {"webs": {"hosts": ["web1"], "vars": settings}},
        "hosts": {"web1": {"tier": "test", "transport": "local"}},
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    inv = load_inventory([str(path)])
    assert "hlplay_profile" not in inv.hosts["web1"].vars
    out = asyncio.run(
        LocalTransport(inv).deploy(
            [inv.hosts["web1"]], {"action": "switch", "revision": rev, "id": "g1"}
        )
    )["web1"]
    assert out.status == "completed", out
    assert nix_flake.current_generation("web1") == 1  # the group's profile was switched
    facts = asyncio.run(LocalTransport(inv).facts(inv.hosts["web1"]))
    assert facts["generation"] == 1 and facts["system"]["profile"] == settings["hlplay_profile"]
