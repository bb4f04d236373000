"""Load an inventory from YAML: files, directories, ``group_vars/`` and ``host_vars/``.

Two layouts load into the same model (see docs/inventory.md):

* hlplay's own: top-level ``hlplay:`` (settings), ``hosts:``, ``groups:`` and ``vars:``;
* Ansible's YAML inventory: ``all:`` with ``hosts:``, ``children:`` and ``vars:``.

A host's tier, roles, address, transport and SSH settings come from its own keys
or from variables (``ansible_host``, ``ansible_user``…) at any level, the highest
layer of the variable merge order winning. Tier and roles make the implicit
groups ``tier_<tier>`` and ``role_<role>``, so they are resolved without those
groups' variables; everything else sees them.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hlplay.errors import HlplayError, InventoryError, Location, did_you_mean
from hlplay.inventory.model import (
    Group,
    Host,
    Inventory,
    Settings,
    SshSettings,
    TransportName,
)
from hlplay.inventory.names import (
    SPECIAL_GROUPS,
    check_group_name,
    check_host_name,
    check_token,
    check_var_name,
    expand_host_range,
    type_name,
)
from hlplay.inventory.settings import ADDRESS_RE, SSH_SCHEMA, SettingsCollector, coerce
from hlplay.yamlsrc import YList, YMap, load_yaml_file

YAML_SUFFIXES = (".yml", ".yaml")
VARS_SUFFIXES = (".yml", ".yaml", ".json", "")
NATIVE_KEYS = ("hlplay", "hosts", "groups", "vars")
HOST_KEYS = ("tier", "roles", "address", "transport", "protocol", "ssh", "vars")
GROUP_KEYS = ("hosts", "children", "vars")
VAULT_HEADER = "$ANSIBLE_VAULT"
FREEZE_HOSTS = 1000  # from this size on, a loaded inventory is frozen out of the cyclic GC

# canonical host attribute -> variable names setting it, the first winning in one layer
ATTR_VARS: dict[str, tuple[str, ...]] = {
    "tier": ("tier",),
    "roles": ("roles",),
    "address": ("address", "ansible_host"),
    "transport": ("transport", "ansible_connection"),
    "protocol": ("hlplay_protocol",),
    "user": ("ansible_user", "ansible_ssh_user"),
    "port": ("ansible_port", "ansible_ssh_port"),
    "key": ("ansible_ssh_private_key_file", "ansible_private_key_file"),
    "known_hosts": ("hlplay_ssh_known_hosts",),
    "host_key_checking": ("ansible_host_key_checking", "ansible_ssh_host_key_checking"),
    "become": ("ansible_become",),
    "become_user": ("ansible_become_user",),
    "connect_timeout": ("ansible_timeout", "ansible_ssh_timeout"),
}
PHASE1 = ("tier", "roles")
PHASE2 = tuple(a for a in ATTR_VARS if a not in PHASE1)
ATTR_KINDS: dict[str, str] = {
    "address": "address",
    "transport": "transport",
    "protocol": "protocol",
    **SSH_SCHEMA,
}
ANSIBLE_CONNECTIONS: dict[str, TransportName] = {
    "local": "local",
    "ssh": "ssh",
    "smart": "ssh",
    "paramiko": "ssh",
    "paramiko_ssh": "ssh",
    "ansible.builtin.ssh": "ssh",
    "ansible.builtin.local": "local",
    "ansible.builtin.paramiko_ssh": "ssh",
}

# (value, where it is written)
_Found = tuple[Any, Location]
_EMPTY = YMap()  # shared by declarations without variables; never written to
_VALID_VARS: set[str] = set()  # variable names already checked


#: Host variables naming places on the host's side that hlplay itself reads; a
#: relative value ("./…", "../…") is relative to the file that sets it, as the
#: paths in the ``hlplay:`` settings are.
PATH_VARS = ("hlplay_profile", "hlplay_state_dir", "hlplay_units_dir", "hlplay_flake")


def _resolve_path_vars(values: dict[str, Any], loc: Location | None) -> dict[str, Any]:
    if loc is None or not any(k in values for k in PATH_VARS):
        return values
    out = dict(values)
    base = os.path.dirname(os.path.abspath(loc.file))
    for key in PATH_VARS:
        value = out.get(key)
        if isinstance(value, str) and value.startswith(("./", "../")):
            out[key] = os.path.normpath(os.path.join(base, value))
    return out


@dataclass
class _HostDecl:
    name: str
    loc: Location
    native: bool = False
    defined_at: Location | None = None  # its native definition, if any
    attrs: dict[str, _Found] = field(default_factory=dict)  # from native host keys
    vars: YMap = field(default_factory=lambda: _EMPTY)  # replaced when it gets variables


@dataclass
class _GroupDecl:
    name: str
    loc: Location
    defined_at: Location | None = None  # its native definition, if any
    hosts: list[tuple[str, Location]] = field(default_factory=list)
    children: list[tuple[str, Location]] = field(default_factory=list)
    vars: YMap = field(default_factory=YMap)


def _merge_vars(into: YMap, new: Any, owner: str, loc: Location, *, override: bool) -> None:
    """Merge a variables mapping into ``into``; without ``override`` a key set twice is an error."""
    if new is None:
        return
    if not isinstance(new, YMap):
        what = "a vault-encrypted file" if _is_vault(new) else type_name(new)
        raise InventoryError(f"variables of {owner} must be a mapping, got {what}", loc)
    for key in new:
        if key not in _VALID_VARS:
            check_var_name(key, new.loc_of(key))
            _VALID_VARS.add(key)
    if not into:
        # the common case (a host's or group's first variables): copy in one go
        into.update(new)
        into.key_locs.update(new.key_locs)
        into.loc = new.loc
        return
    for key, value in new.items():
        kloc = new.loc_of(key)
        if not override and key in into:
            raise InventoryError(
                f"variable '{key}' of {owner} is already set at {into.key_locs[key]}", kloc
            )
        into[key] = value
        into.key_locs[key] = kloc
    if into.loc.file == "<unknown>":
        into.loc = new.loc


def _is_vault(value: Any) -> bool:
    return isinstance(value, str) and value.lstrip().startswith(VAULT_HEADER)


def _check_keys(node: YMap, allowed: Sequence[str], where: str, hint: str = "") -> None:
    for key in node:
        if key not in allowed:
            raise InventoryError(
                f"unknown key '{key}' in {where}" + did_you_mean(key, allowed) + hint,
                node.loc_of(key),
            )


def _name_list(value: Any, what: str, loc: Location) -> list[tuple[str, Location]]:
    if value is None:
        return []
    if not isinstance(value, YList):
        raise InventoryError(f"{what} must be a list of names, got {type_name(value)}", loc)
    out: list[tuple[str, Location]] = []
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise InventoryError(
                f"{what} must be a list of names, got {type_name(item)}", value.loc_of(i)
            )
        out.append((item, value.loc_of(i)))
    return out


class _Builder:
    """Collects declarations from every file, then resolves them into an :class:`Inventory`."""

    def __init__(self) -> None:
        self.hosts: dict[str, _HostDecl] = {}
        self.groups: dict[str, _GroupDecl] = {}
        self.settings = SettingsCollector()
        self.sources: list[str] = []
        self.vars_roots: list[Path] = []
        self.group_files: dict[str, YMap] = {}
        self.host_files: dict[str, YMap] = {}
        self.group_file_locs: dict[str, Location] = {}
        self.host_file_locs: dict[str, Location] = {}
        for name in SPECIAL_GROUPS:
            self.groups[name] = _GroupDecl(name, Location("<built-in>"))

    # ---- sources -------------------------------------------------------------------

    def add_source(self, raw: str | Path) -> None:
        path = Path(raw)
        text = str(raw)
        if not path.exists():
            if isinstance(raw, str) and "," in raw:
                self._adhoc(raw)
                return
            raise InventoryError(
                "no such inventory file or directory (give one with -i PATH)", Location(text)
            )
        if path.is_dir():
            files = sorted(
                p
                for p in path.iterdir()
                if p.suffix in YAML_SUFFIXES and not p.name.startswith(".") and p.is_file()
            )
            if not files:
                raise InventoryError(
                    "no inventory files (*.yml, *.yaml) in this directory", Location(text)
                )
            for file in files:
                self._file(file)
            self._vars_root(path)
        else:
            self._file(path)
            self._vars_root(path.parent)

    def _vars_root(self, root: Path) -> None:
        resolved = root.resolve()
        if resolved not in (r.resolve() for r in self.vars_roots):
            self.vars_roots.append(root)

    def _adhoc(self, raw: str) -> None:
        """Ansible's ``-i host1,host2,``: a list of hosts reached over SSH."""
        loc = Location("<command line>")
        self.sources.append(raw)
        for name in (n.strip() for n in raw.split(",")):
            if not name:
                continue
            check_host_name(name, loc)
            decl = self._declare_host(name, loc, native=False)
            if name == "localhost":
                decl.attrs.setdefault("transport", ("local", loc))

    def _file(self, path: Path) -> None:
        self.sources.append(str(path))
        data = load_yaml_file(path)
        if data is None:
            return
        if not isinstance(data, YMap):
            raise InventoryError(
                f"an inventory file must be a mapping, got {type_name(data)}",
                getattr(data, "loc", Location(str(path), 1, 1)),
            )
        if "all" in data:
            self._ansible_file(data, path)
        else:
            self._native_file(data, path)

    # ---- hlplay's layout ---------------------------------------------------------------

    def _native_file(self, data: YMap, path: Path) -> None:
        _check_keys(
            data,
            NATIVE_KEYS,
            "an inventory file",
            "; expected hlplay, hosts, groups and vars, or Ansible's all",
        )
        if "hlplay" in data:
            self.settings.add(data["hlplay"], data.loc_of("hlplay"), path.parent)
        if "vars" in data:
            _merge_vars(
                self.groups["all"].vars, data["vars"], "all", data.loc_of("vars"), override=False
            )
        hosts = data.get("hosts")
        if hosts is not None:
            if not isinstance(hosts, YMap):
                raise InventoryError(
                    f"'hosts' must be a mapping of host names, got {type_name(hosts)}",
                    data.loc_of("hosts"),
                )
            for raw, body in hosts.items():
                self._native_host(raw, body, hosts.loc_of(raw))
        groups = data.get("groups")
        if groups is not None:
            if not isinstance(groups, YMap):
                raise InventoryError(
                    f"'groups' must be a mapping of group names, got {type_name(groups)}",
                    data.loc_of("groups"),
                )
            for name, body in groups.items():
                self._native_group(name, body, groups.loc_of(name))

    def _native_host(self, raw: str, body: Any, loc: Location) -> None:
        if body is not None and not isinstance(body, YMap):
            raise InventoryError(
                f"host '{raw}' must be a mapping (tier, roles, address, transport, "
                f"protocol, ssh, vars), got {type_name(body)}",
                loc,
            )
        if body is not None:
            _check_keys(body, HOST_KEYS, f"host '{raw}'")
        for name in expand_host_range(raw, loc):
            check_host_name(name, loc)
            decl = self._declare_host(name, loc, native=True)
            if decl.defined_at is not None:
                raise InventoryError(
                    f"host '{name}' is defined twice (first at {decl.defined_at})", loc
                )
            decl.defined_at = loc
            if body is None:
                continue
            for key in ("tier", "roles", "address", "transport", "protocol"):
                if key in body:
                    decl.attrs[key] = (body[key], body.loc_of(key))
            ssh = body.get("ssh")
            if ssh is not None:
                if not isinstance(ssh, YMap):
                    raise InventoryError(
                        f"'ssh' of host '{name}' must be a mapping, got {type_name(ssh)}",
                        body.loc_of("ssh"),
                    )
                _check_keys(ssh, tuple(SSH_SCHEMA), f"'ssh' of host '{name}'")
                for key, value in ssh.items():
                    decl.attrs[key] = (value, ssh.loc_of(key))
            if "vars" in body:
                if decl.vars is _EMPTY:
                    decl.vars = YMap()
                _merge_vars(
                    decl.vars, body["vars"], f"host '{name}'", body.loc_of("vars"), override=False
                )

    def _native_group(self, name: str, body: Any, loc: Location) -> None:
        if name in SPECIAL_GROUPS:
            raise InventoryError(
                f"group '{name}' is built in: "
                + (
                    "put its variables under the top-level 'vars:'"
                    if name == "all"
                    else "it holds the hosts of no other group"
                ),
                loc,
            )
        check_group_name(name, loc)
        decl = self.groups.get(name)
        if decl is None:
            decl = self.groups[name] = _GroupDecl(name, loc)
        elif decl.defined_at is not None:
            raise InventoryError(
                f"group '{name}' is defined twice (first at {decl.defined_at})", loc
            )
        decl.defined_at = loc
        if body is None:
            return
        if not isinstance(body, YMap):
            raise InventoryError(
                f"group '{name}' must be a mapping (hosts, children, vars), got {type_name(body)}",
                loc,
            )
        _check_keys(body, GROUP_KEYS, f"group '{name}'")
        for raw, hloc in _name_list(
            body.get("hosts"), f"'hosts' of group '{name}'", body.loc_of("hosts")
        ):
            decl.hosts.extend((h, hloc) for h in expand_host_range(raw, hloc))
        decl.children.extend(
            _name_list(
                body.get("children"), f"'children' of group '{name}'", body.loc_of("children")
            )
        )
        if "vars" in body:
            _merge_vars(
                decl.vars, body["vars"], f"group '{name}'", body.loc_of("vars"), override=False
            )

    # ---- Ansible's layout --------------------------------------------------------------

    def _ansible_file(self, data: YMap, path: Path) -> None:
        for key, body in data.items():
            loc = data.loc_of(key)
            if key == "hlplay":
                self.settings.add(body, loc, path.parent)
            elif key in ("hosts", "groups", "vars"):
                raise InventoryError(
                    f"'{key}' at the top level mixes hlplay's layout with Ansible's 'all:'; "
                    f"put it under 'all:'",
                    loc,
                )
            else:
                self._ansible_group(key, body, loc, parent=None)

    def _ansible_group(self, name: str, body: Any, loc: Location, parent: str | None) -> None:
        if name == "all" and parent is not None:
            raise InventoryError("'all' cannot be the child of another group", loc)
        if name not in SPECIAL_GROUPS:
            check_group_name(name, loc)
        decl = self.groups.get(name)
        if decl is None:
            decl = self.groups[name] = _GroupDecl(name, loc)
        if parent is not None and parent != "all" and name != "ungrouped":
            self.groups[parent].children.append((name, loc))
        if body is None:
            return
        if not isinstance(body, YMap):
            raise InventoryError(
                f"group '{name}' must be a mapping (hosts, children, vars), got {type_name(body)}",
                loc,
            )
        _check_keys(body, GROUP_KEYS, f"group '{name}'")
        hosts = body.get("hosts")
        if hosts is not None:
            if not isinstance(hosts, YMap):
                raise InventoryError(
                    f"'hosts' of group '{name}' must be a mapping of host names, "
                    f"got {type_name(hosts)}",
                    body.loc_of("hosts"),
                )
            for raw, hvars in hosts.items():
                hloc = hosts.loc_of(raw)
                for hname in expand_host_range(raw, hloc):
                    check_host_name(hname, hloc)
                    hdecl = self._declare_host(hname, hloc, native=False)
                    if hvars is not None:
                        if hdecl.vars is _EMPTY:
                            hdecl.vars = YMap()
                        _merge_vars(hdecl.vars, hvars, f"host '{hname}'", hloc, override=False)
                    if name not in SPECIAL_GROUPS:
                        decl.hosts.append((hname, hloc))
        if "vars" in body:
            _merge_vars(
                decl.vars, body["vars"], f"group '{name}'", body.loc_of("vars"), override=False
            )
        children = body.get("children")
        if children is not None:
            if not isinstance(children, YMap):
                raise InventoryError(
                    f"'children' of group '{name}' must be a mapping of group names, "
                    f"got {type_name(children)}",
                    body.loc_of("children"),
                )
            for child, cbody in children.items():
                self._ansible_group(child, cbody, children.loc_of(child), parent=name)

    def _declare_host(self, name: str, loc: Location, *, native: bool) -> _HostDecl:
        decl = self.hosts.get(name)
        if decl is None:
            decl = self.hosts[name] = _HostDecl(name, loc)
        if native:
            decl.native = True
            decl.loc = loc
        return decl

    # ---- group_vars/ and host_vars/ ----------------------------------------------------

    def load_vars_dirs(self) -> None:
        for root in self.vars_roots:
            self._vars_dir(root / "group_vars", self.group_files, self.group_file_locs, "group")
            self._vars_dir(root / "host_vars", self.host_files, self.host_file_locs, "host")

    def _vars_dir(
        self, directory: Path, into: dict[str, YMap], locs: dict[str, Location], kind: str
    ) -> None:
        if not directory.is_dir():
            return
        for entry in sorted(directory.iterdir()):
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                files = sorted(
                    p
                    for p in entry.rglob("*")
                    if p.is_file() and p.suffix in VARS_SUFFIXES and not p.name.startswith(".")
                )
                name = entry.name
            elif entry.suffix in VARS_SUFFIXES:
                files = [entry]
                name = entry.stem if entry.suffix else entry.name
            else:
                continue
            target = into.setdefault(name, YMap())
            locs.setdefault(name, Location(str(entry)))
            for file in files:
                data = load_yaml_file(file)
                _merge_vars(
                    target, data, f"{kind} '{name}'", Location(str(file), 1, 1), override=True
                )

    # ---- resolution --------------------------------------------------------------------

    def build(self) -> Inventory:
        settings = self.settings.build()
        self.load_vars_dirs()
        explicit = [g for g in self.groups if g not in SPECIAL_GROUPS]
        self._check_references(explicit)
        parents = self._parents(explicit)
        depth = self._depths(explicit, parents)  # after _parents: also rejects cycles
        combined = {name: self._group_vars(name) for name in self.groups}
        priority = {g: self._priority(g, combined[g]) for g in explicit}
        sort_key = {g: (depth[g], priority[g], g) for g in explicit}

        direct: dict[str, list[str]] = {}
        for g in explicit:
            for h, _ in self.groups[g].hosts:
                lst = direct.setdefault(h, [])
                if g not in lst:
                    lst.append(g)
        ancestors: dict[str, frozenset[str]] = {}

        def anc(g: str) -> frozenset[str]:
            got = ancestors.get(g)
            if got is None:
                acc = {g}
                for p in parents.get(g, ()):
                    acc |= anc(p)
                got = ancestors[g] = frozenset(acc)
            return got

        explicit_chain: dict[tuple[str, ...], tuple[str, ...]] = {}
        resolver = _AttrResolver(combined)
        valid_tiers: set[str] = set()

        # phase 1: tier and roles, from every layer but the implicit groups
        host_chain0: dict[str, tuple[str, ...]] = {}
        tiers: dict[str, str] = {}
        roles: dict[str, tuple[str, ...]] = {}
        for name, decl in self.hosts.items():
            key = tuple(direct.get(name, ()))
            chain0 = explicit_chain.get(key)
            if chain0 is None:
                members: set[str] = set()
                for g in key:
                    members |= anc(g)
                ordered = sorted(members, key=sort_key.__getitem__)
                chain0 = ("all", *ordered) if ordered else ("all", "ungrouped")
                explicit_chain[key] = chain0
            host_chain0[name] = chain0
            found = resolver.resolve(decl, self.host_files.get(name), chain0, PHASE1)
            tier_f = found.get("tier")
            if tier_f is None:
                tiers[name] = settings.defaults.tier
            elif tier_f[0] in valid_tiers:
                tiers[name] = tier_f[0]
            else:
                tiers[name] = check_token("tier", tier_f[0], tier_f[1])
                valid_tiers.add(tiers[name])
            roles_f = found.get("roles")
            roles[name] = _roles(roles_f) if roles_f else ()

        tier_names = list(dict.fromkeys(tiers.values()))
        role_names = list(dict.fromkeys(r for rs in roles.values() for r in rs))
        implicit = [f"tier_{t}" for t in tier_names] + [f"role_{r}" for r in role_names]
        self._check_vars_files(explicit, implicit)
        for g in implicit:
            combined[g] = self._group_vars(g)

        # phase 2: everything else, with the implicit groups' variables in the chain
        hosts: dict[str, Host] = {}
        group_chain: dict[str, list[str]] = {}
        chains: dict[tuple[Any, ...], tuple[list[str], tuple[str, ...]]] = {}
        ssh_cache: dict[tuple[Any, ...], SshSettings] = {}
        members_map: dict[str, list[str]] = {g: [] for g in (*self.groups, *implicit)}
        for name, decl in self.hosts.items():
            chain0 = host_chain0[name]
            tier = tiers[name]
            hroles = roles[name]
            key2 = (id(chain0), tier, hroles)
            got = chains.get(key2)
            if got is None:
                chain = [chain0[0]]
                if chain0[1:] == ("ungrouped",):
                    chain.append("ungrouped")
                chain.append(f"tier_{tier}")
                chain.extend(f"role_{r}" for r in hroles)
                chain.extend(g for g in chain0[1:] if g != "ungrouped")
                got = chains[key2] = (chain, tuple(chain))
            chain, chain_t = got
            group_chain[name] = chain
            for g in chain:
                members_map[g].append(name)
            found = resolver.resolve(decl, self.host_files.get(name), chain_t, PHASE2)
            hosts[name] = self._host(decl, tier, hroles, found, settings, ssh_cache)

        groups = self._groups(explicit, implicit, parents, members_map, combined)
        inventory = Inventory(
            hosts=hosts,
            groups=groups,
            settings=settings,
            sources=tuple(self.sources),
            group_chain=group_chain,
            group_vars_files={k: v for k, v in self.group_files.items() if v},
            host_vars_files={k: v for k, v in self.host_files.items() if v},
            members=members_map,
        )
        from hlplay.inventory.targets import subject_index

        subject_index(inventory)  # rejects host subjects that other listeners share
        return inventory

    def _group_vars(self, name: str) -> YMap:
        """A group's inline variables overridden by its group_vars/ files."""
        out = YMap()
        decl = self.groups.get(name)
        if decl is not None:
            out.update(decl.vars)
            out.key_locs.update(decl.vars.key_locs)
        files = self.group_files.get(name)
        if files:
            out.update(files)
            out.key_locs.update(files.key_locs)
        return out

    def _priority(self, name: str, merged: Mapping[str, Any]) -> int:
        value = merged.get("ansible_group_priority", 1)
        if isinstance(value, bool) or not isinstance(value, int):
            loc = (
                merged.key_locs.get("ansible_group_priority") if isinstance(merged, YMap) else None
            )
            raise InventoryError(
                f"ansible_group_priority of group '{name}' must be a whole number",
                loc or self.groups[name].loc,
            )
        return value

    def _check_references(self, explicit: list[str]) -> None:
        for g in explicit:
            decl = self.groups[g]
            for h, loc in decl.hosts:
                if h not in self.hosts:
                    raise InventoryError(
                        f"group '{g}' lists undefined host '{h}'" + did_you_mean(h, self.hosts),
                        loc,
                    )
            for child, loc in decl.children:
                if child in SPECIAL_GROUPS or child.startswith(("tier_", "role_")):
                    raise InventoryError(
                        f"group '{g}' cannot have '{child}' as a child: it is made by hlplay "
                        f"(select it with a pattern instead)",
                        loc,
                    )
                if child not in self.groups:
                    raise InventoryError(
                        f"group '{g}' has undefined child group '{child}'"
                        + did_you_mean(child, explicit),
                        loc,
                    )
        for g in explicit:
            if g in self.hosts:
                raise InventoryError(
                    f"group '{g}' has the same name as a host (at {self.hosts[g].loc})",
                    self.groups[g].loc,
                )

    def _parents(self, explicit: list[str]) -> dict[str, list[str]]:
        parents: dict[str, list[str]] = {}
        for g in explicit:
            for child, _ in self.groups[g].children:
                lst = parents.setdefault(child, [])
                if g not in lst:
                    lst.append(g)
        return parents

    def _depths(self, explicit: list[str], parents: dict[str, list[str]]) -> dict[str, int]:
        """Each group's depth below ``all``; a cycle in ``children`` is an error."""
        state: dict[str, int] = {}  # 1 = on the current path, 2 = done
        depth: dict[str, int] = {}
        path: list[str] = []

        def visit(g: str) -> None:
            state[g] = 1
            path.append(g)
            for child, loc in self.groups[g].children:
                if state.get(child) == 1:
                    cycle = [*path[path.index(child) :], child]
                    raise InventoryError("cycle in children: " + " -> ".join(cycle), loc)
                if state.get(child) != 2:
                    visit(child)
            path.pop()
            state[g] = 2

        for g in explicit:
            if g not in state:
                visit(g)

        def dep(g: str) -> int:
            got = depth.get(g)
            if got is None:
                ps = parents.get(g)
                got = depth[g] = 1 + max(dep(p) for p in ps) if ps else 1
            return got

        for g in explicit:
            dep(g)
        return depth

    def _check_vars_files(self, explicit: list[str], implicit: list[str]) -> None:
        known = [*SPECIAL_GROUPS, *explicit, *implicit]
        known_set = set(known)
        for name, loc in self.group_file_locs.items():
            if name not in known_set:
                hint = did_you_mean(name, known)
                if not hint and name.startswith(("tier_", "role_")):
                    hint = " (no host has that tier or role)"
                raise InventoryError(f"group_vars for undefined group '{name}'{hint}", loc)
        for name, loc in self.host_file_locs.items():
            if name not in self.hosts:
                raise InventoryError(
                    f"host_vars for undefined host '{name}'" + did_you_mean(name, self.hosts), loc
                )

    def _host(
        self,
        decl: _HostDecl,
        tier: str,
        roles: tuple[str, ...],
        found: dict[str, tuple[Any, Location, str]],
        settings: Settings,
        ssh_cache: dict[tuple[Any, ...], SshSettings],
    ) -> Host:
        typed: dict[str, Any] = {}
        for attr, (value, loc, var) in found.items():
            if attr == "transport" and var == "ansible_connection":
                conn = ANSIBLE_CONNECTIONS.get(str(value))
                if conn is None:
                    raise InventoryError(
                        f"'{var}' of host '{decl.name}': connection '{value}' is not supported "
                        "(use local or ssh, or transport: nats)",
                        loc,
                    )
                typed[attr] = conn
                continue
            if attr == "address" and type(value) is str and ADDRESS_RE.fullmatch(value):
                typed[attr] = value  # the common case, without building an error label
                continue
            what = f"'{var}' of host '{decl.name}'"
            typed[attr] = coerce(ATTR_KINDS[attr], value, what, loc, os.path.dirname(loc.file))
        transport = typed.pop("transport", None)
        if transport is None:
            transport = settings.defaults.transport or ("nats" if decl.native else "ssh")
        protocol = typed.pop("protocol", "hlplay")
        address = typed.pop("address", None)
        defaults = settings.defaults.ssh
        if typed:
            ssh_key = tuple(typed.get(k, getattr(defaults, k)) for k in SSH_SCHEMA)
            ssh = ssh_cache.get(ssh_key)
            if ssh is None:
                ssh = ssh_cache[ssh_key] = SshSettings(
                    **dict(zip(SSH_SCHEMA, ssh_key, strict=True))
                )
        else:
            ssh = defaults
        return Host(
            name=decl.name,
            tier=tier,
            roles=roles,
            address=address,
            transport=transport,
            protocol=protocol,
            ssh=ssh,
            vars=_resolve_path_vars(decl.vars, decl.loc) if decl.vars is not _EMPTY else {},
            location=decl.loc,
        )

    def _groups(
        self,
        explicit: list[str],
        implicit: list[str],
        parents: dict[str, list[str]],
        members: dict[str, list[str]],
        combined: dict[str, YMap],
    ) -> dict[str, Group]:
        out: dict[str, Group] = {}
        top = [g for g in explicit if not parents.get(g)]
        out["all"] = Group(
            "all",
            children=[*top, "ungrouped", *implicit],
            vars=self.groups["all"].vars,
            location=None,
            implicit=True,
        )
        out["ungrouped"] = Group(
            "ungrouped",
            hosts=list(members["ungrouped"]),
            vars=self.groups["ungrouped"].vars,
            implicit=True,
        )
        for g in explicit:
            decl = self.groups[g]
            out[g] = Group(
                g,
                hosts=list(dict.fromkeys(h for h, _ in decl.hosts)),
                children=list(dict.fromkeys(c for c, _ in decl.children)),
                vars=decl.vars,
                location=decl.loc,
            )
        for g in implicit:
            out[g] = Group(g, hosts=list(members[g]), implicit=True)
        return out


