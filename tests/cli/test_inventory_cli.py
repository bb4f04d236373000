"""``hlplay inventory list|hosts|graph|targets|host`` as a user runs them."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from hlplay.cli.main import main

REPO = Path(__file__).resolve().parents[2]
FLEET = str(REPO / "inventory")


@dataclass
class Result:
    code: int
    out: str
    err: str


def run(capsys: pytest.CaptureFixture[str], *args: str) -> Result:
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    got = capsys.readouterr()
    return Result(code, got.out, got.err)


@pytest.fixture
def small(tmp_path: Path) -> str:
    (tmp_path / "hosts.yml").write_text(
        textwrap.dedent(
            """
            vars: {site: home}
            hosts:
              web1: {tier: prod, roles: [web]}
              web2: {tier: prod, roles: [web], vars: {port: 8080}}
              db1: {tier: prod, roles: [db]}
              lab1: {tier: test, transport: ssh, address: 10.0.0.5, ssh: {user: ops, port: 2222}}
            groups:
              webservers: {hosts: [web1, web2]}
              backend: {children: [databases]}
              databases: {hosts: [db1]}
            """
        )
    )
    return str(tmp_path)


def test_list(capsys: pytest.CaptureFixture[str], small: str) -> None:
    r = run(capsys, "inventory", "list", "-i", small)
    assert r.code == 0, r.err
    assert r.out == (
        "HOST  TIER  ROLES  TRANSPORT  ADDRESS\n"
        "web1  prod  web    nats       web1\n"
        "web2  prod  web    nats       web2\n"
        "db1   prod  db     nats       db1\n"
        "lab1  test  -      ssh        ops@10.0.0.5:2222\n"
    )


def test_list_json_with_vars_and_extra_vars(capsys: pytest.CaptureFixture[str], small: str) -> None:
    r = run(capsys, "inventory", "list", "-i", small, "-l", "web2", "--json", "--vars", "-e", "x=1")
    assert r.code == 0, r.err
    (host,) = json.loads(r.out)
    assert host["name"] == "web2"
    assert host["groups"] == ["role_web", "tier_prod", "webservers"]
    assert host["vars"]["port"] == 8080
    assert host["vars"]["site"] == "home"
    assert host["vars"]["x"] == "1"


def test_hosts_one_per_line(capsys: pytest.CaptureFixture[str], small: str) -> None:
    r = run(capsys, "inventory", "hosts", "-i", small)
    assert r.out == "web1\nweb2\ndb1\nlab1\n"
    r = run(capsys, "inventory", "hosts", "-i", small, "tier=prod", "-l", "!webservers")
    assert r.out == "db1\n"
    r = run(capsys, "inventory", "hosts", "-i", small, "backend", "--json")
    assert json.loads(r.out) == ["db1"]


def test_limit_leaving_no_host_is_an_error(capsys: pytest.CaptureFixture[str], small: str) -> None:
    r = run(capsys, "inventory", "hosts", "-i", small, "webservers", "-l", "db1")
    assert r.code == 1
    assert r.err == "ERROR: limit 'db1' leaves none of the hosts matching 'webservers'\n"


def test_graph_like_ansible_inventory(capsys: pytest.CaptureFixture[str], small: str) -> None:
    r = run(capsys, "inventory", "graph", "-i", small)
    assert r.code == 0, r.err
    assert r.out == textwrap.dedent(
        """\
        @all:
          |--@backend:
          |  |--@databases:
          |  |  |--db1
          |--@webservers:
          |  |--web1
          |  |--web2
          |--@ungrouped:
          |  |--lab1
          |--@tier_prod:
          |  |--db1
          |  |--web1
          |  |--web2
          |--@tier_test:
          |  |--lab1
          |--@role_db:
          |  |--db1
          |--@role_web:
          |  |--web1
          |  |--web2
        """
    )
    r = run(capsys, "inventory", "graph", "-i", small, "webservers", "--vars")
    assert r.out == "@webservers:\n  |--web1\n  |--web2\n  |  |--{port = 8080}\n"
    r = run(capsys, "inventory", "graph", "-i", small, "-l", "tier=test", "--json")
    tree = json.loads(r.out)
    assert [c["name"] for c in tree["children"]] == ["ungrouped", "tier_test"]


def test_graph_of_unknown_group(capsys: pytest.CaptureFixture[str], small: str) -> None:
    r = run(capsys, "inventory", "graph", "-i", small, "webserver")
    assert r.code == 1
    assert r.err == "ERROR: no group named 'webserver' (did you mean 'webservers'?)\n"


def test_targets(capsys: pytest.CaptureFixture[str], small: str) -> None:
    r = run(capsys, "inventory", "targets", "-i", small)
    assert r.code == 0, r.err
    assert r.out == (
        "VIA   TARGET             KIND  HOSTS\n"
        "nats  deploy.prod.all    tier  web1 web2 db1\n"
        "ssh   ops@10.0.0.5:2222  host  lab1\n"
        "\n"
        "4 hosts: 1 NATS subject, 1 direct\n"
    )
    r = run(capsys, "inventory", "targets", "-i", small, "webservers", "--json")
    assert json.loads(r.out) == {
        "nats": [
            {
                "subject": "deploy.prod.role.web",
                "tier": "prod",
                "kind": "role",
                "hosts": ["web1", "web2"],
            }
        ],
        "direct": [],
    }


def test_host_variables(capsys: pytest.CaptureFixture[str], small: str) -> None:
    r = run(capsys, "inventory", "host", "web2", "-i", small, "-e", '{"port": 9}')
    assert r.code == 0, r.err
    got = json.loads(r.out)
    assert (got["port"], got["site"], got["inventory_hostname"]) == (9, "home", "web2")


def test_bad_extra_vars_exit_5(capsys: pytest.CaptureFixture[str], small: str) -> None:
    r = run(capsys, "inventory", "list", "-i", small, "-e", "oops")
    assert r.code == 5
    assert (
        r.err == "ERROR: -e 'oops': expected key=value, a JSON/YAML object or @file, got 'oops'\n"
    )


def test_default_inventory_and_env(
    capsys: pytest.CaptureFixture[str], small: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    r = run(capsys, "inventory", "hosts")
    assert r.code == 0, r.err
    assert "prod-web1" in r.out.split()
    monkeypatch.setenv("HLPLAY_INVENTORY", small)
    r = run(capsys, "inventory", "hosts")
    assert r.out == "web1\nweb2\ndb1\nlab1\n"


def test_example_fleet_targets(capsys: pytest.CaptureFixture[str]) -> None:
    r = run(capsys, "inventory", "targets", "-i", FLEET, "-l", "tier=test", "--json")
    assert r.code == 0, r.err
    plan = json.loads(r.out)
    assert [t["subject"] for t in plan["nats"]] == ["deploy.test.all"]
    assert [d["host"] for d in plan["direct"]] == ["test-web2"]
    r = run(capsys, "inventory", "targets", "-i", FLEET, "tier=prod,&role=web", "--json")
    assert [t["subject"] for t in json.loads(r.out)["nats"]] == ["deploy.prod.role.web"]


def test_help_lists_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    r = run(capsys, "inventory", "--help")
    assert r.code == 0
    for name in ("list", "hosts", "graph", "targets", "host"):
        assert f"  {name} " in r.out
