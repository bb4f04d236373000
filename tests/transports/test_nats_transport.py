"""The NATS transport against a real nats-server and real ``hlplay listen`` processes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest

from fixtures.nats import NatsFleet, make_inventory
from hlplay.inventory.model import Host
from hlplay.inventory.targets import NatsTarget
from hlplay.protocol.messages import DeployRequest, DeployResponse
from hlplay.transports.base import NotSupported, Unreachable
from hlplay.transports.nats import NatsTransport, _Gather, _Target

pytestmark = pytest.mark.nats

TEST_TIER = frozenset({"web1", "web2", "db1"})


@pytest.fixture
async def admin(nats_fleet: NatsFleet) -> AsyncIterator[NatsTransport]:
    transport = NatsTransport(nats_fleet.inventory_as("admin"))
    yield transport
    await transport.close()


def target(subject: str, kind: str, hosts: set[str] | frozenset[str]) -> NatsTarget:
    return NatsTarget(
        subject=subject, tier=subject.split(".")[1], kind=kind, hosts=frozenset(hosts)
    )


async def test_deploy_to_one_host_completes_with_progress_and_data(
    admin: NatsTransport, nats_fleet: NatsFleet
) -> None:
    seen: list[tuple[str, str]] = []
    web1 = nats_fleet.inventory.hosts["web1"]
    out = await admin.deploy(
        [web1],
        {"action": "switch", "revision": "main"},
        timeout=10,
        progress=lambda host, line: seen.append((host, line)),
    )
    result = out["web1"]
    assert result.status == "completed", result
    assert result.error is None
    assert result.data["revision"] == "main"
    assert isinstance(result.data["generation"], int)
    assert result.data["duration"] >= 0
    assert result.data["request_id"]
    assert result.progress and all(h == "web1" for h, _ in seen)
    assert [line for _, line in seen] == result.progress


async def test_deploy_to_a_role_reaches_its_hosts_with_one_publish(
    admin: NatsTransport, nats_fleet: NatsFleet
) -> None:
    hosts = nats_fleet.inventory.hosts
    out = await admin.deploy(
        [hosts["web1"], hosts["web2"]], {"action": "boot", "revision": "v1.2"}, timeout=10
    )
    assert {h: o.status for h, o in out.items()} == {"web1": "completed", "web2": "completed"}
    assert admin.last_subjects == ["deploy.test.role.web"]
    assert {o.data["subject"] for o in out.values()} == {"deploy.test.role.web"}


async def test_deploy_to_a_whole_tier_with_one_publish(
    admin: NatsTransport, nats_fleet: NatsFleet
) -> None:
    hosts = [h for h in nats_fleet.inventory.hosts.values() if h.tier == "test"]
    out = await admin.deploy(hosts, {"action": "test", "revision": "main"}, timeout=10)
    assert admin.last_subjects == ["deploy.test.all"]
    assert {o.status for o in out.values()} == {"completed"}
    assert set(out) == TEST_TIER
    assert len({o.data["request_id"] for o in out.values()}) == 1


async def test_a_failing_run_is_reported_failed_with_its_error(
    admin: NatsTransport, nats_fleet: NatsFleet
) -> None:
    out = await admin.deploy(
        [nats_fleet.inventory.hosts["db1"]],
        {"action": "switch", "revision": "main", "options": {"fail": True}},
        timeout=10,
    )
    assert out["db1"].status == "failed"
    assert out["db1"].error == "exec_failed"


async def test_replies_from_unexpected_hosts_are_reported_not_counted(
    admin: NatsTransport,
) -> None:
    out = await admin.deploy_targets(
        [target("deploy.test.role.web", "role", {"web1"})],
        # web1 takes a moment, so that web2's answers surely come while we listen
        DeployRequest("test", "main", options={"sleep": 0.5}),
        timeout=10,
    )
    assert set(out) == {"web1"}
    assert out["web1"].status == "completed"
    strays = {s["host"] for s in admin.stray}
    assert strays == {"web2"}


async def test_test_tier_credentials_cannot_deploy_to_prod_and_say_why_at_once(
    nats_fleet: NatsFleet,
) -> None:
    inv = nats_fleet.inventory_as("deployer-test")
    transport = NatsTransport(inv)
    try:
        # A long deadline: the refusal must not wait for it.
        out = await asyncio.wait_for(
            transport.deploy(
                [inv.hosts["prod1"], inv.hosts["web1"]],
                {"action": "switch", "revision": "main"},
                timeout=300,
            ),
            timeout=20,
        )
    finally:
        await transport.close()
    assert out["prod1"].status == "failed"
    assert out["prod1"].error == "permission_denied"
    assert "may not publish to deploy.prod.prod1" in out["prod1"].message
    assert out["web1"].status == "completed"


async def test_test_tier_credentials_cannot_read_prod_facts(nats_fleet: NatsFleet) -> None:
    inv = nats_fleet.inventory_as("deployer-test")
    transport = NatsTransport(inv)
    try:
        with pytest.raises(Unreachable, match="permission denied"):
            await transport.facts(inv.hosts["prod1"], timeout=60)
        facts = await transport.facts(inv.hosts["web2"])
    finally:
        await transport.close()
    assert facts["hostname"] == "web2"


async def test_host_whose_listener_is_down_is_unreachable_while_others_complete(
    nats_fleet: NatsFleet,
) -> None:
    ghost = Host(name="ghost1", tier="test", roles=("web",))
    transport = NatsTransport(nats_fleet.inventory_as("admin", extra_hosts=[ghost]))
    try:
        out = await transport.deploy_targets(
            [target("deploy.test.all", "tier", TEST_TIER | {"ghost1"})],
            DeployRequest("switch", "main"),
            timeout=1.5,
        )
        alone = await transport.deploy([ghost], {"action": "switch", "revision": "main"})
    finally:
        await transport.close()
    assert out["ghost1"].status == "unreachable"
    assert "no reply from the listener on deploy.test.all within 1.5s" in out["ghost1"].message
    assert {out[h].status for h in TEST_TIER} == {"completed"}
    # Alone on its own subject, nobody subscribes: known at once, no deadline needed.
    assert alone["ghost1"].status == "unreachable"
    assert "no listener is subscribed to deploy.test.ghost1" in alone["ghost1"].message


async def test_final_status_produced_while_the_server_is_down_still_arrives(
    fleet_factory: Callable[..., NatsFleet],
) -> None:
    fleet = fleet_factory(make_inventory([("solo", "test", ())]))
    fleet.start_listener("solo")
    transport = NatsTransport(fleet.inventory_as("admin"))
    outage: list[asyncio.Task[None]] = []

    async def restart() -> None:
        await asyncio.to_thread(fleet.server.stop)
        await asyncio.sleep(2.0)  # the run (1 s) ends while the server is away
        await asyncio.to_thread(fleet.server.start)

    def on_progress(host: str, line: str) -> None:
        if not outage:
            outage.append(asyncio.create_task(restart()))

    try:
        out = await transport.deploy(
            [fleet.inventory.hosts["solo"]],
            {"action": "switch", "revision": "main", "options": {"sleep": 1.0}},
            timeout=30,
            progress=on_progress,
        )
        await outage[0]
    finally:
        await transport.close()
    assert outage, "the run never reported progress"
    assert out["solo"].status == "completed", out["solo"]
    assert out["solo"].data["generation"] == 2


async def test_discovery_lists_every_listener(admin: NatsTransport) -> None:
    found = await admin.discover(timeout=5)
    by_host = {d["hostname"]: d for d in found}
    assert set(by_host) == {"web1", "web2", "db1", "prod1"}
    assert by_host["prod1"]["tier"] == "prod"
    assert by_host["web1"]["roles"] == ["web"]
    assert by_host["db1"]["executor"] == "noop"
    assert isinstance(by_host["web2"]["generation"], int)
    assert by_host["web2"]["busy"] is False
    assert by_host["web2"]["version"]


async def test_facts_of_a_host(admin: NatsTransport, nats_fleet: NatsFleet) -> None:
    facts = await admin.facts(nats_fleet.inventory.hosts["web1"])
    assert facts["hostname"] == "web1"
    assert len(facts["load"]) == 3
    assert facts["memory"]["total"] > 0
    assert facts["disk"][0]["path"] == "/"
    assert 0 <= facts["disk"][0]["percent"] <= 100
    assert facts["uptime"] > 0
    assert isinstance(facts["generation"], int)


async def test_arbitrary_commands_are_not_available(admin: NatsTransport) -> None:
    with pytest.raises(NotSupported, match="arbitrary commands are not available over NATS"):
        await admin.run(Host(name="web1", tier="test"), ["/bin/true"])


async def test_an_invalid_request_is_refused_before_publishing(
    admin: NatsTransport, nats_fleet: NatsFleet
) -> None:
    out = await admin.deploy(
        [nats_fleet.inventory.hosts["web1"]], {"action": "switch", "revision": "--upgrade"}
    )
    assert out["web1"].status == "rejected"  # as a listener answers it
    assert out["web1"].error == "invalid_revision"


async def test_no_server_means_unreachable_with_the_reason(nats_fleet: NatsFleet) -> None:
    inv = nats_fleet.inventory_as("admin")
    settings = replace(inv.settings.nats, urls=("nats://127.0.0.1:9",), connect_timeout=0.5)
    transport = NatsTransport(replace(inv, settings=replace(inv.settings, nats=settings), cache={}))
    out = await transport.deploy([inv.hosts["web1"]], {"action": "switch", "revision": "main"})
    await transport.close()
    assert out["web1"].status == "unreachable"
    assert "cannot connect to NATS at nats://127.0.0.1:9" in out["web1"].message


async def test_unknown_credentials_are_refused_clearly(
    nats_fleet: NatsFleet, tmp_path: object
) -> None:
    from pathlib import Path

    from hlplay.auth.keys import new_named

    seed_dir = Path(str(tmp_path))
    new_named("stranger", seed_dir)
    inv = nats_fleet.inventory_as("admin")
    settings = replace(inv.settings.nats, credentials=str(seed_dir / "stranger.seed"))
    transport = NatsTransport(replace(inv, settings=replace(inv.settings, nats=settings), cache={}))
    with pytest.raises(Unreachable, match="refused these credentials"):
        await transport.facts(inv.hosts["web1"])
    await transport.close()


def _msg(subject: str, doc: dict[str, object]) -> object:
    from nats.aio.msg import Msg

    return Msg(_client=None, subject=subject, reply="", data=json.dumps(doc).encode())  # type: ignore[arg-type]


async def test_replies_to_an_older_request_are_ignored() -> None:
    gather = _Gather("new", [_Target(0, "deploy.test.web1", frozenset({"web1"}))], None, [])
    final = DeployResponse("web1", "completed", id="old").to_json()
    await gather.on_msg(_msg("_INBOX.x.0", json.loads(final)))  # type: ignore[arg-type]
    assert gather.state["web1"].outcome is None
    ok = DeployResponse("web1", "completed", id="new").to_json()
    await gather.on_msg(_msg("_INBOX.x.0", json.loads(ok)))  # type: ignore[arg-type]
    outcome = gather.state["web1"].outcome
    assert outcome is not None and outcome.status == "completed"


async def test_hosts_across_tiers_get_one_publish_per_tier(
    admin: NatsTransport, nats_fleet: NatsFleet
) -> None:
    out = await admin.deploy(
        list(nats_fleet.inventory.hosts.values()), {"action": "test", "revision": "main"}
    )
    # One subject per tier (prod has one host, so its host subject serves as well).
    assert len(admin.last_subjects) == 2
    assert "deploy.test.all" in admin.last_subjects
    assert {o.status for o in out.values()} == {"completed"}


async def test_a_listener_that_vanishes_mid_deploy_is_unreachable_a_slow_one_failed(
    fleet_factory: Callable[..., NatsFleet],
) -> None:
    import signal

    fleet = fleet_factory(make_inventory([("gone", "test", ()), ("slow", "test", ())]))
    fleet.start_listeners()
    transport = NatsTransport(replace(fleet.inventory_as("admin"), cache={}))
    killed: list[str] = []

    def on_progress(host: str, line: str) -> None:
        # "gone" took the request and started: now its listener dies
        if host == "gone" and not killed:
            fleet.listeners["gone"].signal(signal.SIGKILL)
            killed.append(host)

    try:
        out = await transport.deploy(
            list(fleet.inventory.hosts.values()),
            {"action": "switch", "revision": "main", "options": {"sleep": 6.0}},
            timeout=3,
            progress=on_progress,
        )
    finally:
        await transport.close()
    assert killed
    assert out["gone"].status == "unreachable", out["gone"]
    assert "went away during the deploy" in out["gone"].message
    # still alive and still working: a slow deploy, not a vanished host
    assert out["slow"].status == "failed", out["slow"]
    assert out["slow"].error == "no_final_status"
