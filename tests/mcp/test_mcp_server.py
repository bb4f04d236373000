"""The MCP server through an MCP client: tools, schemas, one-line errors, refusals.

The in-memory client talks to the server in-process; the stdio tests start
``hlplay mcp`` as a real process. Deploy refusals are checked against a real
nats-server: a refused deploy publishes nothing at all.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hlplay.auth.keys import new_seed
from hlplay.mcpserver.config import ServerConfig
from hlplay.mcpserver.server import build_server
from hlplay.natsserver import NatsServer
from mcp import Client, StdioServerParameters
from realparts import nats_server_bin, require

TOOLS = {
    "list_hosts",
    "targets",
    "discover",
    "diff",
    "generations",
    "health",
    "audit",
    "deploy",
    "deploy_admin",
}


@dataclass
class Fleet:
    root: Path
    inventory: Path
    test_seed: Path
    admin_seed: Path
    config_dir: Path

    def config(self, *, admin: bool = False, tiers: tuple[str, ...] = ("test",)) -> ServerConfig:
        return ServerConfig(
            inventory=(str(self.inventory),),
            test_credentials=self.test_seed,
            admin_credentials=self.admin_seed if admin else None,
            deploy_tiers=tiers,
        )


def write_fleet(root: Path, nats_url: str = "nats://127.0.0.1:1") -> Fleet:
    """An inventory of test, staging and prod hosts, NKey seeds and a Nix configuration."""
    config_dir = root / "config"
    (config_dir / "hosts").mkdir(parents=True)
    (config_dir / "flake.nix").write_text("{ outputs = { self }: { }; }\n")
    (config_dir / "hosts" / "web.nix").write_text("{ networking.firewall.enable = false; }\n")
    inv = root / "inventory" / "hosts.yml"
    inv.parent.mkdir()
    inv.write_text(
        textwrap.dedent(
            f"""\
            hlplay:
              nats:
                urls: [{nats_url}]
                credentials: ../keys/admin.seed
                timeout: 5
              nix:
                flake: ../config
            hosts:
              test-web1: {{tier: test, roles: [web]}}
              test-web2: {{tier: test, roles: [web]}}
              test-db1: {{tier: test, roles: [db]}}
              stage-web1: {{tier: staging, roles: [web]}}
              prod-web1: {{tier: prod, roles: [web]}}
              prod-db1: {{tier: prod, roles: [db]}}
              edge1:
                tier: test
                roles: [web]
                transport: ssh
                address: 127.0.0.1
                ssh: {{user: root, port: 1}}
            """
        )
    )
    keys = root / "keys"
    new_seed(keys / "deployer-test.seed")
    new_seed(keys / "admin.seed")
    return Fleet(root, inv, keys / "deployer-test.seed", keys / "admin.seed", config_dir)


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    return write_fleet(tmp_path)


async def call(client: Client, tool: str, **args: Any) -> tuple[bool, Any]:
    """(is_error, structured result or the error's text)."""
    res = await client.call_tool(tool, args)
    if res.is_error:
        text = res.content[0].text  # type: ignore[union-attr]
        return True, text
    return False, res.structured_content


def assert_one_line(text: str) -> None:
    assert "\n" not in text, text
    assert "Traceback" not in text


# -- tools and schemas -----------------------------------------------------------------


async def test_every_tool_is_listed_with_a_strict_schema(fleet: Fleet) -> None:
    async with Client(build_server(fleet.config())) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.description
        assert tool.input_schema["additionalProperties"] is False
    assert tools["deploy"].input_schema["required"] == ["limit"]
    assert "ctx" not in tools["deploy"].input_schema["properties"]
    assert tools["list_hosts"].annotations is not None
    assert tools["list_hosts"].annotations.read_only_hint is True
    assert tools["deploy"].annotations is not None
    assert tools["deploy"].annotations.destructive_hint is True


async def test_list_hosts_with_and_without_a_pattern(fleet: Fleet) -> None:
    async with Client(build_server(fleet.config())) as client:
        err, everything = await call(client, "list_hosts")
        assert not err
        assert everything["count"] == 7
        assert everything["deploy_tiers"] == ["test"]
        assert everything["admin"] is False
        rows = {r["name"]: r for r in everything["hosts"]}
        assert rows["prod-db1"]["tier"] == "prod"
        assert rows["prod-db1"]["roles"] == ["db"]
        assert rows["prod-db1"]["transport"] == "nats"
        assert rows["edge1"]["transport"] == "ssh"
        assert rows["edge1"]["address"] == "127.0.0.1"

        err, web = await call(client, "list_hosts", pattern="role=web,&tier=test")
        assert not err
        assert [r["name"] for r in web["hosts"]] == ["test-web1", "test-web2", "edge1"]


async def test_targets_compile_a_pattern_to_subjects_and_direct_hosts(fleet: Fleet) -> None:
    async with Client(build_server(fleet.config())) as client:
        err, plan = await call(client, "targets", pattern="tier=test")
        assert not err
        assert plan["nats"] == [
            {
                "subject": "deploy.test.all",
                "tier": "test",
                "kind": "tier",
                "hosts": ["test-web1", "test-web2", "test-db1"],
            }
        ]
        assert plan["direct"] == [{"host": "edge1", "transport": "ssh", "address": "127.0.0.1"}]
        assert plan["deploy_allowed"] is True

        err, plan = await call(client, "targets", pattern="role=web,&tier=test,!edge1")
        assert [t["subject"] for t in plan["nats"]] == ["deploy.test.role.web"]

        err, plan = await call(client, "targets", pattern="test-web*,prod-web1")
        assert plan["deploy_allowed"] is False


@pytest.mark.parametrize(
    ("tool", "args", "expected"),
    [
        ("targets", {"pattern": "tier=tset"}, "did you mean 'test'"),
        ("list_hosts", {"pattern": "test-wbe1"}, "did you mean 'test-web1'"),
        ("deploy", {"limit": "tset-web1"}, "did you mean 'test-web1'"),
        ("list_hosts", {"patern": "all"}, "unknown argument 'patern' (did you mean 'pattern'?)"),
        ("lst_hosts", {}, "unknown tool 'lst_hosts' (did you mean 'list_hosts'?)"),
        ("deploy", {}, "deploy: invalid arguments: limit: Field required"),
        ("generations", {"pattern": 3}, "pattern: Input should be a valid string"),
        ("deploy", {"limit": "tier=test", "serial": 0}, "serial: Input should be greater"),
        ("deploy", {"limit": "tier=test", "revision": "../main"}, "revision '../main'"),
        ("deploy", {"limit": "tier=test", "revision": "--upload-pack=x"}, "must not start with"),
        ("diff", {"pattern": "all", "revision": "a b"}, "revision 'a b'"),
        ("deploy", {"limit": "@/etc/hosts"}, "@file limits are not accepted"),
        ("targets", {"pattern": "web*\nall"}, "control characters"),
        ("audit", {"path": "../inventory"}, "outside the configuration repository"),
        ("audit", {"rules": ["firewal-disabled"]}, "did you mean 'firewall-disabled'"),
    ],
)
async def test_bad_input_is_a_one_line_tool_error(
    fleet: Fleet, tool: str, args: dict[str, Any], expected: str
) -> None:
    async with Client(build_server(fleet.config())) as client:
        err, text = await call(client, tool, **args)
    assert err
    assert expected in text
    assert_one_line(text)


async def test_audit_reports_findings_relative_to_the_configuration(fleet: Fleet) -> None:
    async with Client(build_server(fleet.config())) as client:
        err, report = await call(client, "audit")
        assert not err
        assert report["failed"] is True
        [finding] = report["findings"]
        assert finding["file"] == "hosts/web.nix"
        assert (finding["line"], finding["rule"]) == (1, "firewall-disabled")
        assert finding["severity"] == "high"

        err, report = await call(client, "audit", path="hosts", severity="critical")
        assert not err
        assert report["failed"] is False
        assert report["counts"]["high"] == 1


# -- the access model: refusals before anything runs --------------------------------------


@dataclass
class Watched:
    fleet: Fleet
    seen: list[str]


@pytest.fixture
async def watched(tmp_path: Path) -> AsyncIterator[Watched]:
    """A fleet whose nats-server records every subject anyone publishes to."""
    require(nats_server_bin(), "nats-server")
    import nats

    server = NatsServer(work_dir=tmp_path / "nats")
    server.start()
    nc = await nats.connect(server.url)
    seen: list[str] = []

    async def record(msg: Any) -> None:
        seen.append(msg.subject)

    await nc.subscribe(">", cb=record)
    await nc.flush()
    try:
        yield Watched(write_fleet(tmp_path, server.url), seen)
    finally:
        await nc.close()
        server.stop()


@pytest.mark.parametrize(
    "limit", ["all", "prod-web1", "role=web", "test-web1,prod-db1", "tier!=test", "stage-web1"]
)
async def test_deploy_reaching_beyond_the_test_tier_is_refused_and_nothing_runs(
    watched: Watched, limit: str
) -> None:
    async with Client(build_server(watched.fleet.config(admin=True))) as client:
        err, text = await call(client, "deploy", limit=limit)
        await asyncio.sleep(0.2)
    assert err
    assert "outside the test tier this tool deploys: nothing was run (use deploy_admin)" in text
    assert_one_line(text)
    assert watched.seen == []


async def test_allowed_tiers_widen_deploy_but_never_to_prod(watched: Watched) -> None:
    config = watched.fleet.config(tiers=("test", "staging"))
    async with Client(build_server(config)) as client:
        err, text = await call(client, "deploy", limit="stage-web1,prod-db1")
        assert err
        assert "prod-db1 (prod), outside the test/staging tiers" in text
        assert "stage-web1" not in text
        err, hosts = await call(client, "list_hosts")
        assert hosts["deploy_tiers"] == ["test", "staging"]
    assert watched.seen == []


async def test_deploy_admin_is_refused_without_admin_credentials(watched: Watched) -> None:
    async with Client(build_server(watched.fleet.config())) as client:
        err, text = await call(client, "deploy_admin", limit="prod-web1")
    assert err
    assert text == (
        "deploy_admin: not enabled: the server was started without --admin-credentials "
        "(deploy reaches the test tier)"
    )
    assert watched.seen == []


async def test_deploy_without_test_credentials_is_refused(watched: Watched) -> None:
    config = ServerConfig(inventory=(str(watched.fleet.inventory),))
    async with Client(build_server(config)) as client:
        err, text = await call(client, "deploy", limit="test-web1")
    assert err
    assert "no test-tier deployer credentials" in text
    assert watched.seen == []


async def test_discover_uses_the_servers_credentials_not_the_inventorys(watched: Watched) -> None:
    # this nats-server takes anyone: the request goes out and nobody answers
    async with Client(build_server(watched.fleet.config())) as client:
        err, found = await call(client, "discover", timeout=0.3)
    assert not err
    assert found["hosts"] == []
    assert found["missing"] == [
        "test-web1", "test-web2", "test-db1", "stage-web1", "prod-web1", "prod-db1",
    ]  # fmt: skip
    assert watched.seen == ["deploy.discover"]


# -- hlplay mcp, the command --------------------------------------------------------------


def hlplay(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hlplay.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_hlplay_mcp_serves_over_stdio(fleet: Fleet) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "hlplay.cli.main",
            "mcp",
            "-i",
            str(fleet.inventory),
            "--test-credentials",
            str(fleet.test_seed),
            "--admin-credentials",
            str(fleet.admin_seed),
        ],
        cwd=str(fleet.root),
        env={**os.environ, "HLPLAY_NO_COLOR": "1"},
    )
    async with Client(params) as client:
        err, hosts = await call(client, "list_hosts", pattern="tier=prod")
        assert not err
        assert [h["name"] for h in hosts["hosts"]] == ["prod-web1", "prod-db1"]
        assert hosts["admin"] is True
        err, text = await call(client, "targets", pattern="prod-wbe1")
        assert err
        assert "did you mean 'prod-web1'" in text
        res = await client.call_tool("list_hosts", {"pattern": "test-db1"})
        assert json.loads(res.content[0].text)["hosts"][0]["name"] == "test-db1"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--allow-tier", "tset"], "--allow-tier tset: no host of the inventory is in tier"),
        (["--test-credentials", "nope.seed"], "--test-credentials: nope.seed"),
        (["--admin-credentials", "inventory/hosts.yml"], "not an NKey user seed"),
        (["-i", "missing"], "missing"),
        # starts like a seed, is not one: refused at start, not at the first tool call
        (["--test-credentials", "forged.seed"], "forged.seed: not a valid NKey seed"),
        (["--playbook", "nowhere.yml"], "--playbook nowhere.yml: no such playbook file"),
    ],
)
def test_hlplay_mcp_bad_options_are_one_line(fleet: Fleet, args: list[str], expected: str) -> None:
    (fleet.root / "forged.seed").write_text("SUAforged\n")
    base = ["mcp", "-i", str(fleet.inventory)] if "-i" not in args else ["mcp"]
    res = hlplay(*base, *args, cwd=fleet.root)
    assert res.returncode != 0
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("ERROR: ")
    assert expected in lines[0]


def test_the_cli_does_not_load_mcp_until_asked(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from hlplay.cli.main import cli\n"
        "import hlplay.cli.mcp_cmd\n"
        "try:\n"
        "    cli.main(['--help'], standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('LOADED' if 'mcp' in sys.modules else 'NOT LOADED')\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "mcp  " in res.stdout  # listed in --help
    assert res.stdout.strip().endswith("NOT LOADED")
