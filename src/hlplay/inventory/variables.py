"""A host's variables, merged in a documented order, and ``-e`` extra variables.

Merge order, lowest first (docs/inventory.md): ``all`` → ``ungrouped`` →
``tier_<tier>`` → ``role_<role>`` (in the host's role order) → explicit groups,
parents before children (then by ``ansible_group_priority``, then by name) →
the host's own vars → ``host_vars/`` files → host facts (``tier``, ``roles``,
``transport``, ``address``, ``ansible_host``) → extra vars; and last
``inventory_hostname``, which nothing overrides. For each group, its
``group_vars/`` files override its inline ``vars:``. Values replace each other
whole (Ansible's ``hash_behaviour = replace``).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hlplay.errors import Location, OptionsError, SelectionError, did_you_mean
from hlplay.inventory.members import derive_members
from hlplay.inventory.model import Inventory
from hlplay.inventory.names import VAR_RE, type_name

MAGIC_LAST = ("inventory_hostname", "inventory_hostname_short")


def _chain_vars(inventory: Inventory, chain: list[str]) -> dict[str, Any]:
    """The merged variables of a group chain, cached: many hosts share a chain."""
    cache: dict[tuple[str, ...], dict[str, Any]] = inventory.cache.setdefault("chain_vars", {})
    key = tuple(chain)
    got = cache.get(key)
    if got is None:
        got = {}
        for g in chain:
            group = inventory.groups.get(g)
            if group is not None and group.vars:
                got.update(group.vars)
            files = inventory.group_vars_files.get(g)
            if files:
                got.update(files)
        cache[key] = got
    return got


def _group_chain(inventory: Inventory, host: str) -> list[str]:
    chain = inventory.group_chain.get(host)
    if chain is not None:
        return chain
    if inventory.group_chain or not inventory.groups:
        return ["all"]
    # an inventory built in code: derive the chains the loader would have made
    chains: dict[str, list[str]] | None = inventory.cache.get("derived_chains")
    if chains is None:
        chains = inventory.cache["derived_chains"] = _derive_chains(inventory)
    return chains.get(host, ["all"])


def _derive_chains(inventory: Inventory) -> dict[str, list[str]]:
    members = inventory.members or derive_members(inventory)
    parents: dict[str, list[str]] = {}
    for name, group in inventory.groups.items():
        for child in group.children:
            parents.setdefault(child, []).append(name)
    depth: dict[str, int] = {}

    def dep(name: str, seen: frozenset[str]) -> int:
        if name not in depth:
            ps = [p for p in parents.get(name, ()) if p not in seen and p != "all"]
            depth[name] = 1 + max((dep(p, seen | {p}) for p in ps), default=0)
        return depth[name]

    explicit = [
        g
        for g, group in inventory.groups.items()
        if not group.implicit and g not in ("all", "ungrouped")
    ]
    in_group: dict[str, list[str]] = {}
    for g in sorted(explicit, key=lambda g: (dep(g, frozenset({g})), g)):
        for h in members.get(g, ()):
            in_group.setdefault(h, []).append(g)
    out: dict[str, list[str]] = {}
    for name, host in inventory.hosts.items():
        own = in_group.get(name, [])
        chain = ["all", *([] if own else ["ungrouped"]), f"tier_{host.tier}"]
        chain.extend(f"role_{r}" for r in host.roles)
        out[name] = chain + own
    return out


def host_facts(inventory: Inventory, host: str) -> dict[str, Any]:
    """What the inventory itself says about a host, exposed as variables."""
    h = inventory.hosts[host]
    return {
        "tier": h.tier,
        "roles": list(h.roles),
        "transport": h.transport,
        "address": h.reach,
        "ansible_host": h.reach,
    }


def host_variables(
    inventory: Inventory, host: str, extra_vars: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """All variables of ``host``, merged in the documented order (a new dict).

    Nested values are shared with the inventory: do not mutate them.
    """
    h = inventory.hosts.get(host)
    if h is None:
        raise SelectionError(f"unknown host '{host}'" + did_you_mean(host, inventory.hosts))
    out = dict(_chain_vars(inventory, _group_chain(inventory, host)))
    if h.vars:
        out.update(h.vars)
    files = inventory.host_vars_files.get(host)
    if files:
        out.update(files)
    out.update(host_facts(inventory, host))
    if extra_vars:
        out.update(extra_vars)
    out["inventory_hostname"] = host
    out["inventory_hostname_short"] = host.split(".", 1)[0]
    return out


def host_variable(inventory: Inventory, host: str, name: str) -> tuple[bool, Any]:
    """One variable of a host (``(found, value)``), without merging them all."""
    if name in MAGIC_LAST:
        return True, host
    h = inventory.hosts[host]
    if name in ("tier", "roles", "transport", "address", "ansible_host"):
        return True, host_facts(inventory, host)[name]
    files = inventory.host_vars_files.get(host)
    if files and name in files:
        return True, files[name]
    if name in h.vars:
        return True, h.vars[name]
    merged = _chain_vars(inventory, _group_chain(inventory, host))
    if name in merged:
        return True, merged[name]
    return False, None


def parse_extra_vars(values: Sequence[str]) -> dict[str, Any]:
    """Parse ``-e`` values: ``key=value`` pairs, a JSON/YAML object, or ``@file``.

    Later values override earlier ones. ``key=value`` values stay strings, as in
    Ansible; use the JSON/YAML form for numbers, booleans, lists and mappings.
    """
    out: dict[str, Any] = {}
    for raw in values:
        text = raw.strip()
        if not text:
            continue
        if text.startswith("@"):
            data = _load_vars_file(text[1:], raw)
        elif text.startswith("{"):
            data = _load_vars_text(text, raw)
        else:
            data = _parse_kv(text, raw)
        out.update(data)
    return out


def _check_names(data: Mapping[str, Any], raw: str, loc: Location | None = None) -> None:
    for key in data:
        if not isinstance(key, str) or not VAR_RE.fullmatch(key):
            where = f"{loc}: " if loc else ""
            raise OptionsError(f"{where}-e {raw!r}: invalid variable name {key!r}")


def _parse_kv(text: str, raw: str) -> dict[str, Any]:
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise OptionsError(f"-e {raw!r}: {exc}") from None
    out: dict[str, Any] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep:
            raise OptionsError(
                f"-e {raw!r}: expected key=value, a JSON/YAML object or @file, got {word!r}"
            )
        out[key] = value
    _check_names(out, raw)
    return out


def _load_vars_text(text: str, raw: str) -> dict[str, Any]:
    from hlplay.errors import HlplayError
    from hlplay.yamlsrc import load_yaml_text

    try:
        data = json.loads(text)
    except ValueError:
        try:
            data = load_yaml_text(text, "<-e>")
        except HlplayError as exc:
            raise OptionsError(f"-e {raw!r}: {exc.message}") from None
    if not isinstance(data, dict):
        raise OptionsError(f"-e {raw!r}: expected a mapping of variables, got {type_name(data)}")
    _check_names(data, raw)
    return dict(data)


def _load_vars_file(path: str, raw: str) -> dict[str, Any]:
    from hlplay.yamlsrc import YMap, load_yaml_file

    if not path:
        raise OptionsError("-e @: a file name must follow '@'")
    data = load_yaml_file(Path(path))  # errors carry the file's location
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise OptionsError(
            f"{Location(path)}: extra vars file must hold a mapping, got {type_name(data)}"
        )
    _check_names(data, raw, data.loc if isinstance(data, YMap) else None)
    return dict(data)