class _AttrResolver:
    """Finds each host attribute in the highest variable layer that sets it.

    Group layers are the same for every host sharing a group chain, so their
    contribution is computed once per chain.
    """

    def __init__(self, combined: dict[str, YMap]) -> None:
        self.combined = combined
        # by (id(chain), id(attrs)): chains are shared tuples that live as long as this
        self.cache: dict[tuple[int, int], dict[str, tuple[Any, Location, str]]] = {}

    @staticmethod
    def layer(d: Mapping[str, Any], attrs: Iterable[str]) -> dict[str, tuple[Any, Location, str]]:
        out: dict[str, tuple[Any, Location, str]] = {}
        if not d:
            return out
        fallback = d.loc if isinstance(d, YMap) else Location("<unknown>")
        for attr in attrs:
            for var in ATTR_VARS[attr]:
                if var in d:
                    loc = d.key_locs.get(var, fallback) if isinstance(d, YMap) else fallback
                    out[attr] = (d[var], loc, var)
                    break
        return out

    def chain(
        self, chain: tuple[str, ...], attrs: tuple[str, ...]
    ) -> dict[str, tuple[Any, Location, str]]:
        key = (id(chain), id(attrs))
        got = self.cache.get(key)
        if got is None:
            got = {}
            for g in chain:
                d = self.combined.get(g)
                if d:
                    got.update(self.layer(d, attrs))
            self.cache[key] = got
        return got

    def resolve(
        self,
        decl: _HostDecl,
        host_file: YMap | None,
        chain: tuple[str, ...],
        attrs: tuple[str, ...],
    ) -> dict[str, tuple[Any, Location, str]]:
        found = self.chain(chain, attrs)
        if not decl.vars and not decl.attrs and not host_file:
            return found
        found = dict(found)
        if decl.vars:
            found.update(self.layer(decl.vars, attrs))
        for attr, got in decl.attrs.items():
            if attr in attrs:
                found[attr] = (got[0], got[1], attr)
        if host_file:
            found.update(self.layer(host_file, attrs))
        return found


