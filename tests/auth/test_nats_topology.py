"""Scaling on NATS itself: a deploy crosses a two-server cluster and a leaf node.

The listeners sit on one server, the controller on another; the request and
every reply travel over NATS routes or a leaf-node connection, with the same
generated authorization on every server.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from fixtures.nats import NatsFleet, fleet_inventory
from hlplay.auth.keys import new_named
from hlplay.auth.natsconfig import render_config
from hlplay.auth.topology import Topology, render_topology, topology_from_options
from hlplay.errors import OptionsError
from hlplay.inventory.model import NatsSettings, Settings
from hlplay.natsserver import NatsServer, free_port
from hlplay.transports.nats import NatsTransport
from realparts import nats_server_bin, require

pytestmark = pytest.mark.nats


def _keys(work: Path) -> Path:
    keys = work / "keys"
    for name in [*fleet_inventory().hosts, "admin", "deployer-test"]:
        new_named(name, keys)
    return keys


async def _deploy_through(fleet: NatsFleet, controller_url: str) -> dict[str, str]:
    nats = NatsSettings(
        urls=(controller_url,), credentials=str(fleet.seed_file("admin")), timeout=20.0
    )
    inv = replace(fleet.inventory, settings=Settings(nats=nats), cache={})
    transport = NatsTransport(inv)
    try:
        hosts = [h for h in inv.hosts.values() if h.tier == "test"]
        # routes and leaf connections come up a moment after the servers
        deadline = time.monotonic() + 10
        while True:
            out = await transport.deploy(hosts, {"action": "noop", "revision": "main"}, timeout=3)
            statuses = {h: o.status for h, o in out.items()}
            if all(s == "completed" for s in statuses.values()) or time.monotonic() > deadline:
                return statuses
    finally:
        await transport.close()


def test_rendered_topology_blocks() -> None:
    text = render_topology(
        Topology(
            cluster_name="fleet",
            cluster_listen="0.0.0.0:6222",
            routes=["nats-route://nats-b:6222"],
            leaf_remotes=["nats-leaf://hub:7422"],
            jetstream_dir="/var/lib/nats",
        )
    )
    assert 'name: "fleet"' in text and 'routes: ["nats-route://nats-b:6222"]' in text
    assert 'remotes: [{ url: "nats-leaf://hub:7422" }]' in text
    assert 'store_dir: "/var/lib/nats"' in text
    with pytest.raises(OptionsError, match="not a NATS URL"):
        render_topology(Topology(leaf_remotes=["hub; rm -rf /"]))
    with pytest.raises(OptionsError, match="needs both"):
        render_topology(Topology(routes=["nats-route://b:6222"]))


async def test_deploy_crosses_a_two_server_cluster(tmp_path: Path) -> None:
    require(nats_server_bin(), "nats-server")
    keys = _keys(tmp_path)
    auth = render_config(fleet_inventory(), keys_dir=keys)
    ra, rb = free_port(), free_port()
    a = NatsServer(
        auth
        + render_topology(Topology("fleet", f"127.0.0.1:{ra}", [f"nats-route://127.0.0.1:{rb}"])),
        work_dir=tmp_path / "a",
    )
    b = NatsServer(
        auth
        + render_topology(Topology("fleet", f"127.0.0.1:{rb}", [f"nats-route://127.0.0.1:{ra}"])),
        work_dir=tmp_path / "b",
    )
    with a, b:
        fleet = NatsFleet(server=a, inventory=fleet_inventory(), keys_dir=keys, work=tmp_path)
        try:
            fleet.start_listeners(["web1", "web2", "db1"])
            statuses = await _deploy_through(fleet, b.url)
        finally:
            fleet.stop_all()
    assert statuses == {"web1": "completed", "web2": "completed", "db1": "completed"}


async def test_deploy_reaches_listeners_behind_a_leaf_node(tmp_path: Path) -> None:
    require(nats_server_bin(), "nats-server")
    keys = _keys(tmp_path)
    auth = render_config(fleet_inventory(), keys_dir=keys)
    leaf_port = free_port()
    leaf_public = new_named("site-leaf", keys)
    hub = NatsServer(
        auth
        + render_topology(Topology(leaf_listen=f"127.0.0.1:{leaf_port}", leaf_nkey=leaf_public)),
        work_dir=tmp_path / "hub",
    )
    site_topology = topology_from_options(
        None,
        None,
        [],
        None,
        [f"nats-leaf://127.0.0.1:{leaf_port}"],
        None,
        leaf_seed_file=str(keys / "site-leaf.seed"),
    )
    site = NatsServer(auth + render_topology(site_topology), work_dir=tmp_path / "site")
    with hub, site:
        # the listeners connect to their site's server; the controller to the hub
        fleet = NatsFleet(server=site, inventory=fleet_inventory(), keys_dir=keys, work=tmp_path)
        try:
            fleet.start_listeners(["web1", "web2", "db1"])
            statuses = await _deploy_through(fleet, hub.url)
        finally:
            fleet.stop_all()
    assert statuses == {"web1": "completed", "web2": "completed", "db1": "completed"}
