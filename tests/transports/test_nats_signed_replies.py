"""The controller believes an answer only when the host it claims to be signed it.

Real nats-server, real ``hlplay listen`` processes, real NKeys. A rogue is a
plain NATS client holding one listener's credentials (web2's): everything a
compromised listener can do on the bus.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fixtures.nats import NatsFleet, make_inventory
from hlplay.auth.keys import new_named, read_seed
from hlplay.inventory.loader import load_inventory
from hlplay.inventory.model import Host, Inventory
from hlplay.natsserver import NatsServer
from hlplay.protocol import signing
from hlplay.transports.base import Unreachable
from hlplay.transports.nats import NO_HOST_KEY, NOT_THIS_REQUEST, NatsTransport
from realparts import nats_server_bin, require

pytestmark = pytest.mark.nats

TEST_TIER = ("web1", "web2", "db1")


async def connect(url: str, seed: str | None = None) -> Any:
    from nats.aio.client import Client

    nc = Client()
    kwargs: dict[str, Any] = {"nkeys_seed_str": seed} if seed else {}
    await nc.connect(servers=[url], **kwargs)
    return nc


async def rogue(
    url: str, seed: str | None, subject: str, answer: Callable[[Any, Any], Awaitable[None]]
) -> Any:
    """A client that calls ``answer(nc, msg)`` for every message on ``subject``."""
    nc = await connect(url, seed)

    async def on_msg(msg: Any) -> None:
        await answer(nc, msg)
        await nc.flush()

    await nc.subscribe(subject, cb=on_msg)
    await nc.flush()
    return nc


def public_key(fleet: NatsFleet, name: str) -> str:
    return (fleet.keys_dir / f"{name}.pub").read_text().strip()


def with_nats(inv: Inventory, **changes: Any) -> Inventory:
    nats = replace(inv.settings.nats, **changes)
    return replace(inv, settings=replace(inv.settings, nats=nats), cache={})


@pytest.fixture
async def admin(nats_fleet: NatsFleet) -> AsyncIterator[NatsTransport]:
    transport = NatsTransport(nats_fleet.inventory_as("admin"))
    yield transport
    await transport.close()


@pytest.fixture
def open_fleet(tmp_path: Path) -> Iterator[NatsFleet]:
    """web1 and web2 on a nats-server started without any authorization."""
    require(nats_server_bin(), "nats-server")
    inventory = make_inventory([("web1", "test", ("web",)), ("web2", "test", ("web",))])
    keys_dir = tmp_path / "keys"
    for name in [*inventory.hosts, "admin", "deployer-test"]:
        new_named(name, keys_dir)
    server = NatsServer(None, work_dir=tmp_path / "nats")
    server.start()
    fleet = NatsFleet(server=server, inventory=inventory, keys_dir=keys_dir, work=tmp_path)
    try:
        yield fleet
    finally:
        fleet.close()


async def test_a_normal_deploy_completes_and_nothing_is_forged(
    admin: NatsTransport, nats_fleet: NatsFleet
) -> None:
    hosts = [nats_fleet.inventory.hosts[h] for h in TEST_TIER]
    out = await admin.deploy(hosts, {"action": "switch", "revision": "main"}, timeout=15)
    assert {o.status for o in out.values()} == {"completed"}, out
    assert all(signing.SIG_FIELD not in o.data for o in out.values())
    facts = await admin.facts(nats_fleet.inventory.hosts["web1"])
    assert facts["hostname"] == "web1" and signing.SIG_FIELD not in facts
    found = await admin.discover(timeout=5)
    assert {d["hostname"]: d["verified"] for d in found} == {
        "web1": True,
        "web2": True,
        "db1": True,
        "prod1": True,
    }
    assert admin.forged == []


async def test_a_listener_forging_another_hosts_final_status_is_not_believed(
    admin: NatsTransport, nats_fleet: NatsFleet
) -> None:
    web2_seed = read_seed(nats_fleet.seed_file("web2"))
    forged_id: list[str] = []

    async def forge(nc: Any, msg: Any) -> None:
        request = json.loads(msg.data)
        forged_id.append(request["id"])
        body = {
            "hostname": "web1",
            "status": "completed",
            "error": None,
            "message": "forged",
            "id": request["id"],
            "generation": 999,
        }
        await nc.publish(msg.reply, json.dumps(body).encode())
        await nc.publish(msg.reply, json.dumps(signing.sign(body, web2_seed)).encode())

    # web2's own permissions let it hear its tier's subject, and publish to any inbox.
    nc = await rogue(nats_fleet.url, web2_seed, "deploy.test.all", forge)
    try:
        hosts = [nats_fleet.inventory.hosts[h] for h in TEST_TIER]
        out = await admin.deploy(
            hosts,
            # every real run fails, after the forgeries have long arrived
            {"action": "switch", "revision": "main", "options": {"sleep": 1.0, "fail": True}},
            timeout=15,
        )
    finally:
        await nc.close()
    assert forged_id, "the rogue never saw the request"
    assert admin.last_subjects == ["deploy.test.all"]
    assert {h: (o.status, o.error) for h, o in out.items()} == {
        h: ("failed", "exec_failed") for h in TEST_TIER
    }
    assert out["web1"].data.get("generation") != 999
    forged = [f for f in admin.forged if f["host"] == "web1"]
    assert {f["code"] for f in forged} == {"unsigned", "key_not_allowed"}
    assert all(f["request_id"] == forged_id[0] for f in forged)
    assert all(f["subject"] == "deploy.test.all" and f["status"] == "completed" for f in forged)
    by_key = next(f for f in forged if f["code"] == "key_not_allowed")
    assert by_key["key"] == public_key(nats_fleet, "web2")
    assert "not with web1's" in by_key["reason"]


async def test_on_a_server_without_authorization_forged_facts_are_refused(
    open_fleet: NatsFleet,
) -> None:
    web2_seed = read_seed(open_fleet.seed_file("web2"))

    async def fake_facts(nc: Any, msg: Any) -> None:
        doc = {"hostname": "web1", "failed_units": [], "busy": False}
        await nc.publish(msg.reply, json.dumps(signing.sign(doc, web2_seed)).encode())
        await nc.publish(msg.reply, json.dumps(doc).encode())

    # web1's listener is not running: only the rogue answers.
    nc = await rogue(open_fleet.url, None, "hlplay.facts.test.web1", fake_facts)
    transport = NatsTransport(open_fleet.inventory_as("admin"))
    try:
        with pytest.raises(Unreachable, match="could be believed") as err:
            await transport.facts(open_fleet.inventory.hosts["web1"], timeout=1.5)
    finally:
        await transport.close()
        await nc.close()
    assert "2 refused" in str(err.value)
    assert {f["code"] for f in transport.forged} == {"key_not_allowed", "unsigned"}
    assert {f["host"] for f in transport.forged} == {"web1"}


async def test_on_a_server_without_authorization_a_forged_deploy_status_is_not_counted(
    open_fleet: NatsFleet,
) -> None:
    open_fleet.start_listeners()

    async def forge(nc: Any, msg: Any) -> None:
        request = json.loads(msg.data)
        body = {"hostname": "web1", "status": "completed", "id": request.get("id")}
        await nc.publish(msg.reply, json.dumps(body).encode())

    # No authorization: anyone hears every request.
    nc = await rogue(open_fleet.url, None, "deploy.>", forge)
    transport = NatsTransport(open_fleet.inventory_as("admin"))
    try:
        out = await transport.deploy(
            list(open_fleet.inventory.hosts.values()),
            {"action": "switch", "revision": "main", "options": {"sleep": 0.5, "fail": True}},
            timeout=15,
        )
    finally:
        await transport.close()
        await nc.close()
    assert {h: o.status for h, o in out.items()} == {"web1": "failed", "web2": "failed"}
    assert [f["code"] for f in transport.forged] == ["unsigned"]


async def test_a_host_without_a_known_key_says_why(nats_fleet: NatsFleet, tmp_path: Path) -> None:
    empty = tmp_path / "no-keys"
    empty.mkdir()
    inv = with_nats(nats_fleet.inventory_as("admin"), keys=str(empty))
    hosts = dict(inv.hosts)
    # web1's key is in the inventory; web2's nowhere
    hosts["web1"] = replace(
        hosts["web1"], vars={"hlplay_listener_key": public_key(nats_fleet, "web1")}
    )
    inv = replace(inv, hosts=hosts, cache={})
    transport = NatsTransport(inv)
    try:
        start = time.monotonic()
        out = await transport.deploy(
            [hosts["web1"], hosts["web2"]], {"action": "switch", "revision": "main"}, timeout=60
        )
        took = time.monotonic() - start
        with pytest.raises(Unreachable, match="no public key for host web2"):
            await transport.facts(hosts["web2"], timeout=30)
        facts = await transport.facts(hosts["web1"])
    finally:
        await transport.close()
    assert out["web1"].status == "completed", out["web1"]
    assert out["web2"].status == "failed"
    assert out["web2"].error == "no_final_status"
    assert (
        f"no public key for host web2: set hlplay_listener_key, or put web2.pub in "
        f"the keys directory ({empty})"
    ) in out["web2"].message
    assert took < 20, "a host whose answers can never be believed must not wait for the deadline"
    assert {f["code"] for f in transport.forged} == {NO_HOST_KEY}
    assert facts["hostname"] == "web1"


async def test_keys_default_to_the_credentials_directory_and_may_be_set(
    nats_fleet: NatsFleet, tmp_path: Path
) -> None:
    inv = nats_fleet.inventory_as("admin")
    assert NatsTransport(inv).keys_dir() == nats_fleet.keys_dir
    root = tmp_path / "inv"
    root.mkdir()
    (root / "hosts.yml").write_text(
        "hlplay:\n  nats:\n    credentials: k/admin.seed\n    keys: pubkeys\n"
        "hosts:\n  web1: {tier: test}\n"
    )
    loaded = load_inventory(root)
    assert loaded.settings.nats.keys == str(root / "pubkeys")


async def test_a_genuine_answer_to_another_request_or_a_stale_one_is_refused(
    nats_fleet: NatsFleet,
) -> None:
    transport = NatsTransport(nats_fleet.inventory_as("admin"))
    web1_seed = read_seed(nats_fleet.seed_file("web1"))
    body = {"hostname": "web1", "status": "completed", "id": "r1"}
    genuine = signing.sign(body, web1_seed)
    assert transport.check_reply("web1", genuine, "r1") is None
    refusal = transport.check_reply("web1", genuine, "r2")
    assert refusal is not None and refusal[0] == NOT_THIS_REQUEST
    stale = signing.sign(body, web1_seed, now=time.time() - 600)
    refusal = transport.check_reply("web1", stale, "r1")
    assert refusal is not None and refusal[0] == "stale_request"
    refusal = transport.check_reply("web1", {**genuine, "status": "failed"}, "r1")
    assert refusal is not None and refusal[0] == "bad_signature"
    refusal = transport.check_reply("ghost1", genuine, "r1")
    assert refusal is not None and refusal[0] == NO_HOST_KEY


async def test_discovery_drops_forged_answers_and_marks_unknown_hosts(
    nats_fleet: NatsFleet,
) -> None:
    web2_seed = read_seed(nats_fleet.seed_file("web2"))
    stranger = new_named("stranger", nats_fleet.work / "stranger-keys")
    stranger_seed = read_seed(nats_fleet.work / "stranger-keys" / "stranger.seed")
    assert stranger

    async def lie(nc: Any, msg: Any) -> None:
        fake = {"hostname": "web1", "tier": "test", "generation": 999}
        await nc.publish(msg.reply, json.dumps(signing.sign(fake, web2_seed)).encode())
        other = {"hostname": "stranger", "tier": "test"}
        await nc.publish(msg.reply, json.dumps(signing.sign(other, stranger_seed)).encode())

    nc = await rogue(nats_fleet.url, web2_seed, "deploy.discover", lie)
    # a listener host that never answers: discovery waits its whole timeout
    ghost = Host(name="ghost1", tier="test")
    transport = NatsTransport(nats_fleet.inventory_as("admin", extra_hosts=[ghost]))
    try:
        found = await transport.discover(timeout=1.5)
    finally:
        await transport.close()
        await nc.close()
    by_host = {d["hostname"]: d for d in found}
    assert set(by_host) == {"web1", "web2", "db1", "prod1", "stranger"}
    assert by_host["web1"]["generation"] != 999 and by_host["web1"]["verified"] is True
    assert by_host["stranger"]["verified"] is False
    assert [(f["host"], f["code"]) for f in transport.forged] == [("web1", "key_not_allowed")]


async def test_homelab_deploy_hosts_are_believed_unsigned(open_fleet: NatsFleet) -> None:
    open_fleet.start_listener("web1")

    async def homelab(nc: Any, msg: Any) -> None:
        reply = json.loads(msg.data)["reply_to"]
        for status in ("accepted", "started", "completed"):
            body = {"hostname": "web2", "status": status, "error": None, "message": ""}
            await nc.publish(reply, json.dumps(body).encode())

    nc = await rogue(open_fleet.url, None, "deploy.test.web2", homelab)
    inv = open_fleet.inventory_as("admin")
    hosts = dict(inv.hosts)
    hosts["web2"] = replace(hosts["web2"], protocol="homelab-deploy")
    transport = NatsTransport(replace(inv, hosts=hosts, cache={}))
    try:
        out = await transport.deploy(
            list(hosts.values()), {"action": "switch", "revision": "main"}, timeout=15
        )
    finally:
        await transport.close()
        await nc.close()
    assert {h: o.status for h, o in out.items()} == {"web1": "completed", "web2": "completed"}
    assert transport.forged == []


def test_an_answer_signed_with_a_rotated_key_is_believed_during_its_grace(
    tmp_path: Path,
) -> None:
    from hlplay.auth.keys import rotate
    from hlplay.inventory.model import NatsSettings, Settings

    keys = tmp_path / "keys"
    new_named("web1", keys)
    new_named("admin", keys)
    old_seed = read_seed(keys / "web1.seed")
    rotate("web1", keys, grace=3600)
    new_seed = read_seed(keys / "web1.seed")
    inventory = replace(
        make_inventory([("web1", "test", ())]),
        settings=Settings(nats=NatsSettings(credentials=str(keys / "admin.seed"))),
    )
    transport = NatsTransport(inventory)
    body = {"hostname": "web1", "status": "completed", "id": "r1"}
    # the listener still signing with its old seed, and once given the new one
    assert transport.check_reply("web1", signing.sign(body, old_seed), "r1") is None
    assert transport.check_reply("web1", signing.sign(body, new_seed), "r1") is None


async def test_a_forgery_shows_in_the_recap_and_the_json_report(
    fleet_factory: Any, tmp_path: Path
) -> None:
    import io

    from hlplay.engine.api import run_playbook
    from hlplay.report.console import ConsoleReporter

    fleet = fleet_factory(make_inventory([("web1", "test", ("web",)), ("web2", "test", ("web",))]))
    fleet.start_listeners()
    web2_seed = read_seed(fleet.seed_file("web2"))

    async def forge(nc: Any, msg: Any) -> None:
        request = json.loads(msg.data)
        body = {"hostname": "web1", "status": "completed", "error": None, "message": "forged",
                "id": request.get("id")}  # fmt: skip
        await nc.publish(msg.reply, json.dumps(signing.sign(body, web2_seed)).encode())

    play = tmp_path / "deploy.yml"
    play.write_text(
        "- hosts: all\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - nixos_rebuild: {revision: main, confirm_timeout: 0}\n"
    )
    nc = await rogue(fleet.url, web2_seed, "deploy.test.all", forge)
    out = io.StringIO()
    try:
        result = await run_playbook(
            play, fleet.inventory_as("admin"), reporters=[ConsoleReporter(out, color=False)]
        )
    finally:
        await nc.close()
    forged = result.document["forged"]
    assert forged and {f["host"] for f in forged} == {"web1"}
    assert {f["code"] for f in forged} == {"key_not_allowed"}
    text = out.getvalue()
    recap = text[text.index("PLAY RECAP") :]
    assert "FORGED: an answer as web1 on" in recap, text
    # the real answers decided: both hosts deployed (noop listeners)
    assert result.exit_code == 0, text
