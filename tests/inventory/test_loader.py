"""Loading inventories: both layouts, settings, SSH settings, ranges, several sources."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from hlplay.errors import InventoryError, Location
from hlplay.inventory.loader import load_inventory
from hlplay.inventory.model import SshSettings
from hlplay.inventory.patterns import select_hosts

REPO = Path(__file__).resolve().parents[2]


def test_native_layout(tree: Callable[..., Path]) -> None:
    root = tree(
        {
            "hosts.yml": """
            hlplay:
              nats:
                url: nats://nats.lan:4222
                credentials: ../keys/deployer.nkey
                subjects: {tier: 'fleet.<tier>.everyone'}
                timeout: 60
              nix: {flake: ../config, profile: /nix/var/nix/profiles/system}
              monitoring: {prometheus_url: 'http://mon:9090'}
            hosts:
              web1:
                tier: prod
                roles: [web, cache]
                address: 10.0.0.1
              bastion:
                tier: prod
                transport: ssh
                ssh: {user: ops, port: 2222, key: keys/id_ed25519, become: true}
                vars: {motd: hi}
              laptop: {transport: local}
            groups:
              edge: {hosts: [bastion]}
            """
        }
    )
    inv = load_inventory(root)
    assert list(inv.hosts) == ["web1", "bastion", "laptop"]
    web1, bastion, laptop = inv.hosts.values()
    assert (web1.tier, web1.roles, web1.address, web1.transport) == (
        "prod",
        ("web", "cache"),
        "10.0.0.1",
        "nats",
    )
    assert web1.location == Location(str(root / "hosts.yml"), 10, 3)
    assert bastion.transport == "ssh"
    assert bastion.reach == "bastion"
    assert bastion.ssh == SshSettings(
        user="ops", port=2222, key=str(root / "keys/id_ed25519"), become=True
    )
    assert bastion.vars == {"motd": "hi"}
    assert (laptop.transport, laptop.tier) == ("local", "default")

    s = inv.settings
    assert s.nats.urls == ("nats://nats.lan:4222",)
    # relative paths resolve against the file that writes them
    assert s.nats.credentials == os.path.normpath(root / "../keys/deployer.nkey")
    assert s.nix.flake == os.path.normpath(root / "../config")
    assert s.nats.subjects.tier == "fleet.<tier>.everyone"
    assert s.nats.subjects.host == "deploy.<tier>.<hostname>"
    assert s.nats.timeout == 60.0
    assert s.monitoring.prometheus_url == "http://mon:9090"

    assert inv.groups["edge"].hosts == ["bastion"]
    assert inv.members["tier_prod"] == ["web1", "bastion"]
    assert inv.members["role_cache"] == ["web1"]
    assert inv.members["ungrouped"] == ["web1", "laptop"]
    assert inv.group_names("bastion") == ["edge", "tier_prod"]
    assert inv.groups_map()["all"] == ["web1", "bastion", "laptop"]


def test_ansible_layout(tree: Callable[..., Path]) -> None:
    root = tree(
        {
            "hosts.yml": """
            all:
              vars:
                ansible_user: deploy
              hosts:
                localhost: {ansible_connection: local}
              children:
                prod:
                  vars: {tier: prod}
                  children:
                    webservers:
                      vars: {roles: [web]}
                      hosts:
                        www[01:03]:
                    agents:
                      hosts:
                        db1: {ansible_host: 10.0.0.5, roles: 'db,backup', transport: nats}
                test:
                  hosts:
                    lab1:
                      ansible_host: 192.168.1.9
                      ansible_port: 2200
                      ansible_ssh_private_key_file: ~/.ssh/lab
                      ansible_become: yes
                      tier: test
            """
        }
    )
    inv = load_inventory(root)
    assert list(inv.hosts) == ["localhost", "www01", "www02", "www03", "db1", "lab1"]
    www = inv.hosts["www02"]
    assert (www.tier, www.roles, www.transport, www.ssh.user) == ("prod", ("web",), "ssh", "deploy")
    db1 = inv.hosts["db1"]
    assert (db1.transport, db1.address, db1.roles) == ("nats", "10.0.0.5", ("db", "backup"))
    lab1 = inv.hosts["lab1"]
    assert lab1.ssh == SshSettings(
        user="deploy", port=2200, key=os.path.expanduser("~/.ssh/lab"), become=True
    )
    assert (lab1.reach, lab1.tier) == ("192.168.1.9", "test")
    assert inv.hosts["localhost"].transport == "local"
    assert inv.members["prod"] == ["www01", "www02", "www03", "db1"]
    assert inv.groups["prod"].children == ["webservers", "agents"]
    assert select_hosts(inv, "prod:&role=web") == ["www01", "www02", "www03"]
    assert inv.members["ungrouped"] == ["localhost"]


def test_connection_settings_from_group_vars_including_tier_groups(
    tree: Callable[..., Path],
) -> None:
    root = tree(
        {
            "hosts.yml": """
            hlplay:
              defaults:
                transport: ssh
                ssh: {user: nobody, known_hosts: known_hosts}
            hosts:
              a: {tier: test}
              b: {tier: prod}
              c: {tier: prod, ssh: {user: root}}
              d: {tier: prod, transport: nats}
            """,
            "group_vars/tier_prod.yml": "ansible_user: admin\nansible_port: 2022\n",
            "host_vars/b.yml": "ansible_port: 22\n",
        }
    )
    inv = load_inventory(root)
    known = str(root / "known_hosts")
    assert inv.hosts["a"].ssh == SshSettings(user="nobody", known_hosts=known)
    assert inv.hosts["b"].ssh == SshSettings(user="admin", port=22, known_hosts=known)
    assert inv.hosts["c"].ssh == SshSettings(user="root", port=2022, known_hosts=known)
    assert inv.hosts["d"].transport == "nats"


def test_tier_and_roles_from_group_vars(tree: Callable[..., Path]) -> None:
    root = tree(
        {
            "hosts.yml": """
            hosts: {web1: {}, web2: {tier: test}}
            groups:
              frontends: {hosts: [web1, web2], vars: {tier: prod, roles: [web]}}
            """
        }
    )
    inv = load_inventory(root)
    assert (inv.hosts["web1"].tier, inv.hosts["web1"].roles) == ("prod", ("web",))
    assert inv.hosts["web2"].tier == "test"  # the host's own key wins over group vars


def test_host_vars_file_overrides_host_keys(tree: Callable[..., Path]) -> None:
    root = tree(
        {
            "hosts.yml": "hosts:\n  web1: {address: 10.0.0.1}\n",
            "host_vars/web1.yaml": "ansible_host: 10.0.0.2\n",
        }
    )
    assert load_inventory(root).hosts["web1"].address == "10.0.0.2"


def test_directory_loads_its_yaml_files_not_subdirectories(tree: Callable[..., Path]) -> None:
    root = tree(
        {
            "10-prod.yml": "hosts: {web1: {tier: prod}}\n",
            "20-test.yaml": "hosts: {web2: {tier: test}}\ngroups: {g: {hosts: [web1, web2]}}\n",
            "README.md": "not an inventory",
            ".hidden.yml": "hosts: {ghost: {}}\n",
            "lab/hosts.yml": "hosts: {labhost: {}}\n",
            "empty.yml": "# nothing yet\n",
        }
    )
    inv = load_inventory(root)
    assert list(inv.hosts) == ["web1", "web2"]
    assert inv.sources == tuple(str(root / n) for n in ("10-prod.yml", "20-test.yaml", "empty.yml"))


def test_several_sources_merge(tree: Callable[..., Path]) -> None:
    a = tree({"hosts.yml": "hosts: {web1: {}}\n", "group_vars/all.yml": "x: 1\n"}, name="a")
    b = tree({"fleet.yml": "hosts: {web2: {}}\n"}, name="b")
    inv = load_inventory([a, b / "fleet.yml"])
    assert list(inv.hosts) == ["web1", "web2"]
    assert inv.group_vars_files["all"] == {"x": 1}


def test_settings_given_twice_is_an_error(tree: Callable[..., Path]) -> None:
    root = tree(
        {
            "a.yml": "hlplay: {nats: {urls: ['nats://a:4222']}}\nhosts: {h1: {}}\n",
            "b.yml": "hlplay:\n  nats: {url: 'nats://b:4222'}\n",
        }
    )
    with pytest.raises(InventoryError) as info:
        load_inventory(root)
    assert str(info.value) == (
        f"{root}/b.yml:2:10: 'hlplay.nats.urls' is already set at {root}/a.yml:1:17"
    )


def test_adhoc_host_list() -> None:
    inv = load_inventory("web1,db1,localhost,")
    assert list(inv.hosts) == ["web1", "db1", "localhost"]
    assert [h.transport for h in inv.hosts.values()] == ["ssh", "ssh", "local"]


def test_host_ranges(tree: Callable[..., Path]) -> None:
    root = tree(
        {
            "hosts.yml": """
            hosts:
              node[08:10]: {tier: prod}
              rack[a:b]-[1:2]: {}
            groups:
              some: {hosts: ['node[09:10]']}
            """
        }
    )
    inv = load_inventory(root)
    assert list(inv.hosts) == [
        "node08",
        "node09",
        "node10",
        "racka-1",
        "racka-2",
        "rackb-1",
        "rackb-2",
    ]
    assert inv.members["some"] == ["node09", "node10"]


def test_host_subject_shared_with_another_host_is_rejected(tree: Callable[..., Path]) -> None:
    root = tree(
        {
            "hosts.yml": """
            hlplay:
              nats:
                subjects: {host: 'deploy.<hostname>', tier: 'deploy.<tier>'}
            hosts:
              prod: {tier: test}
              web1: {tier: prod}
            """
        }
    )
    with pytest.raises(InventoryError) as info:
        load_inventory(root)
    assert str(info.value) == (
        f"{root}/hosts.yml:5:3: host 'prod': its subject 'deploy.prod' also reaches 'web1'; "
        "rename the host or change hlplay.nats.subjects"
    )


def test_group_and_host_with_the_same_name_is_rejected(tree: Callable[..., Path]) -> None:
    root = tree({"hosts.yml": "hosts: {web: {}}\ngroups: {web: {hosts: [web]}}\n"})
    with pytest.raises(InventoryError, match="group 'web' has the same name as a host"):
        load_inventory(root)


def test_implicit_group_as_child_is_rejected(tree: Callable[..., Path]) -> None:
    root = tree({"hosts.yml": "hosts: {a: {}}\ngroups: {g: {children: [tier_default]}}\n"})
    with pytest.raises(InventoryError, match="cannot have 'tier_default' as a child"):
        load_inventory(root)


def test_the_example_fleet(repo_root: Path) -> None:
    inv = load_inventory(repo_root / "inventory")
    assert len(inv.hosts) >= 8
    tiers = {h.tier for h in inv.hosts.values()}
    roles = {r for h in inv.hosts.values() for r in h.roles}
    transports = {h.transport for h in inv.hosts.values()}
    assert {"test", "prod"} <= tiers
    assert len(roles) >= 3
    assert {"nats", "ssh"} <= transports
    assert inv.group_vars_files  # group_vars are used
    assert inv.settings.nats.credentials is not None


def test_the_lab_inventory_loads(repo_root: Path) -> None:
    lab = repo_root / "inventory" / "lab"
    if not lab.is_dir():
        pytest.skip("no lab inventory")
    inv = load_inventory(lab)
    assert inv.hosts
