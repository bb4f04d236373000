"""``hlplay nats config``: tiered permissions a real nats-server enforces."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from hlplay.auth.keys import new_named, read_seed
from hlplay.auth.natsconfig import NatsConfigError, plan_users, render_config
from hlplay.cli.main import cli
from hlplay.inventory.model import Host, Inventory
from hlplay.natsserver import NatsServer
from realparts import nats_server_bin, require


def inventory() -> Inventory:
    hosts = [
        Host("web1", "test", ("web",)),
        Host("db1", "test", ("db",)),
        Host("web9", "prod", ("web", "edge")),
        Host("nas1", "prod", ("backup",), transport="ssh"),
    ]
    return Inventory(hosts={h.name: h for h in hosts}, groups={})


def keys(tmp_path: Path, names: list[str]) -> Path:
    for name in names:
        new_named(name, tmp_path)
    return tmp_path


def test_each_listener_may_subscribe_to_its_own_subjects_only(tmp_path: Path) -> None:
    users = {
        u.name: u
        for u in plan_users(
            inventory(), keys_dir=keys(tmp_path, ["web1", "db1", "web9", "admin", "deployer-test"])
        )
    }
    assert set(users) == {"web1", "db1", "web9", "admin", "deployer-test"}  # nas1: no listener
    web9 = users["web9"]
    assert web9.subscribe == (
        "deploy.prod.web9",
        "deploy.prod.all",
        "deploy.prod.role.web",
        "deploy.prod.role.edge",
        "deploy.discover",
        "hlplay.facts.prod.web9",
        "hlplay.confirm.prod.web9",
    )
    assert web9.publish == ("_INBOX.>", "deploy.responses.>")
    assert not web9.allow_responses  # it would let a requester choose where replies go
    test = users["deployer-test"]
    assert all(".test." in s or s == "deploy.discover" for s in test.publish)
    assert "deploy.discover" in test.publish
    assert set(users["admin"].publish) > set(test.publish)


def test_missing_listener_keys_are_named(tmp_path: Path) -> None:
    with pytest.raises(NatsConfigError, match=r"no NKey for listener host.*db1, web9"):
        plan_users(inventory(), keys_dir=keys(tmp_path, ["web1", "admin"]))


def test_a_host_nkey_variable_is_used_and_checked(tmp_path: Path) -> None:
    inv = inventory()
    public = new_named("elsewhere", tmp_path / "other")
    inv.hosts["db1"] = Host("db1", "test", ("db",), vars={"nkey": public})
    users = plan_users(inv, keys_dir=keys(tmp_path, ["web1", "web9", "admin"]))
    assert {u.name: u.nkey for u in users}["db1"] == public
    inv.hosts["db1"] = Host("db1", "test", ("db",), vars={"nkey": "not-a-key"})
    with pytest.raises(NatsConfigError, match="'nkey' is not an NKey user public key"):
        plan_users(inv, keys_dir=tmp_path)


def test_a_config_needs_someone_who_may_deploy(tmp_path: Path) -> None:
    with pytest.raises(NatsConfigError, match="no deployer key"):
        plan_users(inventory(), keys_dir=keys(tmp_path, ["web1", "db1", "web9"]))


async def test_the_server_enforces_the_tiers(tmp_path: Path) -> None:
    require(nats_server_bin(), "nats-server")
    import nats

    kdir = keys(tmp_path / "k", ["web1", "db1", "web9", "admin", "deployer-test"])
    config = render_config(inventory(), keys_dir=kdir)
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    async with NatsServer(config, work_dir=tmp_path / "srv") as server:

        async def connect(user: str) -> nats.NATS:
            return await nats.connect(
                server.url, nkeys_seed_str=read_seed(kdir / f"{user}.seed"), error_cb=on_error
            )

        listener, deployer = await connect("web1"), await connect("deployer-test")
        try:

            async def respond(msg: object) -> None:
                await msg.respond(b'{"status": "rejected"}')  # type: ignore[attr-defined]

            await listener.subscribe("deploy.test.web1", cb=respond)
            await listener.subscribe("deploy.test.db1")  # another host's subject
            await listener.publish("deploy.test.all", b"{}")  # listeners never deploy
            await listener.flush()
            await deployer.publish("deploy.prod.all", b"{}")
            await deployer.publish("deploy.test.all", b"{}")
            # a request whose reply subject is a prod deploy subject: the
            # listener's answer must not land there
            await deployer.publish("deploy.test.web1", b"{}", reply="deploy.prod.all")
            for nc in (listener, deployer):
                await nc.flush()
            for _ in range(400):  # the refusals come back asynchronously
                if len(errors) >= 4:
                    break
                await asyncio.sleep(0.05)
            # one more round trip each: a fifth refusal would be in by now
            for nc in (listener, deployer):
                await nc.flush()
        finally:
            await listener.close()
            await deployer.close()
    assert any('subscription to "deploy.test.db1"' in e for e in errors)
    assert any('publish to "deploy.test.all"' in e for e in errors)
    # once by the deployer, once by the listener answering onto it
    assert sum('publish to "deploy.prod.all"' in e for e in errors) == 2
    assert not any('"deploy.test.web1"' in e for e in errors)
    assert len(errors) == 4


def test_nats_config_cli_from_an_inventory_file(tmp_path: Path) -> None:
    inv = tmp_path / "hosts.yml"
    inv.write_text(
        textwrap.dedent("""\
        hosts:
          web1: {tier: test, roles: [web]}
          web2: {tier: prod, roles: [web]}
    """)
    )
    kdir = tmp_path / "keys"
    out = tmp_path / "auth.conf"
    runner = CliRunner()
    result = runner.invoke(cli, ["nats", "config", "-i", str(inv), "--keys-dir", str(kdir)])
    assert result.exit_code != 0
    assert f"{kdir}: no such keys directory" in str(result.exception or result.output)
    kdir.mkdir()
    result = runner.invoke(cli, ["nats", "config", "-i", str(inv), "--keys-dir", str(kdir)])
    assert result.exit_code != 0
    assert "no NKey for listener host(s) web1, web2" in str(result.exception or result.output)
    result = runner.invoke(
        cli,
        [
            "nats",
            "config",
            "-i",
            str(inv),
            "--keys-dir",
            str(kdir),
            "--new-keys",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.count("nkey:") == 5  # web1, web2, deployer-test, deployer-prod, admin
    assert (kdir / "deployer-prod.seed").exists()
    require(nats_server_bin(), "nats-server")
    with NatsServer(text, work_dir=tmp_path / "srv") as server:  # the server accepts it
        assert server.running
