"""The `audit` module, as a playbook task uses it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hlplay.inventory.model import Host, Inventory, NixSettings, Settings
from hlplay.modules.audit import Audit
from hlplay.modules.base import TaskContext

FIXTURES = Path(__file__).parent / "fixtures"


def _ctx(flake: str, check: bool = False) -> TaskContext:
    host = Host(name="localhost", tier="test", transport="local")
    inv = Inventory(
        hosts={"localhost": host}, groups={}, settings=Settings(nix=NixSettings(flake=flake))
    )
    transport: Any = None  # the module runs on the controller and never uses it
    return TaskContext(host=host, inventory=inv, vars={}, transport=transport, check_mode=check)


async def test_module_fails_on_findings_and_registers_them() -> None:
    mod = Audit()
    result = await mod.run(_ctx("."), {"path": str(FIXTURES / "bad" / "hosts" / "db1.nix")})
    assert result.failed
    assert not result.changed
    reg = result.to_dict()
    assert reg["counts"]["high"] == 4
    assert reg["blocking"] == 4
    assert [(f["line"], f["column"], f["rule"]) for f in reg["findings"]] == [
        (6, 7, "firewall-disabled"),
        (11, 7, "ssh-password-auth"),
        (14, 9, "ssh-root-login"),
        (20, 5, "sandbox-disabled"),
    ]
    assert "4 findings in 1 file" in reg["msg"]


async def test_module_defaults_to_the_inventory_flake_and_passes_when_clean() -> None:
    result = await Audit().run(_ctx(str(FIXTURES / "clean"), check=True), {})
    assert not result.failed
    assert result.data["files"] == 5
    assert result.data["findings"] == []
    assert result.data["path"] == str(FIXTURES / "clean")


async def test_module_threshold_rules_and_exclude() -> None:
    target = str(FIXTURES / "bad" / "pkgs" / "tool.nix")
    high = await Audit().run(_ctx("."), {"path": target, "severity": "high"})
    assert not high.failed and high.data["blocking"] == 0
    only = await Audit().run(_ctx("."), {"path": target, "rules": ["lookup-path"]})
    assert [f["rule"] for f in only.data["findings"]] == ["lookup-path"]
    without = await Audit().run(
        _ctx("."), {"path": target, "exclude": ["lookup-path", "fetch-without-hash"]}
    )
    assert {f["rule"] for f in without.data["findings"]} == {
        "fetchgit-without-rev", "import-from-derivation", "rec-attrset"
    }


async def test_module_reports_bad_arguments_as_a_failed_result() -> None:
    res = await Audit().run(_ctx("."), {"path": str(FIXTURES), "rules": ["nope"]})
    assert res.failed and "unknown audit rule 'nope'" in res.msg
    remote = await Audit().run(_ctx("github:example/config"), {})
    assert remote.failed and "not a local directory" in remote.msg
    missing = await Audit().run(_ctx("."), {"path": "/nonexistent/config"})
    assert missing.failed and "no such file or directory" in missing.msg


def test_module_declares_itself_for_the_engine() -> None:
    assert Audit.name == "audit"
    assert Audit.controller_side and Audit.supports_check
    assert set(Audit.args) >= {"path", "severity", "rules", "exclude"}
