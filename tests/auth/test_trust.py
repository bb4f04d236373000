"""Trusted deployer keys per tier, and each host's own key, from the inventory and real keys."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hlplay.auth.keys import generate, new_named
from hlplay.auth.trust import (
    TrustFileError,
    host_public_key,
    listener_keys,
    load_allowed_keys,
    parse_allowed_keys,
    tier_deployers,
    write_trust_files,
)
from hlplay.cli.main import cli
from hlplay.errors import Location
from hlplay.inventory.model import Host, Inventory
from hlplay.protocol.messages import ErrorCode
from hlplay.protocol.signing import SignatureError, sign, verify


def inventory(**web1_vars: str) -> Inventory:
    hosts = [
        Host("web1", "test", ("web",), vars=dict(web1_vars), location=Location("hosts.yml", 3)),
        Host("db1", "test", ("db",)),
        Host("web9", "prod", ("web",)),
        Host("nas1", "prod", (), transport="ssh"),
    ]
    return Inventory(hosts={h.name: h for h in hosts}, groups={})


def test_each_tier_trusts_its_deployer_and_the_admin(tmp_path: Path) -> None:
    admin = new_named("admin", tmp_path)
    test = new_named("deployer-test", tmp_path)
    trust = tier_deployers(inventory(), keys_dir=tmp_path)
    assert trust == {"test": (test, admin), "prod": (admin,)}


def test_trust_files_round_trip_and_refuse_the_other_tier(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    admin = new_named("admin", keys)
    test_pub = new_named("deployer-test", keys)
    prod_pub = new_named("deployer-prod", keys)
    written = write_trust_files(tmp_path / "trust", tier_deployers(inventory(), keys_dir=keys))
    assert [p.name for p in written] == ["test.deployers", "prod.deployers"]
    prod = load_allowed_keys(tmp_path / "trust" / "prod.deployers")
    assert prod == {prod_pub, admin}
    assert load_allowed_keys(tmp_path / "trust" / "test.deployers") == {test_pub, admin}

    # a request the test deployer signed is refused by a prod listener
    seed = (keys / "deployer-test.seed").read_text().strip()
    doc = sign({"action": "switch", "revision": "main", "id": "r1"}, seed)
    with pytest.raises(SignatureError) as info:
        verify(doc, prod)
    assert info.value.code == ErrorCode.KEY_NOT_ALLOWED


def test_a_tier_without_keys_trusts_nobody(tmp_path: Path) -> None:
    new_named("deployer-test", tmp_path / "keys")
    trust = tier_deployers(inventory(), keys_dir=tmp_path / "keys")
    assert trust["prod"] == ()
    write_trust_files(tmp_path, trust)
    assert "accept no request" in (tmp_path / "prod.deployers").read_text()
    assert load_allowed_keys(tmp_path / "prod.deployers") == frozenset()


def test_given_keys_win_and_may_be_several(tmp_path: Path) -> None:
    new_named("admin", tmp_path)
    old, new = generate()[1], generate()[1]
    trust = tier_deployers(inventory(), keys_dir=tmp_path, keys={"admin": [old, new]})
    assert trust["prod"] == (old, new)


def test_comments_and_blank_lines_are_ignored() -> None:
    key = generate()[1]
    text = f"# deployers\n\n  {key}  # ci\n{key}\n"
    assert parse_allowed_keys(text) == {key}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not-a-key", "not an NKey public key"),
        ("U" + "A" * 55, "not an NKey public key"),  # shape right, checksum wrong
        ("A" + "B" * 55, "not an NKey public key"),  # an account key
    ],
)
def test_a_malformed_key_is_reported_with_file_and_line(
    tmp_path: Path, line: str, message: str
) -> None:
    good = generate()[1]
    path = tmp_path / "prod.deployers"
    path.write_text(f"# header\n{good}\n\n{line}\n")
    with pytest.raises(TrustFileError) as info:
        load_allowed_keys(path)
    assert str(info.value).startswith(f"{path}:4: ")
    assert message in str(info.value)


def test_a_broken_checksum_is_not_a_key(tmp_path: Path) -> None:
    good = generate()[1]
    broken = good[:-1] + ("A" if good[-1] != "A" else "B")
    path = tmp_path / "t.deployers"
    path.write_text(broken + "\n")
    with pytest.raises(TrustFileError, match=":1: not an NKey public key"):
        load_allowed_keys(path)


def test_a_seed_in_a_trust_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    seed, _ = generate()
    path = tmp_path / "t.deployers"
    path.write_text(seed + "\n")
    with pytest.raises(TrustFileError) as info:
        load_allowed_keys(path)
    assert f"{path}:1:" in str(info.value) and "seed" in str(info.value)
    assert seed not in str(info.value)


def test_unreadable_trust_files_are_reported(tmp_path: Path) -> None:
    with pytest.raises(TrustFileError, match="cannot read"):
        load_allowed_keys(tmp_path / "missing.deployers")
    (tmp_path / "bin.deployers").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(TrustFileError, match="not UTF-8"):
        load_allowed_keys(tmp_path / "bin.deployers")


def test_host_keys_come_from_vars_then_the_keys_dir(tmp_path: Path) -> None:
    nats_key = new_named("web1", tmp_path)
    web9 = new_named("web9", tmp_path)
    inv = inventory()
    assert host_public_key(inv, "web1", keys_dir=tmp_path) == nats_key
    assert host_public_key(inv, "web1") is None
    signing_key = generate()[1]
    inv = inventory(hlplay_listener_key=signing_key, nkey=nats_key)
    assert host_public_key(inv, "web1", keys_dir=tmp_path) == signing_key
    inv = inventory(nkey=nats_key)
    assert host_public_key(inv, "web1") == nats_key
    assert listener_keys(inv, keys_dir=tmp_path) == {"web1": nats_key, "db1": None, "web9": web9}


def test_a_malformed_host_key_names_the_host_and_its_file() -> None:
    inv = inventory(hlplay_listener_key="UNOTAKEY")
    with pytest.raises(TrustFileError) as info:
        host_public_key(inv, "web1")
    assert str(info.value).startswith("hosts.yml:3: host web1: 'hlplay_listener_key'")
    with pytest.raises(TrustFileError, match="no host"):
        host_public_key(inv, "nope")


def test_nats_config_writes_the_trust_files(tmp_path: Path) -> None:
    inv = tmp_path / "inventory.yml"
    inv.write_text(
        textwrap.dedent(
            """\
            hosts:
              web1: {tier: test}
              web9: {tier: prod}
            """
        )
    )
    keys, trust = tmp_path / "keys", tmp_path / "trust"
    args = ["nats", "config", "-i", str(inv), "--keys-dir", str(keys), "--new-keys"]
    result = CliRunner().invoke(cli, [*args, "--trust-dir", str(trust)])
    assert result.exit_code == 0, result.output
    admin = (keys / "admin.pub").read_text().strip()
    prod = (keys / "deployer-prod.pub").read_text().strip()
    assert load_allowed_keys(trust / "prod.deployers") == {prod, admin}
    assert admin in load_allowed_keys(trust / "test.deployers")
    assert f"wrote {trust / 'prod.deployers'}" in result.output


def test_trust_holds_on_a_server_with_no_authorization(tmp_path: Path) -> None:
    # The server lets anyone publish anywhere; the prod trust file still decides.
    import asyncio
    import json

    import nats

    from hlplay.auth.keys import read_seed
    from hlplay.natsserver import NatsServer
    from hlplay.protocol.signing import ReplayGuard
    from realparts import nats_server_bin, require

    require(nats_server_bin(), "nats-server")
    keys = tmp_path / "keys"
    for name in ("admin", "deployer-test", "deployer-prod"):
        new_named(name, keys)
    write_trust_files(tmp_path / "trust", tier_deployers(inventory(), keys_dir=keys))
    prod = load_allowed_keys(tmp_path / "trust" / "prod.deployers")

    async def scenario() -> list[str]:
        verdicts: list[str] = []
        guard = ReplayGuard()
        got = asyncio.Event()
        async with NatsServer(None, work_dir=tmp_path / "srv") as server:
            listener = await nats.connect(server.url)
            sender = await nats.connect(server.url)

            async def on_request(msg: Any) -> None:
                try:
                    verify(json.loads(msg.data), prod, guard=guard)
                    verdicts.append("accepted")
                except SignatureError as exc:
                    verdicts.append(exc.code.value)
                got.set()

            await listener.subscribe("deploy.prod.all", cb=on_request)
            await listener.flush()

            async def send(payload: bytes) -> None:
                got.clear()
                await sender.publish("deploy.prod.all", payload)
                await asyncio.wait_for(got.wait(), 5)

            base = {"action": "switch", "revision": "main", "reply_to": "_INBOX.x.1"}
            test_seed = read_seed(keys / "deployer-test.seed")
            admin_seed = read_seed(keys / "admin.seed")
            await send(json.dumps(sign({**base, "id": "a"}, test_seed)).encode())
            await send(json.dumps(base | {"id": "b"}).encode())
            signed = json.dumps(sign({**base, "id": "c"}, admin_seed)).encode()
            await send(signed)
            await send(signed)  # the same bytes again
            await listener.close()
            await sender.close()
        return verdicts

    verdicts = asyncio.run(scenario())
    assert verdicts == ["key_not_allowed", "unsigned", "accepted", "replayed"]
