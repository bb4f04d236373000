"""The selection language: every operator, their combinations, and Ansible's semantics."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from hlplay.errors import Location, SelectionError
from hlplay.inventory.loader import load_inventory
from hlplay.inventory.model import Inventory
from hlplay.inventory.patterns import apply_limit, select_hosts, split_pattern

FLEET = {
    "hosts.yml": """
    hosts:
      web1: {tier: prod, roles: [web]}
      web2: {tier: prod, roles: [web]}
      web3: {tier: test, roles: [web]}
      db1: {tier: prod, roles: [db], vars: {pg: 16, zone: [a, b]}}
      db2: {tier: test, roles: [db], vars: {pg: 15, zone: [c]}}
      mon1: {tier: prod, roles: [monitoring, web], transport: ssh}
      ctl: {tier: test, transport: local, vars: {canary: true}}
    groups:
      webservers: {hosts: [web1, web2, web3]}
      databases: {hosts: [db1, db2]}
      backend: {children: [databases], hosts: [mon1]}
      empty: {}
    """,
}
ALL = ["web1", "web2", "web3", "db1", "db2", "mon1", "ctl"]


@pytest.fixture(scope="module")
def inv(tmp_path_factory: pytest.TempPathFactory) -> Inventory:
    root = tmp_path_factory.mktemp("fleet")
    (root / "hosts.yml").write_text(textwrap.dedent(FLEET["hosts.yml"]))
    return load_inventory(root)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        # names: hosts, groups (with their children), all, *, implicit groups
        ("web1", ["web1"]),
        ("webservers", ["web1", "web2", "web3"]),
        ("backend", ["db1", "db2", "mon1"]),
        ("all", ALL),
        ("*", ALL),
        ("tier_test", ["web3", "db2", "ctl"]),
        ("role_web", ["web1", "web2", "web3", "mon1"]),
        ("ungrouped", ["ctl"]),
        # results are in inventory order, whatever the pattern's order
        ("ctl,db1,web1", ["web1", "db1", "ctl"]),
        # globs on host and group names
        ("web*", ["web1", "web2", "web3"]),
        ("db?", ["db1", "db2"]),
        ("*1", ["web1", "db1", "mon1"]),
        ("data*", ["db1", "db2"]),
        # regular expressions, anchored at the start as in Ansible
        ("~web[12]", ["web1", "web2"]),
        ("~(web|db)1", ["web1", "db1"]),
        ("~.*2$", ["web2", "db2"]),
        # union with ',' or ':'
        ("web1,db1", ["web1", "db1"]),
        ("web1:db1", ["web1", "db1"]),
        ("webservers:databases", ["web1", "web2", "web3", "db1", "db2"]),
        # intersection
        ("webservers:&tier_prod", ["web1", "web2"]),
        ("webservers,&tier_prod", ["web1", "web2"]),
        ("&tier_prod", ["web1", "web2", "db1", "mon1"]),
        # exclusion; alone it starts from all
        ("all:!databases", ["web1", "web2", "web3", "mon1", "ctl"]),
        ("!databases", ["web1", "web2", "web3", "mon1", "ctl"]),
        ("webservers,!web2", ["web1", "web3"]),
        # plain terms first, then &, then ! — whatever the written order
        ("!web1,webservers", ["web2", "web3"]),
        ("&tier_prod,!web1,role_web", ["web2", "mon1"]),
        ("!web1:&tier_prod:webservers:db1", ["web2", "db1"]),
        # attribute selectors
        ("tier=prod", ["web1", "web2", "db1", "mon1"]),
        ("tier!=prod", ["web3", "db2", "ctl"]),
        ("role=web", ["web1", "web2", "web3", "mon1"]),
        ("roles=db", ["db1", "db2"]),
        ("role!=web", ["db1", "db2", "ctl"]),
        ("transport=ssh", ["mon1"]),
        ("transport!=nats", ["mon1", "ctl"]),
        ("name=web*", ["web1", "web2", "web3"]),
        ("tier=pr*", ["web1", "web2", "db1", "mon1"]),
        # any variable, compared as text; lists match an item; booleans are true/false
        ("pg=16", ["db1"]),
        ("pg!=16", ["web1", "web2", "web3", "db2", "mon1", "ctl"]),
        ("zone=b", ["db1"]),
        ("canary=true", ["ctl"]),
        # attribute selectors combine with every operator
        ("tier=prod,&role=db", ["db1"]),
        ("tier=prod:&role=web", ["web1", "web2", "mon1"]),
        ("tier=prod,&role=web,!transport=ssh", ["web1", "web2"]),
        ("webservers,&tier!=prod", ["web3"]),
        ("role=db,role=monitoring", ["db1", "db2", "mon1"]),
        ("!tier=prod", ["web3", "db2", "ctl"]),
        ("backend:&tier=prod:!role=web", ["db1"]),
        # subscripts, in inventory order, end inclusive (Ansible's)
        ("webservers[0]", ["web1"]),
        ("webservers[-1]", ["web3"]),
        ("webservers[0:1]", ["web1", "web2"]),
        ("webservers[1:]", ["web2", "web3"]),
        ("tier=prod[1]", ["web2"]),
        ("webservers[0],databases[-1]", ["web1", "db2"]),
        # whitespace around terms is ignored
        (" web1 , db1 ", ["web1", "db1"]),
    ],
)
def test_pattern_selects(inv: Inventory, pattern: str, expected: list[str]) -> None:
    assert select_hosts(inv, pattern) == expected


def test_a_list_of_patterns_is_a_union(inv: Inventory) -> None:
    assert select_hosts(inv, ["db2", "web1"]) == ["web1", "db2"]


def test_empty_group_matches_no_host_without_error_when_excluded(inv: Inventory) -> None:
    # a group that exists but is empty is not a typo: excluding it is fine
    assert select_hosts(inv, "webservers,!empty") == ["web1", "web2", "web3"]
    with pytest.raises(SelectionError, match="pattern 'empty' matches no hosts"):
        select_hosts(inv, "empty")


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("wbe1", "pattern 'wbe1': no host or group named 'wbe1' (did you mean 'web1'?)"),
        (
            "webservers,!wbe2",
            "pattern 'webservers,!wbe2', term '!wbe2': no host or group named 'wbe2' "
            "(did you mean 'web2'?)",
        ),
        (
            "tier=prd",
            "pattern 'tier=prd': no host has tier 'prd' (did you mean 'prod'?)",
        ),
        (
            "all,!tier=prd",
            "pattern 'all,!tier=prd', term '!tier=prd': no host has tier 'prd' "
            "(did you mean 'prod'?)",
        ),
        ("tier!=prd", "pattern 'tier!=prd': no host has tier 'prd' (did you mean 'prod'?)"),
        ("role=wbe", "pattern 'role=wbe': no host has role 'wbe' (did you mean 'web'?)"),
        ("pgg=16", "pattern 'pgg=16': no host has a variable 'pgg' (did you mean 'pg'?)"),
        ("pg=17", "pattern 'pg=17': no host has pg=17 (closest: 16, 15)"),
        ("wbe*", "pattern 'wbe*': no host or group name matches 'wbe*'"),
        ("~(", "pattern '~(': invalid regular expression '~(': "),
        ("webservers[5]", "pattern 'webservers[5]': 'webservers[5]': index 5 is out of range"),
        ("tier=prod,&tier=test", "pattern 'tier=prod,&tier=test' matches no hosts"),
        ("", "empty host pattern"),
        (",", "empty host pattern"),
        ("web1,!", "empty term '!' in host pattern"),
        # Ansible drops a stray bracket silently; a dropped term would widen a limit
        ("web1[", "unbalanced brackets in host pattern 'web1['"),
        ("webservers[0:1", "unbalanced brackets in host pattern 'webservers[0:1'"),
        ("web1:]:db1", "unbalanced brackets in host pattern 'web1:]:db1'"),
    ],
)
def test_pattern_errors_name_the_closest(inv: Inventory, pattern: str, message: str) -> None:
    with pytest.raises(SelectionError) as info:
        select_hosts(inv, pattern)
    assert str(info.value).startswith(message), str(info.value)


def test_error_carries_the_location_given(inv: Inventory) -> None:
    where = Location("site.yml", 3, 10)
    with pytest.raises(SelectionError) as info:
        select_hosts(inv, "wbe1", location=where)
    assert str(info.value).startswith("site.yml:3:10: pattern 'wbe1': ")


def test_split_like_ansible() -> None:
    assert split_pattern("a:b:&c:!d") == ["a", "b", "&c", "!d"]
    assert split_pattern("a,b:c") == ["a", "b:c"]  # no ':' split when there is a ','
    assert split_pattern("web[1:3]:db") == ["web[1:3]", "db"]  # brackets keep their ':'
    assert split_pattern("tier=prod:&role=web") == ["tier=prod", "&role=web"]


class TestLimit:
    def test_limit_keeps_the_order_given(self, inv: Inventory) -> None:
        assert apply_limit(inv, ["db1", "web2", "web1"], "webservers") == ["web2", "web1"]

    def test_no_limit_keeps_all(self, inv: Inventory) -> None:
        assert apply_limit(inv, ["db1", "web1"], None) == ["db1", "web1"]
        assert apply_limit(inv, ["db1", "web1"], "  ") == ["db1", "web1"]

    def test_limit_leaving_nothing_is_not_an_error(self, inv: Inventory) -> None:
        # a play whose hosts the limit excludes simply has no hosts (as in Ansible)
        assert apply_limit(inv, ["db1", "db2"], "webservers") == []

    def test_limit_matching_nothing_in_the_inventory_is_an_error(self, inv: Inventory) -> None:
        with pytest.raises(SelectionError) as info:
            apply_limit(inv, ALL, "tier=prd")
        assert str(info.value) == "limit 'tier=prd': no host has tier 'prd' (did you mean 'prod'?)"

    @pytest.mark.parametrize("limit", [",", " , ", "[[", "]"])
    def test_limit_without_a_term_is_an_error_not_no_limit(
        self, inv: Inventory, limit: str
    ) -> None:
        # `-l ","` or a mangled pattern must never run on every host
        with pytest.raises(SelectionError, match=r"empty host pattern|unbalanced brackets"):
            apply_limit(inv, ALL, limit)

    def test_limit_from_file(self, inv: Inventory, tmp_path: Path) -> None:
        retry = tmp_path / "site.retry"
        retry.write_text("# failed last time\nweb2\n\ndb1\n")
        assert apply_limit(inv, ALL, f"@{retry}") == ["web2", "db1"]
        assert apply_limit(inv, ALL, f"@{retry},!db1") == ["web2"]

    def test_limit_file_missing(self, inv: Inventory, tmp_path: Path) -> None:
        with pytest.raises(SelectionError) as info:
            apply_limit(inv, ALL, f"@{tmp_path}/nope")
        assert str(info.value) == (
            f"{tmp_path}/nope: cannot read limit file: No such file or directory"
        )

    def test_limit_with_attribute_selectors(self, inv: Inventory) -> None:
        hosts = select_hosts(inv, "webservers:databases")
        assert apply_limit(inv, hosts, "tier=test") == ["web3", "db2"]
        assert apply_limit(inv, hosts, "!tier=test") == ["web1", "web2", "db1"]


# ---- Ansible gives the same answers -------------------------------------------------------

ANSIBLE_FLEET = """
all:
  vars: {site: home}
  hosts:
    ctl: {ansible_connection: local, tier: test}
  children:
    webservers:
      hosts:
        web1: {tier: prod, roles: [web]}
        web2: {tier: prod, roles: [web]}
        web3: {tier: test, roles: [web]}
    backend:
      hosts:
        mon1: {tier: prod, roles: [monitoring]}
      children:
        databases:
          hosts:
            db1: {tier: prod, roles: [db]}
            db2: {tier: test, roles: [db]}
    prod:
      hosts: {web1: , web2: , db1: , mon1: }
