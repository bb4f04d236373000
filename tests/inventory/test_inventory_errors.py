"""Every class of bad inventory gives one line with file:line:column, and no traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from hlplay.errors import InventoryError
from hlplay.inventory.loader import load_inventory

ONE_LINE = re.compile(r"^ERROR: (?P<loc>[^:\s]+:\d+:\d+): (?P<msg>[^\n]+)\n$")

# name -> (files, file with the error, line, column, message)
CASES: dict[str, tuple[dict[str, str], str, int, int, str]] = {
    "bad_yaml": (
        {"hosts.yml": "hosts:\n  web1: {tier: prod\n  db1: {}\n"},
        "hosts.yml",
        3,
        6,
        "invalid YAML: did not find expected ',' or '}'",
    ),
    "unknown_host_key": (
        {"hosts.yml": "hosts:\n  web1:\n    tier: prod\n    role: [web]\n"},
        "hosts.yml",
        4,
        5,
        "unknown key 'role' in host 'web1' (did you mean 'roles'?)",
    ),
    "unknown_top_key": (
        {"hosts.yml": "host:\n  web1: {}\n"},
        "hosts.yml",
        1,
        1,
        "unknown key 'host' in an inventory file",
    ),
    "unknown_setting": (
        {"hosts.yml": "hlplay:\n  nats:\n    ulrs: [nats://x:4222]\nhosts: {web1: {}}\n"},
        "hosts.yml",
        3,
        5,
        "unknown key 'ulrs' in 'hlplay.nats' (did you mean 'urls'?)",
    ),
    "wrong_type_roles": (
        {"hosts.yml": "hosts:\n  web1:\n    roles: 5\n"},
        "hosts.yml",
        3,
        5,
        "'roles' must be a list of role names, got a number",
    ),
    "wrong_type_port": (
        {"hosts.yml": "hosts:\n  web1:\n    transport: ssh\n    ssh: {port: http}\n"},
        "hosts.yml",
        4,
        11,
        "'port' of host 'web1' must be a port number (1-65535), got 'http'",
    ),
    "wrong_type_hosts": (
        {"hosts.yml": "hosts: [web1, web2]\n"},
        "hosts.yml",
        1,
        1,
        "'hosts' must be a mapping of host names, got a list",
    ),
    "wrong_transport": (
        {"hosts.yml": "hosts:\n  web1: {transport: sssh}\n"},
        "hosts.yml",
        2,
        10,
        "'transport' of host 'web1' must be one of nats, ssh, local, got 'sssh' "
        "(did you mean 'ssh'?)",
    ),
    "duplicate_host_across_files": (
        {"a.yml": "hosts:\n  web1: {tier: prod}\n", "b.yml": "hosts:\n  db1: {}\n  web1: {}\n"},
        "b.yml",
        3,
        3,
        "host 'web1' is defined twice (first at {dir}/a.yml:2:3)",
    ),
    "duplicate_host_same_file": (
        {"hosts.yml": "hosts:\n  web1: {}\n  web1: {}\n"},
        "hosts.yml",
        3,
        3,
        "duplicate key 'web1' (first at line 2)",
    ),
    "cycle_in_children": (
        {
            "hosts.yml": """
            hosts: {web1: {}}
            groups:
              a: {children: [b]}
              b: {children: [c]}
              c: {children: [a], hosts: [web1]}
            """
        },
        "hosts.yml",
        5,
        18,
        "cycle in children: a -> b -> c -> a",
    ),
    "undefined_child_group": (
        {
            "hosts.yml": """
            hosts: {web1: {}}
            groups:
              webservers: {hosts: [web1]}
              frontend: {children: [webserver]}
            """
        },
        "hosts.yml",
        4,
        25,
        "group 'frontend' has undefined child group 'webserver' (did you mean 'webservers'?)",
    ),
    "undefined_host_in_group": (
        {"hosts.yml": "hosts: {web1: {}}\ngroups:\n  web: {hosts: [web1, wbe2]}\n"},
        "hosts.yml",
        3,
        23,
        "group 'web' lists undefined host 'wbe2'",
    ),
    "invalid_host_name": (
        {"hosts.yml": "hosts:\n  web_1: {}\n"},
        "hosts.yml",
        2,
        3,
        "invalid host name 'web_1': use letters, digits and '-' (at most 63, not starting or "
        "ending with '-'); underscores are not allowed in host names, use '-'",
    ),
    "fqdn_host_name": (
        {"hosts.yml": "hosts:\n  web1.example.com: {}\n"},
        "hosts.yml",
        2,
        3,
        "invalid host name 'web1.example.com': use letters, digits and '-' (at most 63, not "
        "starting or ending with '-'); use the short name and set address: web1.example.com",
    ),
    "invalid_tier_name": (
        {"hosts.yml": "hosts:\n  web1: {tier: prod.eu}\n"},
        "hosts.yml",
        2,
        10,
        "invalid tier name 'prod.eu': use letters, digits, '_' and '-' (it becomes a NATS "
        "subject token)",
    ),
    "invalid_role_name": (
        {"hosts.yml": "hosts:\n  web1:\n    roles: [web, 'load balancer']\n"},
        "hosts.yml",
        3,
        18,
        "invalid role name 'load balancer': use letters, digits, '_' and '-' (it becomes a "
        "NATS subject token)",
    ),
    "reserved_group_name": (
        {"hosts.yml": "hosts: {web1: {}}\ngroups:\n  tier_prod: {hosts: [web1]}\n"},
        "hosts.yml",
        3,
        3,
        "group name 'tier_prod' is reserved: tier_* and role_* groups are made from the "
        "hosts' tier and roles",
    ),
    "group_vars_for_undefined_group": (
        {"hosts.yml": "hosts: {web1: {roles: [web]}}\n", "group_vars/role_wbe.yml": "x: 1\n"},
        "group_vars/role_wbe.yml",
        0,
        0,
        "group_vars for undefined group 'role_wbe' (did you mean 'role_web'?)",
    ),
    "bad_variable_name": (
        {"hosts.yml": "vars:\n  my-var: 1\nhosts: {web1: {}}\n"},
        "hosts.yml",
        2,
        3,
        "invalid variable name 'my-var': use letters, digits and '_', not starting with a digit",
    ),
    "vault_file": (
        {
            "hosts.yml": "hosts: {web1: {}}\n",
            "host_vars/web1.yml": "$ANSIBLE_VAULT;1.1;AES256\n6162636465\n",
        },
        "host_vars/web1.yml",
        1,
        1,
        "variables of host 'web1' must be a mapping, got a vault-encrypted file",
    ),
    "ansible_layout_bad_connection": (
        {"hosts.yml": "all:\n  hosts:\n    web1: {ansible_connection: docker}\n"},
        "hosts.yml",
        3,
        12,
        "'ansible_connection' of host 'web1': connection 'docker' is not supported "
        "(use local or ssh, or transport: nats)",
    ),
    "nats_url_with_a_bad_port": (
        {"hosts.yml": "hlplay:\n  nats:\n    url: nats://hub:http\nhosts: {a: {}}\n"},
        "hosts.yml",
        3,
        5,
        "'hlplay.nats.url': invalid NATS URL 'nats://hub:http' (expected nats://host:port)",
    ),
    "subject_template_without_hostname": (
        {"hosts.yml": "hlplay:\n  nats:\n    subjects: {host: 'deploy.<tier>'}\nhosts: {a: {}}\n"},
        "hosts.yml",
        3,
        16,
        "subject template 'host' (deploy.<tier>) must contain <hostname>",
    ),
}


def _expected(case: str, root: Path) -> tuple[str, str]:
    _files, file, line, col, message = CASES[case]
    where = f"{root / file}:{line}:{col}" if line else str(root / file)
    return where, message.replace("{dir}", str(root))


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_inventory_gives_one_located_line(
    case: str, tree: Callable[..., Path], cli: Callable[..., object]
) -> None:
    root = tree(CASES[case][0])
    where, message = _expected(case, root)

    with pytest.raises(InventoryError) as info:
        load_inventory(root)
    got = str(info.value)
    assert got.startswith(f"{where}: "), got
    assert message in got, got

    result = cli("inventory", "list", "-i", str(root))
    assert result.code == 1  # type: ignore[attr-defined]
    err = result.err  # type: ignore[attr-defined]
    assert "Traceback" not in err
    assert err == f"ERROR: {got}\n"
    if CASES[case][2]:
        assert ONE_LINE.match(err), err


def test_errors_through_a_real_process_have_no_traceback(tree: Callable[..., Path]) -> None:
    root = tree(CASES["cycle_in_children"][0])
    proc = subprocess.run(
        [sys.executable, "-m", "hlplay.cli.main", "inventory", "graph", "-i", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert proc.stderr == (f"ERROR: {root}/hosts.yml:5:18: cycle in children: a -> b -> c -> a\n")


def test_missing_inventory_path_is_one_line(tmp_path: Path, cli: Callable[..., object]) -> None:
    missing = tmp_path / "nope"
    result = cli("inventory", "hosts", "-i", str(missing))
    assert result.code == 1  # type: ignore[attr-defined]
    assert result.err == (  # type: ignore[attr-defined]
        f"ERROR: {missing}: no such inventory file or directory (give one with -i PATH)\n"
    )


def test_pattern_matching_nothing_names_the_closest(
    tree: Callable[..., Path], cli: Callable[..., object]
) -> None:
    root = tree({"hosts.yml": "hosts:\n  web1: {tier: prod}\n  db1: {tier: test}\n"})
    result = cli("inventory", "hosts", "-i", str(root), "wbe1")
    assert result.code == 1  # type: ignore[attr-defined]
    assert result.err == (  # type: ignore[attr-defined]
        "ERROR: pattern 'wbe1': no host or group named 'wbe1' (did you mean 'web1'?)\n"
    )
    result = cli("inventory", "targets", "-i", str(root), "-l", "tier=prd")
    assert result.err == (  # type: ignore[attr-defined]
        "ERROR: limit 'tier=prd': no host has tier 'prd' (did you mean 'prod'?)\n"
    )
    assert "Traceback" not in result.err  # type: ignore[attr-defined]


def test_debug_flag_shows_the_traceback(
    tree: Callable[..., Path], cli: Callable[..., object]
) -> None:
    root = tree(CASES["unknown_host_key"][0])
    result = cli("--debug", "inventory", "list", "-i", str(root))
    assert result.code == 1  # type: ignore[attr-defined]
    assert "Traceback" in result.err  # type: ignore[attr-defined]
