"""The MCP server on the built-in lab: real listeners, nats-server, sshd and Nix.

One lab for the whole story, as an assistant would tell it: look (diff,
discover), be refused beyond the test tier, deploy the test tier, look again.
"""

from __future__ import annotations

from typing import Any

import pytest

from fixtures.lab import REPO, LabEnv
from hlplay.mcpserver.config import ServerConfig
from hlplay.mcpserver.server import build_server
from mcp import Client

pytestmark = [pytest.mark.slow, pytest.mark.nix, pytest.mark.nats]

TEST_HOSTS = ["test-web1", "test-db1", "test-mon1", "test-web2"]
PROD_HOSTS = ["prod-web1", "prod-db1", "prod-mon1"]


def config_for(lab: LabEnv, *, admin: bool = False) -> ServerConfig:
    keys = lab.state / "keys"
    return ServerConfig(
        inventory=(str(lab.inventory),),
        test_credentials=keys / "deployer-test.seed",
        admin_credentials=(keys / "admin.seed") if admin else None,
        playbook=REPO / "playbooks" / "deploy-all.yml",
    )


async def call(client: Client, tool: str, **args: Any) -> tuple[bool, Any]:
    res = await client.call_tool(tool, args)
    if res.is_error:
        return True, res.content[0].text  # type: ignore[union-attr]
    return False, res.structured_content


async def test_an_assistant_diffs_then_deploys_the_test_tier(lab_factory) -> None:  # type: ignore[no-untyped-def]
    lab: LabEnv = lab_factory()
    generations = {h: lab.current_generation(h) for h in TEST_HOSTS + PROD_HOSTS}
    assert set(generations.values()) == {1}

    async with Client(build_server(config_for(lab))) as client:
        diff = await call(client, "diff", pattern="tier=test")
        after_diff = {h: lab.current_generation(h) for h in generations}
        refused_all = await call(client, "deploy", limit="all")
        refused_prod = await call(client, "deploy", limit="prod-web1", revision="main")
        refused_admin = await call(client, "deploy_admin", limit="prod-web1")
        prod_diff = await call(client, "diff", pattern="prod-web1")
        after_refusals = {h: lab.current_generation(h) for h in generations}
        notes: list[str] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            notes.append(message or "")

        res = await client.call_tool(
            "deploy", {"limit": "tier=test"}, progress_callback=on_progress
        )
        deployed: tuple[bool, Any] = (res.is_error, res.structured_content or res.content[0].text)  # type: ignore[union-attr]
        found = await call(client, "discover")
        gens = await call(client, "generations", pattern="test-web1,prod-web1")
        health = await call(client, "health", pattern="tier=test")

    # diff: the pending nginx-lite upgrade on both web hosts, nothing activated
    err, doc = diff
    assert not err, doc
    assert doc["summary"] == {
        "hosts": 4, "changed": 2, "unchanged": 2, "failed": 0, "unreachable": 0,
    }  # fmt: skip
    for web in ("test-web1", "test-web2"):
        entry = doc["hosts"][web]
        assert entry["status"] == "changed"
        assert entry["generation"] == 1
        [change] = entry["diff"]["changes"]
        assert (change["pname"], change["state"]) == ("nginx-lite", "U")
        assert (change["before"], change["after"]) == (["1.24.0"], ["1.25.3"])
        assert "nginx-lite  1.24.0 -> 1.25.3" in entry["text"]
    assert doc["hosts"]["test-db1"]["status"] == "unchanged"
    assert after_diff == generations

    # beyond the test tier: refused before anything runs
    for err, text in (refused_all, refused_prod):
        assert err
        assert "prod-web1 (prod)" in text
        assert "nothing was run" in text
    assert refused_admin == (
        True,
        "deploy_admin: not enabled: the server was started without --admin-credentials "
        "(deploy reaches the test tier)",
    )
    # and the NATS server itself refuses the test deployer anything in prod
    err, doc = prod_diff
    assert not err, doc
    assert doc["hosts"]["prod-web1"]["status"] == "failed"
    assert doc["hosts"]["prod-web1"]["error"] == "permission_denied"
    assert after_refusals == generations

    # deploy tier=test: the web hosts move on (over NATS and over SSH), nothing else
    err, run = deployed
    assert not err, run
    assert run["ok"] is True
    assert run["exit_code"] == 0
    assert run["credentials"] == "test"
    assert run["hosts"] == TEST_HOSTS
    assert not set(run["recap"]) & set(PROD_HOSTS)
    assert run["recap"]["test-web1"]["changed"] >= 1
    assert run["recap"]["test-db1"]["changed"] == 0
    assert run["failures"] == []
    assert "play: Prerequisites (4 hosts)" in notes
    assert "task: Activate, check health, roll back on failure" in notes
    rows = {r["host"]: r for r in run["report"]}
    assert rows["test-web1"]["result"] == "deployed"
    assert (rows["test-web1"]["old gen"], rows["test-web1"]["new gen"]) == (1, 2)
    assert rows["test-web2"]["result"] == "deployed"
    assert rows["test-db1"]["result"] == "unchanged"
    assert lab.current_generation("test-web1") == 2
    assert lab.current_generation("test-web2") == 2
    assert lab.current_generation("test-db1") == 1
    assert lab.current_generation("test-mon1") == 1
    assert all(lab.current_generation(h) == 1 for h in PROD_HOSTS)
    assert lab.units("test-web1").get("nginx.service") == "active"

    # what runs now, as the listeners and generations tell it
    err, doc = found
    assert not err, doc
    by_host = {row["hostname"]: row for row in doc["hosts"]}
    assert set(by_host) == set(TEST_HOSTS + PROD_HOSTS) - {"test-web2"}  # no listener
    assert doc["missing"] == []
    assert by_host["test-web1"]["generation"] == 2
    assert by_host["prod-web1"]["generation"] == 1
    assert not any(row["busy"] for row in doc["hosts"])
    err, doc = gens
    assert not err, doc
    assert doc["hosts"]["test-web1"]["current"]["generation"] == 2
    # prod facts are not the test deployer's to read
    assert "may not publish to hlplay.facts.prod.prod-web1" in doc["hosts"]["prod-web1"]["error"]
    err, doc = health
    assert not err, doc
    assert doc["healthy"] is True
    assert doc["verdict"].startswith("healthy: 4 hosts")
    rows = {r["host"]: r for r in doc["rows"]}
    assert set(rows) == set(TEST_HOSTS)
    assert rows["test-web2"]["reachable"] is True
    assert (rows["test-web1"]["generation"], rows["test-db1"]["generation"]) == (2, 1)
    assert doc["fleet"]["discovery"]["missing"] == []


async def test_deploy_admin_reaches_prod_with_the_admin_credentials(lab_factory) -> None:  # type: ignore[no-untyped-def]
    lab: LabEnv = lab_factory()
    async with Client(build_server(config_for(lab, admin=True))) as client:
        refused = await call(client, "deploy", limit="prod-web1")
        dry = await call(client, "deploy_admin", limit="prod-web1", check=True)
        listed = await call(client, "list_hosts")

    err, text = refused
    assert err
    assert "nothing was run (use deploy_admin)" in text
    err, run = dry
    assert not err, run
    assert run["ok"] is True
    assert run["credentials"] == "admin"
    assert run["check"] is True
    [row] = run["report"]
    assert row["result"] == "not deployed"
    assert row["diff"].startswith("1 upgraded")
    assert lab.current_generation("prod-web1") == 1
    assert listed[1]["admin"] is True
