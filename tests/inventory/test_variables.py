"""Variable precedence, host facts, and -e extra vars."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from hlplay.errors import HlplayError, OptionsError, SelectionError
from hlplay.inventory.loader import load_inventory
from hlplay.inventory.variables import host_variables, parse_extra_vars

# lowest first: the documented merge order
LEVELS = [
    "all_inline",
    "all_file",
    "tier_file",
    "role_web_file",
    "role_db_file",
    "parent_inline",
    "parent_file",
    "child_inline",
    "child_file",
    "host_inline",
    "host_file",
    "extra",
]


def _level_vars(i: int) -> dict[str, str]:
    """Level i sets k_i … k_last; k_j must end up holding the value of level j."""
    return {f"k{j}": LEVELS[i] for j in range(i, len(LEVELS))}


def _yaml(d: dict[str, str]) -> str:
    return json.dumps(d)  # JSON is YAML


def test_merge_order(tree: Callable[..., Path]) -> None:
    lv = {name: _yaml(_level_vars(i)) for i, name in enumerate(LEVELS)}
    root = tree(
        {
            "hosts.yml": f"""
            vars: {lv["all_inline"]}
            hosts:
              web1:
                tier: prod
                roles: [web, db]
                vars: {lv["host_inline"]}
            groups:
              # declared child first, and named to sort before its parent: depth decides
              a_child: {{hosts: [web1], vars: {lv["child_inline"]}}}
              z_parent: {{children: [a_child], vars: {lv["parent_inline"]}}}
            """,
            "group_vars/all.yml": lv["all_file"],
            "group_vars/tier_prod.yml": lv["tier_file"],
            "group_vars/role_web.yml": lv["role_web_file"],
            "group_vars/role_db.yml": lv["role_db_file"],
            "group_vars/z_parent.yml": lv["parent_file"],
            "group_vars/a_child.yml": lv["child_file"],
            "host_vars/web1.yml": lv["host_file"],
        }
    )
    inv = load_inventory(root)
    assert inv.group_chain["web1"] == [
        "all",
        "tier_prod",
        "role_web",
        "role_db",
        "z_parent",
        "a_child",
    ]
    got = host_variables(inv, "web1", _level_vars(LEVELS.index("extra")))
    assert {k: got[k] for k in sorted(got) if k.startswith("k")} == {
        f"k{j}": LEVELS[j] for j in range(len(LEVELS))
    }


def test_siblings_merge_by_priority_then_name(tree: Callable[..., Path]) -> None:
    root = tree(
        {
            "hosts.yml": """
            hosts: {web1: {}, web2: {}}
            groups:
              b: {hosts: [web1, web2], vars: {who: b}}
              a: {hosts: [web1, web2], vars: {who: a}}
              c: {hosts: [web2], vars: {who: c, ansible_group_priority: 0}}
            """
        }
    )
    inv = load_inventory(root)
    assert host_variables(inv, "web1")["who"] == "b"  # same depth: by name, b after a
    assert host_variables(inv, "web2")["who"] == "b"  # c has a lower priority: merged first
    assert inv.group_chain["web2"] == ["all", "tier_default", "c", "a", "b"]


def test_ungrouped_hosts_get_ungrouped_vars(tree: Callable[..., Path]) -> None:
    root = tree(
        {
            "hosts.yml": "hosts: {lone: {}, grouped: {}}\ngroups: {g: {hosts: [grouped]}}\n",
            "group_vars/ungrouped.yml": "alone: true\n",
        }
    )
    inv = load_inventory(root)
    assert host_variables(inv, "lone")["alone"] is True
    assert "alone" not in host_variables(inv, "grouped")


def test_group_vars_folder_merges_files_in_order(tree: Callable[..., Path]) -> None:
    root = tree(
        {
            "hosts.yml": "hosts: {web1: {roles: [web]}}\n",
            "group_vars/role_web/10-base.yml": "port: 80\nname: base\n",
            "group_vars/role_web/20-tls.yaml": "port: 443\n",
            "host_vars/web1/main.yml": "name: mine\n",
        }
    )
    got = host_variables(load_inventory(root), "web1")
    assert (got["port"], got["name"]) == (443, "mine")


def test_host_facts_and_magic(tree: Callable[..., Path]) -> None:
    root = tree(
        {
            "hosts.yml": """
            vars: {tier: wrong, roles: wrong}
            hosts:
              web1: {tier: prod, roles: [web], address: 10.0.0.1}
            """
        }
    )
    inv = load_inventory(root)
    got = host_variables(inv, "web1")
    assert got["inventory_hostname"] == "web1"
    assert got["inventory_hostname_short"] == "web1"
    assert (got["tier"], got["roles"], got["transport"]) == ("prod", ["web"], "nats")
    assert got["address"] == got["ansible_host"] == "10.0.0.1"
    # extra vars override facts, never inventory_hostname
    got = host_variables(inv, "web1", {"tier": "x", "inventory_hostname": "evil"})
    assert got["tier"] == "x"
    assert got["inventory_hostname"] == "web1"
    # the inventory is not changed by what a caller does with the result
    got["new"] = 1
    assert "new" not in host_variables(inv, "web1")


def test_host_variables_of_unknown_host(tree: Callable[..., Path]) -> None:
    inv = load_inventory(tree({"hosts.yml": "hosts: {web1: {}}\n"}))
    with pytest.raises(SelectionError, match=r"unknown host 'wbe1' \(did you mean 'web1'\?\)"):
        host_variables(inv, "wbe1")


class TestExtraVars:
    def test_key_value_pairs_are_strings(self) -> None:
        assert parse_extra_vars(["a=1 b='two words' c="]) == {"a": "1", "b": "two words", "c": ""}

    def test_json_and_yaml_objects(self) -> None:
        assert parse_extra_vars(['{"n": 1, "l": [1, 2]}']) == {"n": 1, "l": [1, 2]}
        assert parse_extra_vars(["{n: 1, flag: true}"]) == {"n": 1, "flag": True}

    def test_files(self, tmp_path: Path) -> None:
        (tmp_path / "v.yml").write_text("rev: main\nhosts: [a, b]\n")
        (tmp_path / "v.json").write_text('{"rev": "v2"}')
        assert parse_extra_vars([f"@{tmp_path}/v.yml"]) == {"rev": "main", "hosts": ["a", "b"]}
        assert parse_extra_vars([f"@{tmp_path}/v.yml", f"@{tmp_path}/v.json"])["rev"] == "v2"

    def test_later_values_win(self) -> None:
        assert parse_extra_vars(["a=1", '{"a": 2}', "a=3 b=4"]) == {"a": "3", "b": "4"}

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            ("foo", "-e 'foo': expected key=value, a JSON/YAML object or @file, got 'foo'"),
            ("my-var=1", "-e 'my-var=1': invalid variable name 'my-var'"),
            ("a='unclosed", '-e "a=\'unclosed": No closing quotation'),
            ('{"a": 1', "-e '{\"a\": 1': invalid YAML: "),
            ("@", "-e @: a file name must follow '@'"),
        ],
    )
    def test_bad_values(self, value: str, message: str) -> None:
        with pytest.raises(OptionsError) as info:
            parse_extra_vars([value])
        assert str(info.value).startswith(message), str(info.value)
        assert info.value.exit_code == 5

    def test_file_errors_are_located(self, tmp_path: Path) -> None:
        (tmp_path / "list.yml").write_text("- a\n- b\n")
        (tmp_path / "bad.yml").write_text("a: [\n")
        with pytest.raises(OptionsError, match="extra vars file must hold a mapping, got a list"):
            parse_extra_vars([f"@{tmp_path}/list.yml"])
        with pytest.raises(HlplayError) as info:
            parse_extra_vars([f"@{tmp_path}/bad.yml"])
        assert str(info.value).startswith(f"{tmp_path}/bad.yml:2:1: invalid YAML")
        with pytest.raises(HlplayError) as info:
            parse_extra_vars([f"@{tmp_path}/missing.yml"])
        assert str(info.value) == f"{tmp_path}/missing.yml: no such file"


def test_inventory_built_in_code_merges_group_vars() -> None:
    from hlplay.inventory.model import Group, Host, Inventory

    inv = Inventory(
        hosts={"a": Host("a", "prod", vars={"own": 1}), "b": Host("b", "test")},
        groups={
            "all": Group("all", vars={"x": "all", "y": "all"}, implicit=True),
            "parent": Group("parent", children=["child"], vars={"x": "parent", "z": "parent"}),
            "child": Group("child", hosts=["a"], vars={"x": "child"}),
            "ungrouped": Group("ungrouped", vars={"lonely": True}, implicit=True),
        },
    )
    a = host_variables(inv, "a")
    assert (a["x"], a["y"], a["z"], a["own"]) == ("child", "all", "parent", 1)
    assert "lonely" not in a
    assert host_variables(inv, "b")["lonely"] is True
