"""``hlplay listen`` as a user meets it: real processes on a real nats-server."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.nats import NatsFleet, make_inventory
from hlplay.auth.keys import read_seed
from hlplay.protocol.messages import ACTIONS, DeployRequest, ErrorCode, ProtocolError
from hlplay.protocol.signing import sign
from hlplay.transports.nats import NatsTransport

pytestmark = pytest.mark.nats

KNOWN_CODES = {c.value for c in ErrorCode}


@pytest.fixture
async def admin(nats_fleet: NatsFleet) -> AsyncIterator[NatsTransport]:
    transport = NatsTransport(nats_fleet.inventory_as("admin"))
    yield transport
    await transport.close()


async def raw_client(fleet: NatsFleet, user: str = "admin") -> object:
    import nats

    return await nats.connect(fleet.url, nkeys_seed_str=read_seed(fleet.seed_file(user)))


def signed(fleet: NatsFleet, doc: dict[str, object], user: str = "admin", *, to: str) -> bytes:
    """``doc`` as a deployer sends it to subject ``to``: signed with ``user``'s key."""
    return json.dumps(sign({**doc, "to": to}, read_seed(fleet.seed_file(user)))).encode()


async def collect(
    nc: object, subject: str, payload: bytes, *, until_final: bool = True, timeout: float = 5.0
) -> list[dict[str, object]]:
    """Publish ``payload`` with a fresh inbox; the responses until a final one."""
    inbox = nc.new_inbox()  # type: ignore[attr-defined]
    sub = await nc.subscribe(inbox)  # type: ignore[attr-defined]
    await nc.publish(subject, payload, reply=inbox)  # type: ignore[attr-defined]
    out: list[dict[str, object]] = []
    try:
        while True:
            msg = await sub.next_msg(timeout=timeout)
            doc = json.loads(msg.data)
            out.append(doc)
            if not until_final or doc["status"] in ("rejected", "completed", "failed"):
                return out
    finally:
        await sub.unsubscribe()


async def test_status_stream_is_the_seed_protocol(nats_fleet: NatsFleet) -> None:
    nc = await raw_client(nats_fleet)
    try:
        # A homelab-deploy style request: no id, reply_to only.
        inbox = nc.new_inbox()  # type: ignore[attr-defined]
        sub = await nc.subscribe(inbox)  # type: ignore[attr-defined]
        request = {"action": "switch", "revision": "main", "reply_to": inbox}
        await nc.publish("deploy.test.db1", signed(nats_fleet, request, to="deploy.test.db1"))  # type: ignore[attr-defined]
        statuses = []
        while True:
            doc = json.loads((await sub.next_msg(timeout=5)).data)
            assert {"hostname", "status", "error", "message"} <= set(doc)
            statuses.append(doc["status"])
            if doc["status"] in ("completed", "failed", "rejected"):
                break
    finally:
        await nc.close()  # type: ignore[attr-defined]
    assert statuses[:2] == ["accepted", "started"]
    assert statuses[-1] == "completed"
    # progress travels as "started" responses, a status every client knows
    assert set(statuses[2:-1]) <= {"started"}


async def test_invalid_revision_and_action_are_rejected_with_codes(nats_fleet: NatsFleet) -> None:
    nc = await raw_client(nats_fleet)
    try:
        cases = {
            b'{"action": "switch", "revision": "main; rm -rf /", "id": "r1"}': "invalid_revision",
            b'{"action": "switch", "revision": "--upgrade", "id": "r2"}': "invalid_revision",
            b'{"action": "switch", "revision": "a/../b", "id": "r3"}': "invalid_revision",
            b'{"action": "reboot", "revision": "main", "id": "r4"}': "invalid_action",
            b"not json": "invalid_json",
            b'["switch"]': "invalid_request",
            b'{"action": "switch", "revision": "main", "reply_to": "a b"}': "invalid_reply_to",
        }
        for payload, code in cases.items():
            [reply] = await collect(nc, "deploy.test.web1", payload)
            assert reply["status"] == "rejected", payload
            assert reply["error"] == code, payload
            assert reply["hostname"] == "web1"
        [reply] = await collect(
            nc, "deploy.test.web1", b'{"action": "x", "revision": "m", "id": "echo-me"}'
        )
        assert reply["id"] == "echo-me"
    finally:
        await nc.close()  # type: ignore[attr-defined]


