"""Discovery answers on a ``reply_to`` in the request body, as homelab-deploy asks."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from fixtures.nats import NatsFleet
from hlplay.agent.listener import discovery_reply_to
from hlplay.auth.keys import read_seed

pytestmark = pytest.mark.nats

EVERYONE = {"web1", "web2", "db1", "prod1"}


async def admin_client(fleet: NatsFleet) -> Any:
    from nats.aio.client import Client

    nc = Client()
    await nc.connect(servers=[fleet.url], nkeys_seed_str=read_seed(fleet.seed_file("admin")))
    return nc


async def collect(nc: Any, subject: str, seen: list[str]) -> None:
    async def on_msg(msg: Any) -> None:
        seen.append(json.loads(msg.data)["hostname"])

    await nc.subscribe(subject, cb=on_msg)


async def settle(seen: list[str], hosts: set[str], extra: float = 0.5) -> None:
    for _ in range(250):
        if hosts <= set(seen):
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(extra)  # time for duplicates to show


async def test_discovery_answers_on_the_body_reply_to(nats_fleet: NatsFleet) -> None:
    nc = await admin_client(nats_fleet)
    reply = f"deploy.responses.{uuid.uuid4().hex}"
    seen: list[str] = []
    try:
        await collect(nc, reply, seen)
        await nc.publish("deploy.discover", json.dumps({"reply_to": reply}).encode())
        await nc.flush()
        await settle(seen, EVERYONE)
    finally:
        await nc.close()
    assert sorted(seen) == sorted(EVERYONE)


async def test_the_same_subject_in_body_and_message_gets_one_answer(
    nats_fleet: NatsFleet,
) -> None:
    nc = await admin_client(nats_fleet)
    reply = f"deploy.responses.{uuid.uuid4().hex}"
    other = f"deploy.responses.{uuid.uuid4().hex}"
    seen: list[str] = []
    seen_other: list[str] = []
    try:
        await collect(nc, reply, seen)
        await collect(nc, other, seen_other)
        await nc.publish("deploy.discover", json.dumps({"reply_to": reply}).encode(), reply=reply)
        await nc.publish("deploy.discover", json.dumps({"reply_to": other}).encode(), reply=reply)
        await nc.flush()
        await settle(seen_other, EVERYONE)
    finally:
        await nc.close()
    # reply: once for the first request, once for the second's NATS reply subject
    assert all(seen.count(h) == 2 for h in EVERYONE), seen
    assert sorted(seen_other) == sorted(EVERYONE)


async def test_an_unsound_body_reply_to_is_ignored(nats_fleet: NatsFleet) -> None:
    nc = await admin_client(nats_fleet)
    reply = f"deploy.responses.{uuid.uuid4().hex}"
    seen: list[str] = []
    try:
        await collect(nc, reply, seen)
        await nc.publish(
            "deploy.discover", json.dumps({"reply_to": "deploy.responses.>"}).encode(), reply=reply
        )
        await nc.flush()
        await settle(seen, EVERYONE)
    finally:
        await nc.close()
    assert sorted(seen) == sorted(EVERYONE)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"reply_to": "deploy.responses.abc"}', "deploy.responses.abc"),
        (b"{}", None),
        (b"", None),
        (b"not json", None),
        (b'["deploy.responses.abc"]', None),
        (b'{"reply_to": "deploy.*"}', None),
        (b'{"reply_to": "a b"}', None),
        (b'{"reply_to": 7}', None),
    ],
)
def test_discovery_reply_to_is_validated(body: bytes, expected: str | None) -> None:
    assert discovery_reply_to(body) == expected
