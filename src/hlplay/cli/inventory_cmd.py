"""``hlplay inventory list|hosts|graph|targets|host``: look at the fleet before acting on it.

Every subcommand takes an optional host PATTERN (default ``all``) narrowed by
``-l/--limit``, so ``hlplay inventory targets tier=prod,&role=web`` shows what a
deploy to those hosts would send where.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, TypeVar

import click

from hlplay.cli.options import extra_vars_option, inventory_option, json_option, limit_option
from hlplay.errors import SelectionError
from hlplay.inventory.model import Inventory

F = TypeVar("F", bound=Callable[..., Any])


def _common(func: F) -> F:
    func = json_option(func)
    func = extra_vars_option(func)
    func = limit_option(func)
    func = inventory_option(func)
    return func


def _pattern_argument(func: F) -> F:
    return click.argument("pattern", required=False, default="all", metavar="[PATTERN]")(func)


def _load(paths: tuple[str, ...], pattern: str, limit: str | None) -> tuple[Inventory, list[str]]:
    from hlplay.inventory.loader import load_inventory
    from hlplay.inventory.patterns import apply_limit, select_hosts

    inv = load_inventory(list(paths))
    hosts = apply_limit(inv, select_hosts(inv, pattern), limit)
    if not hosts:
        raise SelectionError(f"limit '{limit}' leaves none of the hosts matching '{pattern}'")
    return inv, hosts


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        line = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        click.echo(line.rstrip())


@click.group()
def inventory() -> None:
    """Show the inventory, host selections and the targets they compile to."""


@inventory.command("list")
@_pattern_argument
@_common
@click.option("--vars", "show_vars", is_flag=True, help="Include each host's variables.")
def list_cmd(
    pattern: str,
    inventory: tuple[str, ...],
    limit: str | None,
    extra_vars: tuple[str, ...],
    as_json: bool,
    show_vars: bool,
) -> None:
    """Hosts with their tier, roles, transport and address."""
    from hlplay.inventory.variables import host_variables, parse_extra_vars

    extra = parse_extra_vars(extra_vars)
    inv, hosts = _load(inventory, pattern, limit)
    if as_json:
        out = []
        for name in hosts:
            h = inv.hosts[name]
            item: dict[str, Any] = {
                "name": name,
                "tier": h.tier,
                "roles": list(h.roles),
                "transport": h.transport,
                "address": h.reach,
                "groups": inv.group_names(name),
            }
            if h.transport == "ssh":
                item["ssh"] = asdict(h.ssh)
            if h.location is not None:
                item["location"] = str(h.location)
            if show_vars:
                item["vars"] = host_variables(inv, name, extra)
            out.append(item)
        _emit_json(out)
        return
    rows = [["HOST", "TIER", "ROLES", "TRANSPORT", "ADDRESS"]]
    for name in hosts:
        h = inv.hosts[name]
        reach = h.reach
        if h.transport == "ssh":
            user = f"{h.ssh.user}@" if h.ssh.user else ""
            port = f":{h.ssh.port}" if h.ssh.port != 22 else ""
            reach = f"{user}{reach}{port}"
        elif h.transport == "local":
            reach = "-"
        rows.append([name, h.tier, ",".join(h.roles) or "-", h.transport, reach])
    _table(rows)
    if show_vars:
        for name in hosts:
            click.echo(f"\n{name}:")
            for key, value in sorted(host_variables(inv, name, extra).items()):
                click.echo(f"  {key}: {json.dumps(value, default=str)}")


@inventory.command("hosts")
@_pattern_argument
@_common
def hosts_cmd(
    pattern: str,
    inventory: tuple[str, ...],
    limit: str | None,
    extra_vars: tuple[str, ...],
    as_json: bool,
) -> None:
    """Host names, one per line (like ``ansible PATTERN --list-hosts``)."""
    from hlplay.inventory.variables import parse_extra_vars

    parse_extra_vars(extra_vars)  # reject bad -e the same way everywhere
    _, hosts = _load(inventory, pattern, limit)
    if as_json:
        _emit_json(hosts)
        return
    click.echo("\n".join(hosts))


def _graph_order(name: str) -> tuple[int, str]:
    """Explicit groups first (by name), then ungrouped, tier_* and role_*."""
    if name == "ungrouped":
        return (1, name)
    if name.startswith("tier_"):
        return (2, name)
    if name.startswith("role_"):
        return (3, name)
    return (0, name)


def _graph_tree(inv: Inventory, selected: set[str], root: str) -> dict[str, Any]:
    """Groups and hosts under ``root`` that hold a selected host."""

    def build(name: str, seen: frozenset[str]) -> dict[str, Any] | None:
        group = inv.groups[name]
        if not selected.intersection(inv.members.get(name, ())):
            return None
        children = []
        for child in sorted(group.children, key=_graph_order):
            if child in seen or child not in inv.groups:
                continue
            sub = build(child, seen | {child})
            if sub is not None:
                children.append(sub)
        hosts = sorted(h for h in (group.hosts if name != "all" else ()) if h in selected)
        return {"name": name, "children": children, "hosts": hosts, "vars": dict(group.vars)}

    tree = build(root, frozenset({root}))
    return tree or {"name": root, "children": [], "hosts": [], "vars": {}}


def _print_graph(inv: Inventory, node: dict[str, Any], indent: str, show_vars: bool) -> None:
    pad = indent + "|--" if indent else ""
    click.echo(f"{pad}@{node['name']}:")
    inner = indent + "|  " if indent else "  "
    if show_vars:
        merged = {**node["vars"], **inv.group_vars_files.get(node["name"], {})}
        for key, value in sorted(merged.items()):
            click.echo(f"{inner}|--{{{key} = {json.dumps(value, default=str)}}}")
    for child in node["children"]:
        _print_graph(inv, child, inner, show_vars)
    for host in node["hosts"]:
        click.echo(f"{inner}|--{host}")
        if show_vars:
            h = inv.hosts[host]
            own = {**h.vars, **inv.host_vars_files.get(host, {})}
            for key, value in sorted(own.items()):
                click.echo(f"{inner}|  |--{{{key} = {json.dumps(value, default=str)}}}")


@inventory.command("graph")
@click.argument("group", required=False, default="all")
@_common
@click.option("--vars", "show_vars", is_flag=True, help="Show group and host variables.")
def graph_cmd(
    group: str,
    inventory: tuple[str, ...],
    limit: str | None,
    extra_vars: tuple[str, ...],
    as_json: bool,
    show_vars: bool,
) -> None:
    """Groups and their hosts as a tree (like ``ansible-inventory --graph``)."""
    from hlplay.errors import did_you_mean
    from hlplay.inventory.variables import parse_extra_vars

    parse_extra_vars(extra_vars)
    inv, hosts = _load(inventory, "all", limit)
    if group not in inv.groups:
        raise SelectionError(f"no group named '{group}'" + did_you_mean(group, inv.groups))
    tree = _graph_tree(inv, set(hosts), group)
    if as_json:
        _emit_json(tree)
        return
    _print_graph(inv, tree, "", show_vars)


@inventory.command("targets")
@_pattern_argument
@_common
def targets_cmd(
    pattern: str,
    inventory: tuple[str, ...],
    limit: str | None,
    extra_vars: tuple[str, ...],
    as_json: bool,
) -> None:
    """NATS subjects with the hosts each reaches, then SSH and local targets."""
    from hlplay.inventory.targets import compile_targets
    from hlplay.inventory.variables import parse_extra_vars

    parse_extra_vars(extra_vars)
    inv, hosts = _load(inventory, pattern, limit)
    plan = compile_targets(inv, hosts)
    order = {h: i for i, h in enumerate(inv.hosts)}
    if as_json:
        _emit_json(plan.to_dict(order))
        return
    rows: list[list[str]] = []
    for t in plan.nats:
        names = sorted(t.hosts, key=order.__getitem__)
        rows.append(["nats", t.subject, t.kind, " ".join(names)])
    for d in plan.direct:
        h = inv.hosts[d.host]
        if d.transport == "ssh":
            user = f"{h.ssh.user}@" if h.ssh.user else ""
            where = f"{user}{d.address}:{h.ssh.port}"
        else:
            where = "this machine"
        rows.append([d.transport, where, "host", d.host])
    if rows:
        _table([["VIA", "TARGET", "KIND", "HOSTS"], *rows])
    n_hosts = len(hosts)
    click.echo(
        f"\n{n_hosts} host{'s' * (n_hosts != 1)}: {len(plan.nats)} NATS subject"
        f"{'s' * (len(plan.nats) != 1)}, {len(plan.direct)} direct"
    )


@inventory.command("host")
@click.argument("name")
@inventory_option
@extra_vars_option
def host_cmd(name: str, inventory: tuple[str, ...], extra_vars: tuple[str, ...]) -> None:
    """One host's variables, merged, as JSON (like ``ansible-inventory --host``)."""
    from hlplay.inventory.loader import load_inventory
    from hlplay.inventory.variables import host_variables, parse_extra_vars

    extra = parse_extra_vars(extra_vars)
    inv = load_inventory(list(inventory))
    _emit_json(host_variables(inv, name, extra))