"""

ANSIBLE_PATTERNS = [
    "all",
    "*",
    "webservers",
    "backend",
    "web1:db2",
    "web*",
    "*1",
    "~web[12]",
    "~(web|db)",
    "webservers:&prod",
    "!webservers",
    "all:!backend",
    "!web1:webservers",
    "&prod:backend:!db1",
    "webservers[0]",
    "webservers[-1]",
    "webservers[0:1]",
    "backend[1:]",
    "webservers,db1,&prod",
    "ungrouped",
    "data*:web1",
]


@pytest.mark.parametrize("pattern", ANSIBLE_PATTERNS)
def test_same_hosts_as_ansible(pattern: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    manager_mod = pytest.importorskip("ansible.inventory.manager")
    loader_mod = pytest.importorskip("ansible.parsing.dataloader")
    root = tmp_path_factory.mktemp("ansible")
    (root / "hosts.yml").write_text(ANSIBLE_FLEET)
    manager = manager_mod.InventoryManager(
        loader=loader_mod.DataLoader(), sources=[str(root / "hosts.yml")]
    )
    expected = {h.name for h in manager.get_hosts(pattern)}
    ours = load_inventory(root / "hosts.yml")
    assert set(select_hosts(ours, pattern)) == expected


def test_subscripts_follow_ansible_group_order(
    tmp_path_factory: pytest.TempPathFactory, tree: Callable[..., Path]
) -> None:
    inv = load_inventory(tree({"hosts.yml": ANSIBLE_FLEET}))
    assert select_hosts(inv, "prod[0]") == ["web1"]
    assert select_hosts(inv, "prod[1:2]") == ["web2", "db1"]


def test_inventory_built_in_code_selects_groups_too() -> None:
    from hlplay.inventory.model import Group, Host

    inv = Inventory(
        hosts={"a": Host("a", "prod", ("web",)), "b": Host("b", "test")},
        groups={"g": Group("g", hosts=["a"])},
    )
    assert select_hosts(inv, "g") == ["a"]
    assert select_hosts(inv, "tier_test") == ["b"]
    assert select_hosts(inv, "ungrouped,role_web") == ["a", "b"]
    assert select_hosts(inv, "!g") == ["b"]