_VALID_ROLES: set[str] = set()


def _roles(found: tuple[Any, Location, str]) -> tuple[str, ...]:
    value, loc, var = found
    if isinstance(value, str):
        items: list[Any] = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, list):
        items = list(value)
    else:
        raise InventoryError(f"'{var}' must be a list of role names, got {type_name(value)}", loc)
    out: list[str] = []
    for i, item in enumerate(items):
        if not isinstance(item, str) or item not in _VALID_ROLES:
            iloc = value.loc_of(i) if isinstance(value, YList) else loc
            _VALID_ROLES.add(check_token("role", item, iloc))
        if item not in out:
            out.append(item)
    return tuple(out)


def load_inventory(paths: str | Path | Sequence[str | Path]) -> Inventory:
    """Load one or more inventory files or directories into one :class:`Inventory`.

    Raises :class:`InventoryError` (or another :class:`HlplayError`) with the
    file, line and column of the first problem.
    """
    sources: Sequence[str | Path] = [paths] if isinstance(paths, (str, Path)) else paths
    if not sources:
        raise InventoryError("no inventory given (use -i PATH)")
    builder = _Builder()
    # Loading allocates many small objects and frees almost none: the cyclic GC
    # would rescan them over and over (a third of the time on a large fleet).
    # A large inventory then usually lives as long as the process and holds no
    # cycles, so it is frozen out of later collections too (reference counting
    # still frees it); otherwise the next collections would scan it all again.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for source in sources:
            builder.add_source(source)
        inventory = builder.build()
        del builder
        if gc_was_enabled and len(inventory.hosts) >= FREEZE_HOSTS:
            gc.freeze()
        return inventory
    except InventoryError:
        raise
    except HlplayError as exc:
        # YAML syntax errors and unreadable files: still inventory errors to the caller
        raise InventoryError(exc.message, exc.location) from None
    finally:
        if gc_was_enabled:
            gc.enable()
