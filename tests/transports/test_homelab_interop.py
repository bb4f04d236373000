"""Interop with homelab-deploy, both ways, on a real nats-server.

A homelab-deploy listener is played by a plain NATS client that answers as
homelab-deploy does: it reads ``reply_to`` from the request body, knows no
``id`` and runs whatever reaches it.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from fixtures.nats import NatsFleet, make_inventory
from hlplay.auth.keys import generate, read_seed
from hlplay.auth.natsconfig import render_config
from hlplay.inventory.model import Inventory, NatsSettings, Settings
from hlplay.natsserver import NatsServer
from hlplay.protocol import signing
from hlplay.transports.nats import NatsTransport
from realparts import nats_server_bin, require

pytestmark = pytest.mark.nats

RESPONSES_RE = re.compile(r"^deploy\.responses\.[0-9a-f]{32}(\.\d+)?$")


async def connect(url: str, seed: str | None = None) -> Any:
    from nats.aio.client import Client

    nc = Client()
    kwargs: dict[str, Any] = {"nkeys_seed_str": seed} if seed else {}
    await nc.connect(
        servers=[url],
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.1,  # type: ignore[arg-type]
        **kwargs,
    )
    return nc


@dataclass
class FakePeer:
    """Listeners answering as homelab-deploy does (or as told, per host)."""

    nc: Any
    #: host -> what to do with a request: "complete", "hold" (accepted and
    #: started, no final status) or "late" (the final status after ``late_delay``)
    behaviour: dict[str, str]
    late_delay: float = 2.0
    seen: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    #: subject -> the hosts it reaches
    routes: dict[str, list[str]] = field(default_factory=dict)
    echo_id: bool = False
    #: host -> the NKey seed its answers are signed with (hlplay listeners sign)
    seeds: dict[str, str] = field(default_factory=dict)

    async def serve(self, routes: dict[str, list[str]]) -> None:
        self.routes = routes
        for subject in routes:
            await self.nc.subscribe(subject, cb=self.on_msg)
        await self.nc.flush()

    async def answer(self, reply: str, host: str, status: str, doc: dict[str, Any]) -> None:
        body: dict[str, Any] = {"hostname": host, "status": status, "error": None, "message": ""}
        if self.echo_id and "id" in doc:
            body["id"] = doc["id"]
        if host in self.seeds:
            body = signing.sign(body, self.seeds[host])
        await self.nc.publish(reply, json.dumps(body).encode())

    async def on_msg(self, msg: Any) -> None:
        doc = json.loads(msg.data)
        self.seen.append((msg.subject, doc))
        reply = doc["reply_to"]
        for host in self.routes[msg.subject]:
            how = self.behaviour.get(host, "complete")
            await self.answer(reply, host, "accepted", doc)
            await self.answer(reply, host, "started", doc)
            if how == "complete":
                await self.answer(reply, host, "completed", doc)
            elif how == "late":

                async def later(host: str = host) -> None:
                    await asyncio.sleep(self.late_delay)
                    await self.answer(reply, host, "completed", doc)

                self.tasks.append(asyncio.create_task(later()))
        await self.nc.flush()

    def subjects(self) -> list[str]:
        return [s for s, _ in self.seen]


def with_homelab(inventory: Inventory, names: Iterable[str]) -> Inventory:
    hosts = dict(inventory.hosts)
    for name in names:
        hosts[name] = replace(hosts[name], protocol="homelab-deploy")
    return replace(inventory, hosts=hosts, cache={})


def replying_on_deploy_responses(fleet: NatsFleet, user: str) -> NatsTransport:
    inv = fleet.inventory_as(user)
    nats = replace(inv.settings.nats, reply_prefix="deploy.responses")
    return NatsTransport(replace(inv, settings=replace(inv.settings, nats=nats), cache={}))


async def test_generated_permissions_let_a_deployer_use_deploy_responses_replies(
    fleet_factory: Callable[..., NatsFleet],
) -> None:
    fleet = fleet_factory(make_inventory([("new1", "test", ("web",)), ("new2", "test", ("web",))]))
    config = render_config(fleet.inventory, keys_dir=fleet.keys_dir)
    assert config.count('"deploy.responses.>"') >= 3  # two listeners publish, deployers read
    fleet.start_listeners()
    transport = replying_on_deploy_responses(fleet, "deployer-test")
    sniffer = await connect(fleet.url, read_seed(fleet.seed_file("deployer-test")))
    sniffed: list[str] = []

    async def sniff(msg: Any) -> None:
        sniffed.append(msg.subject)

    await sniffer.subscribe("deploy.responses.>", cb=sniff)
    await sniffer.flush()
    try:
        hosts = list(fleet.inventory.hosts.values())
        out = await transport.deploy(hosts, {"action": "switch", "revision": "main"}, timeout=15)
        facts = await transport.facts(fleet.inventory.hosts["new1"], timeout=5)
        found = await transport.discover(timeout=5)
        await sniffer.flush()
    finally:
        await transport.close()
        await sniffer.close()
    assert {h: o.status for h, o in out.items()} == {"new1": "completed", "new2": "completed"}
    assert transport.last_subjects == ["deploy.test.all"]
    assert out["new1"].data["subject"] == "deploy.test.all"
    assert facts["busy"] is False
    assert {d["hostname"] for d in found} == {"new1", "new2"}
    assert sniffed, "no reply went through deploy.responses"
    assert all(RESPONSES_RE.match(s) for s in sniffed), sniffed
    assert any(s.endswith(".0") for s in sniffed)


async def test_homelab_deploy_hosts_get_base_actions_only_and_a_bare_request(
    fleet_factory: Callable[..., NatsFleet],
) -> None:
    inventory = with_homelab(
        make_inventory([("new1", "test", ("web",)), ("old1", "test", ("web",))]), ["old1"]
    )
    fleet = fleet_factory(inventory)
    fleet.start_listener("new1")
    peer = FakePeer(await connect(fleet.url, read_seed(fleet.seed_file("old1"))), {})
    await peer.serve(
        {
            "deploy.test.old1": ["old1"],
            "deploy.test.all": ["old1"],
            "deploy.test.role.web": ["old1"],
        }
    )
    transport = replying_on_deploy_responses(fleet, "admin")
    hosts = [inventory.hosts["new1"], inventory.hosts["old1"]]
    try:
        built = await transport.deploy(hosts, {"action": "build", "revision": "main"}, timeout=10)
        assert peer.seen == []  # nothing was published for old1
        switched = await transport.deploy(
            hosts,
            {"action": "switch", "revision": "main", "options": {"sleep": 0.1}},
            timeout=10,
        )
    finally:
        await transport.close()
        await peer.nc.close()
    old = built["old1"]
    assert (old.status, old.error) == ("failed", "not_supported")
    assert "old1" in old.message and "homelab-deploy" in old.message and "'build'" in old.message
    assert built["new1"].status == "completed", built["new1"]

    assert switched["old1"].status == "completed", switched["old1"]
    assert switched["new1"].status == "completed", switched["new1"]
    # Subjects of its own: the tier and role subjects would reach new1 too.
    assert peer.subjects() == ["deploy.test.old1"]
    doc = peer.seen[0][1]
    assert set(doc) == {"action", "revision", "reply_to"}
    assert doc["action"] == "switch" and doc["revision"] == "main"
    assert RESPONSES_RE.match(doc["reply_to"]), doc


async def test_a_reconnect_republishes_only_to_host_subjects_of_hosts_owing_a_status(
    tmp_path: Path,
) -> None:
    require(nats_server_bin(), "nats-server")
    server = NatsServer(None, work_dir=tmp_path / "nats")
    server.start()
    base = make_inventory(
        [("h1", "test", ("web",)), ("h2", "test", ("web",)), ("old3", "test", ())]
    )
    inventory = with_homelab(base, ["old3"])
    keys = {name: generate() for name in ("h1", "h2")}
    hosts = {
        n: replace(h, vars={"nkey": keys[n][1]}) if n in keys else h
        for n, h in inventory.hosts.items()
    }
    inventory = replace(
        inventory,
        hosts=hosts,
        settings=Settings(nats=NatsSettings(urls=(server.url,), timeout=20.0)),
    )
    transport = NatsTransport(inventory)
    # h1 owes its final status at the outage; h2 has it; old3 (homelab-deploy)
    # sends its own after the outage and must not be asked again.
    peer = FakePeer(
        await connect(server.url),
        {"h1": "hold", "h2": "complete", "old3": "late"},
        echo_id=True,
        seeds={n: seed for n, (seed, _) in keys.items()},
    )
    await peer.serve(
        {
            "deploy.test.all": ["h1", "h2", "old3"],
            "deploy.test.role.web": ["h1", "h2"],
            "deploy.test.h1": ["h1"],
            "deploy.test.h2": ["h2"],
            "deploy.test.old3": ["old3"],
        }
    )
    outage: list[asyncio.Task[None]] = []

    async def restart() -> None:
        await asyncio.sleep(0.3)
        await asyncio.to_thread(server.stop)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(server.start)
        peer.behaviour["h1"] = "complete"  # answers the republished request in full

    async def watch() -> None:
        while len(peer.seen) < 2:
            await asyncio.sleep(0.02)
        outage.append(asyncio.create_task(restart()))

    watcher = asyncio.create_task(watch())
    try:
        out = await transport.deploy(
            list(inventory.hosts.values()), {"action": "switch", "revision": "main"}, timeout=20
        )
        await watcher
        await outage[0]
    finally:
        await transport.close()
        await peer.nc.close()
        server.cleanup()
    assert {h: o.status for h, o in out.items()} == {
        "h1": "completed",
        "h2": "completed",
        "old3": "completed",
    }, out
    subjects = peer.subjects()
    assert sorted(subjects[:2]) == ["deploy.test.old3", "deploy.test.role.web"]
    again = subjects[2:]
    assert again and set(again) == {"deploy.test.h1"}, subjects
    first = {s: d for s, d in peer.seen[:2]}
    assert "id" not in first["deploy.test.old3"]
    assert peer.seen[2][1]["id"] == first["deploy.test.role.web"]["id"]