def _parses(data: bytes) -> bool:
    try:
        DeployRequest.parse(data)
    except ProtocolError:
        return False
    return True


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
request_like = st.fixed_dictionaries(
    {
        "action": st.one_of(st.sampled_from(ACTIONS), st.text(max_size=12), st.integers()),
        "revision": st.one_of(st.text(max_size=60), st.integers(), st.none(), st.just("-rf")),
        "reply_to": st.one_of(st.text(max_size=20), st.none()),
    },
    optional={"id": st.one_of(st.text(max_size=120), st.integers()), "options": json_values},
)
payloads = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    request_like.map(lambda v: json.dumps(v).encode()),
).filter(lambda b: not _parses(b))


def test_a_thousand_random_payloads_then_a_valid_deploy_still_succeeds(
    nats_fleet: NatsFleet,
) -> None:
    collected: list[bytes] = []

    @settings(
        max_examples=1000,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(payloads)
    def gather(payload: bytes) -> None:
        collected.append(payload)

    gather()
    assert len(collected) >= 900

    async def run() -> None:
        nc = await raw_client(nats_fleet)
        transport = NatsTransport(nats_fleet.inventory_as("admin"))
        inbox = nc.new_inbox()  # type: ignore[attr-defined]
        replies: list[dict[str, object]] = []

        async def on_reply(msg: object) -> None:
            replies.append(json.loads(msg.data))  # type: ignore[attr-defined]

        await nc.subscribe(inbox, cb=on_reply)  # type: ignore[attr-defined]
        try:
            for payload in collected:
                await nc.publish("deploy.test.web2", payload, reply=inbox)  # type: ignore[attr-defined]
            await nc.flush()  # type: ignore[attr-defined]
            out = await transport.deploy(
                [nats_fleet.inventory.hosts["web2"]],
                {"action": "switch", "revision": "after-fuzz"},
                timeout=20,
            )
        finally:
            await transport.close()
            await nc.close()  # type: ignore[attr-defined]
        assert out["web2"].status == "completed", out["web2"]
        assert out["web2"].data["revision"] == "after-fuzz"
        assert replies, "the listener answered none of the bad requests"
        assert {r["status"] for r in replies} == {"rejected"}
        assert {r["error"] for r in replies} <= KNOWN_CODES

    asyncio.run(run())
    assert nats_fleet.listeners["web2"].proc.poll() is None


async def test_progress_is_rate_limited_into_batches_that_lose_no_count(
    nats_fleet: NatsFleet,
) -> None:
    # 600 lines at once: a message per line would flood the controller's inbox
    nc = await raw_client(nats_fleet)
    try:
        payload = {"action": "switch", "revision": "chatty", "options": {"lines": 600}}
        docs = await collect(
            nc, "deploy.test.db1", signed(nats_fleet, payload, to="deploy.test.db1")
        )
    finally:
        await nc.close()  # type: ignore[attr-defined]
    batches = [d for d in docs if d.get("progress")]
    lines = [line for d in batches for line in d["progress"]]  # type: ignore[attr-defined]
    dropped = sum(int(d.get("progress_dropped", 0)) for d in batches)  # type: ignore[call-overload]
    assert docs[-1]["status"] == "completed"
    assert len(batches) < 50  # batched, far fewer messages than lines
    assert len(lines) + dropped == 600  # what is dropped is counted, never silently lost
    assert lines[-1] == "noop: step 600/600 of switch chatty"  # the latest lines are kept
    assert lines == sorted(lines, key=lambda t: int(t.split()[2].split("/")[0]))


def took(outcomes: dict[str, Any]) -> dict[str, bool]:
    """Per host: did it take the confirmation (or the rejection)?"""
    return {h: o.ok or o.error == "rolled_back" for h, o in outcomes.items()}


async def test_a_second_request_during_a_run_is_rejected_already_running(
    admin: NatsTransport, nats_fleet: NatsFleet
) -> None:
    web1 = nats_fleet.inventory.hosts["web1"]
    # the first run holds until it is confirmed: the second surely meets it running
    first = await admin.deploy(
        [web1],
        {
            "action": "switch",
            "revision": "slow",
            "id": "hold-1",
            "options": {"confirm_timeout": 60},
        },
        timeout=90,
    )
    assert first["web1"].status == "awaiting_confirm"
    second = await admin.deploy([web1], {"action": "switch", "revision": "fast"}, timeout=10)
    confirmed = await admin.confirm([web1], "hold-1")
    assert took(confirmed) == {"web1": True}
    assert second["web1"].status == "rejected"
    assert second["web1"].error == "already_running"
    assert "switch of slow is already running" in second["web1"].message
    assert confirmed["web1"].status == "completed"


async def test_the_same_request_id_never_runs_twice(
    admin: NatsTransport, nats_fleet: NatsFleet
) -> None:
    db1 = nats_fleet.inventory.hosts["db1"]
    request = {"action": "switch", "revision": "once", "id": "fixed-id-1"}
    first = await admin.deploy([db1], request, timeout=10)
    again = await admin.deploy([db1], request, timeout=10)
    assert first["db1"].status == again["db1"].status == "completed"
    assert again["db1"].data["generation"] == first["db1"].data["generation"]


async def test_a_hung_run_is_ended_by_the_timeout(
    admin: NatsTransport, nats_fleet: NatsFleet
) -> None:
    out = await admin.deploy(
        [nats_fleet.inventory.hosts["web2"]],
        {"action": "switch", "revision": "hang", "options": {"sleep": 600, "timeout": 0.3}},
        timeout=20,
    )
    assert out["web2"].status == "failed"
    assert out["web2"].error == "timeout"
    # and the host takes the next request
    nxt = await admin.deploy(
        [nats_fleet.inventory.hosts["web2"]], {"action": "switch", "revision": "main"}, timeout=10
    )
    assert nxt["web2"].status == "completed"


async def test_confirmation_reaches_a_waiting_run(
    admin: NatsTransport, nats_fleet: NatsFleet
) -> None:
    web1 = nats_fleet.inventory.hosts["web1"]
    confirmations: list[dict[str, Any]] = []

    async def confirm(outcome: Any) -> None:
        confirmations.append(await admin.confirm([web1], "confirm-me"))

    request = {
        "action": "switch",
        "revision": "main",
        "id": "confirm-me",
        "options": {"confirm_timeout": 10},
    }
    out = await admin.deploy([web1], request, timeout=20, awaiting=confirm)
    assert [took(c) for c in confirmations] == [{"web1": True}]
    assert out["web1"].status == "awaiting_confirm"
    assert confirmations[0]["web1"].status == "completed"

    async def refuse(outcome: Any) -> None:
        confirmations.append(await admin.reject([web1], "refuse-me"))

    await admin.deploy(
        [web1],
        {
            "action": "switch",
            "revision": "main",
            "id": "refuse-me",
            "options": {"confirm_timeout": 600},
        },
        timeout=20,
        awaiting=refuse,
    )
    assert took(confirmations[-1]) == {"web1": True}
    assert confirmations[-1]["web1"].status == "failed"
    assert confirmations[-1]["web1"].error == "rolled_back"

    unconfirmed = await admin.deploy(
        [web1],
        {
            "action": "switch",
            "revision": "main",
            "id": "late-1",
            "options": {"confirm_timeout": 0.2},
        },
        timeout=20,
    )
    assert unconfirmed["web1"].status == "awaiting_confirm"
    await asyncio.sleep(0.5)
    late = await admin.confirm([web1], "late-1")
    assert late["web1"].status == "failed"
    assert late["web1"].error == "confirm_timeout"


async def test_an_early_confirmation_is_refused_not_kept(
    admin: NatsTransport, nats_fleet: NatsFleet
) -> None:
    web2 = nats_fleet.inventory.hosts["web2"]
    early = await admin.confirm([web2], "early-1")
    assert early["web2"].status == "failed" and early["web2"].error == "not_awaiting"
    out = await admin.deploy(
        [web2],
        {
            "action": "switch",
            "revision": "main",
            "id": "early-1",
            "options": {"confirm_timeout": 60},
        },
        timeout=20,
    )
    # the confirmation sent before the activation did not end the wait
    assert out["web2"].status == "awaiting_confirm"
    assert (await admin.confirm([web2], "early-1"))["web2"].status == "completed"


async def test_sigterm_mid_run_finishes_it_and_refuses_new_requests(
    fleet_factory: Callable[..., NatsFleet],
) -> None:
    fleet = fleet_factory(make_inventory([("solo", "test", ())]))
    proc = fleet.start_listener("solo")
    transport = NatsTransport(fleet.inventory_as("admin"))
    other = NatsTransport(fleet.inventory_as("admin"))
    solo = fleet.inventory.hosts["solo"]
    try:
        # the run holds until confirmed, so it is surely still running after SIGTERM
        out = await transport.deploy(
            [solo],
            {
                "action": "switch",
                "revision": "main",
                "id": "hold-term",
                "options": {"confirm_timeout": 60},
            },
            timeout=90,
        )
        assert out["solo"].status == "awaiting_confirm"
        proc.signal(signal.SIGTERM)
        for _ in range(400):  # until the listener has taken the signal in
            if "no new requests are taken" in proc.text():
                break
            await asyncio.sleep(0.05)
        refused = await other.deploy([solo], {"action": "switch", "revision": "x"}, timeout=10)
        confirmed = await other.confirm([solo], "hold-term")
        assert took(confirmed) == {"solo": True}
    finally:
        await transport.close()
        await other.close()
    assert refused["solo"].status == "rejected"
    assert refused["solo"].error == "shutting_down"
    assert confirmed["solo"].status == "completed"
    assert await asyncio.to_thread(proc.proc.wait, 10) == 0


async def test_facts_report_failed_units_from_the_units_dir(
    fleet_factory: Callable[..., NatsFleet], tmp_path: Path
) -> None:
    units = tmp_path / "units"
    units.mkdir()
    (units / "nginx.service").write_text("failed\n")
    (units / "sshd.service").write_text("active\n")
    (units / "backup.timer").write_text("failed")
    fleet = fleet_factory(make_inventory([("solo", "test", ("db",))]))
    fleet.start_listener(
        "solo", "--units-dir", str(units), "--disk-path", "/", "--disk-path", str(tmp_path)
    )
    transport = NatsTransport(fleet.inventory_as("deployer-test"))
    try:
        facts = await transport.facts(fleet.inventory.hosts["solo"])
    finally:
        await transport.close()
    assert facts["failed_units"] == ["backup.timer", "nginx.service"]
    assert facts["failed_units_source"] == "units-dir"
    assert [d["path"] for d in facts["disk"]] == ["/", str(tmp_path)]
    assert facts["roles"] == ["db"]


async def test_listener_refuses_a_key_the_server_does_not_know(
    fleet_factory: Callable[..., NatsFleet], tmp_path: Path
) -> None:
    import subprocess
    import sys

    from hlplay.auth.keys import new_named

    fleet = fleet_factory(make_inventory([("solo", "test", ())]))
    new_named("intruder", tmp_path)
    argv = fleet.listener_argv("solo")
    argv[argv.index("--nkey-file") + 1] = str(tmp_path / "intruder.seed")
    done = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert "refused this listener's credentials" in done.stderr
    assert "Traceback" not in done.stderr
    assert sys.executable  # the listener ran under this interpreter


async def test_a_test_deployer_cannot_bounce_a_response_onto_prod(
    admin: NatsTransport, nats_fleet: NatsFleet
) -> None:
    """A stored final status replayed to a reply subject the requester chose
    (``deploy.prod.all``) must neither reach prod nor deploy there."""
    before = {d["hostname"]: d for d in await admin.discover(timeout=5)}["prod1"]
    nc = await raw_client(nats_fleet, "deployer-test")
    try:
        request = {"action": "switch", "revision": "main", "id": "bounce-1"}
        payload = signed(nats_fleet, request, "deployer-test", to="deploy.test.db1")
        await collect(nc, "deploy.test.db1", payload)
        # the same id again, replies "to" the prod tier subject
        await nc.publish(  # type: ignore[attr-defined]
            "deploy.test.db1", payload, reply="deploy.prod.all"
        )
        await nc.flush()  # type: ignore[attr-defined]
        for _ in range(400):  # until db1 has been told it may not answer there
            if 'publish to "deploy.prod.all"' in nats_fleet.listeners["db1"].text():
                break
            await asyncio.sleep(0.05)
    finally:
        await nc.close()  # type: ignore[attr-defined]
    after = {d["hostname"]: d for d in await admin.discover(timeout=5)}["prod1"]
    assert after["generation"] == before["generation"]
    assert "bounce-1" not in nats_fleet.listeners["prod1"].text()
    assert 'publish to "deploy.prod.all"' in nats_fleet.listeners["db1"].text()


async def test_only_signed_requests_from_keys_the_tier_trusts_run(
    admin: NatsTransport, nats_fleet: NatsFleet
) -> None:
    nc = await raw_client(nats_fleet)
    try:
        request = {"action": "switch", "revision": "main", "id": "unsigned-1"}
        [reply] = await collect(nc, "deploy.test.web1", json.dumps(request).encode())
        assert (reply["status"], reply["error"]) == ("rejected", "unsigned")
        # the test tier's deployer is not trusted by prod
        prod = {"action": "switch", "revision": "main", "id": "wrong-tier-1"}
        [reply] = await collect(
            nc,
            "deploy.prod.prod1",
            signed(nats_fleet, prod, "deployer-test", to="deploy.prod.prod1"),
        )
        assert (reply["status"], reply["error"]) == ("rejected", "key_not_allowed")
        tampered = json.loads(
            signed(nats_fleet, {**request, "id": "tamper-1"}, to="deploy.test.web1")
        )
        tampered["revision"] = "evil"
        [reply] = await collect(nc, "deploy.test.web1", json.dumps(tampered).encode())
        assert (reply["status"], reply["error"]) == ("rejected", "bad_signature")
        # signed for web2, handed to web1: refused
        elsewhere = signed(nats_fleet, {**request, "id": "elsewhere-1"}, to="deploy.test.web2")
        [moved] = await collect(nc, "deploy.test.web1", elsewhere)
        assert (moved["status"], moved["error"]) == ("rejected", "bad_signature")
        assert "received on 'deploy.test.web1'" in str(moved["message"])
        # every answer is signed by the host's own key
        assert reply["sig"]["key"] == read_seed_public(nats_fleet, "web1")
        # a confirmation is a deployer's word too
        [answer] = await collect(
            nc, "hlplay.confirm.test.web1", json.dumps({"id": "x1"}).encode(), until_final=False
        )
        assert answer["error"] == "unsigned"
    finally:
        await nc.close()  # type: ignore[attr-defined]


def read_seed_public(fleet: NatsFleet, name: str) -> str:
    import nkeys

    return str(nkeys.from_seed(read_seed(fleet.seed_file(name)).encode()).public_key.decode())


def forged_requests(fleet: NatsFleet, count: int) -> list[bytes]:
    """Requests that parse but must not run: unsigned, tampered, wrongly keyed, stale,
    malformed envelopes, replays."""
    import random

    rng = random.Random(12)
    admin = read_seed(fleet.seed_file("admin"))
    prod = read_seed(fleet.seed_file("deployer-prod"))
    host = read_seed(fleet.seed_file("web1"))  # a listener's key never deploys
    out: list[bytes] = []
    for i in range(count):
        doc: dict[str, object] = {"action": "switch", "revision": f"forged-{i}", "id": f"f-{i}"}
        kind = i % 8
        if kind == 0:
            out.append(json.dumps(doc).encode())
            continue
        seed = {1: prod, 2: host}.get(kind, admin)
        when = None
        if kind == 3:
            when = 1_000_000_000.0 + rng.random() * 1e6 * rng.choice((1, 1000))
        env = sign(doc, seed, now=when)
        if kind == 4:
            env["revision"] = "tampered"
        elif kind == 5:
            sig = dict(env["sig"])  # type: ignore[arg-type]
            field = rng.choice(["key", "ts", "sig", "nonce", "extra"])
            sig[field] = rng.choice([None, 0, "", "x" * rng.randint(1, 120), [], {}])
            env["sig"] = sig
        elif kind == 6:
            env["sig"] = rng.choice([None, 1, "sig", [], {"key": None}])
        elif kind == 7:
            env["options"] = {"lines": 1}  # added after signing
        out.append(json.dumps(env).encode())
    return out


async def test_a_thousand_forged_requests_run_nothing_and_a_signed_deploy_still_works(
    admin: NatsTransport, nats_fleet: NatsFleet
) -> None:
    web2 = nats_fleet.inventory.hosts["web2"]
    before = {d["hostname"]: d for d in await admin.discover(timeout=5)}["web2"]
    forged = forged_requests(nats_fleet, 1000)
    nc = await raw_client(nats_fleet)
    inbox = nc.new_inbox()  # type: ignore[attr-defined]
    replies: list[dict[str, object]] = []

    async def on_reply(msg: object) -> None:
        replies.append(json.loads(msg.data))  # type: ignore[attr-defined]

    await nc.subscribe(inbox, cb=on_reply)  # type: ignore[attr-defined]
    try:
        for payload in forged:
            await nc.publish("deploy.test.web2", payload, reply=inbox)  # type: ignore[attr-defined]
        await nc.flush()  # type: ignore[attr-defined]
        for _ in range(200):
            if len(replies) >= len(forged):
                break
            await asyncio.sleep(0.05)
        # a request that ran, sent again: refused, never run twice
        once = signed(
            nats_fleet,
            {"action": "switch", "revision": "once", "id": "replay-me"},
            to="deploy.test.web2",
        )
        ran = await collect(nc, "deploy.test.web2", once)
        again = await collect(nc, "deploy.test.web2", once)
    finally:
        await nc.close()  # type: ignore[attr-defined]
    assert len(replies) == len(forged)
    assert {r["status"] for r in replies} == {"rejected"}
    codes = {r["error"] for r in replies}
    assert codes <= {"unsigned", "bad_signature", "key_not_allowed", "stale_request"}, codes
    assert {"unsigned", "bad_signature", "key_not_allowed", "stale_request"} == codes
    assert ran[-1]["status"] == "completed"
    assert [r["status"] for r in again] == ["completed"]  # its stored final status
    assert again[0]["generation"] == ran[-1]["generation"]  # it did not run again
    after = {d["hostname"]: d for d in await admin.discover(timeout=5)}["web2"]
    assert after["generation"] == before["generation"] + 1  # only "once" ran
    out = await admin.deploy([web2], {"action": "switch", "revision": "after-forgery"}, timeout=20)
    assert out["web2"].status == "completed", out["web2"]
