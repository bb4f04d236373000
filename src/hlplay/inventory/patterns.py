"""Host patterns: Ansible's selection language, plus attribute selectors.

A pattern is a list of terms separated by ``,`` (or by ``:`` when the pattern
has no ``,``, as in Ansible). Each term is one of:

* a group or host name (a group wins over a host of the same name — the loader
  forbids that anyway), ``all`` or ``*``;
* a glob (``web*``, ``db-?``) or a regular expression (``~web\\d+``), matched
  against group and host names;
* an attribute selector: ``tier=test``, ``role=web``, ``tier!=prod``,
  ``transport=ssh``, or any variable ``key=value`` (values compare as strings,
  ``true``/``false`` for booleans; a list matches if it holds the value; a value
  with ``*``, ``?`` or ``[`` is a glob);

optionally followed by a subscript ``[0]``, ``[-1]``, ``[1:3]``, ``[2:]``
(positions in inventory order, end inclusive, as in Ansible), and prefixed by
``&`` (intersection) or ``!`` (exclusion). As in Ansible, the plain terms are
applied first, then the ``&`` terms, then the ``!`` terms; with no plain term
the base is ``all``. The result is in inventory order.

Unlike Ansible, a term that matches nothing — a typo, most likely — is an
error that names the closest names, never a silent no-op: a mistyped exclusion
must not widen a deployment.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hlplay.errors import HlplayError, Location, SelectionError, did_you_mean
from hlplay.inventory.members import derive_members as derive_members  # re-exported
from hlplay.inventory.model import Inventory
from hlplay.inventory.variables import host_variable
from hlplay.yamlsrc import read_user_file

ATTR_RE = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_]*)(?P<op>!=|=)(?P<value>.*)$")
SUBSCRIPT_RE = re.compile(r"^(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]*))\]$")
COLON_SPLIT_RE = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")
GLOB_CHARS = frozenset("*?[")
ROLE_KEYS = ("role", "roles")


@dataclass(frozen=True)
class Term:
    """One term of a pattern."""

    text: str  # as written, with its operator
    op: str  # "" | "&" | "!"
    body: str  # without operator and subscript
    subscript: tuple[int, int | None] | None = None


def split_pattern(pattern: str) -> list[str]:
    """Split a pattern into terms, as Ansible's ``split_host_pattern`` does.

    Ansible silently drops what its ``:`` splitter cannot place (a stray ``[``
    or ``]``); here that is an error, since a term dropped from a limit widens it.
    """
    if "," in pattern:
        parts = pattern.split(",")
    else:
        parts = COLON_SPLIT_RE.findall(pattern)
        left = COLON_SPLIT_RE.sub("", pattern)
        if left.strip(" \t\n:"):
            raise SelectionError(
                f"unbalanced brackets in host pattern '{pattern}' "
                "(a subscript is written name[0], name[1:3] or name[2:])"
            )
    return [p.strip() for p in parts if p.strip()]


def parse_term(text: str) -> Term:
    op = text[0] if text[0] in "&!" else ""
    body = text[1:].strip() if op else text
    if not body:
        raise SelectionError(f"empty term '{text}' in host pattern")
    subscript: tuple[int, int | None] | None = None
    if not body.startswith("~"):
        m = SUBSCRIPT_RE.match(body)
        if m:
            body, idx, start, _sep, end = m.groups()
            if idx is not None:
                subscript = (int(idx), None)
            else:
                subscript = (int(start), int(end) if end else -1)
    return Term(text, op, body, subscript)


def order_terms(terms: list[Term]) -> list[Term]:
    plain = [t for t in terms if t.op == ""]
    inter = [t for t in terms if t.op == "&"]
    excl = [t for t in terms if t.op == "!"]
    if not plain:
        plain = [Term("all", "", "all")]
    return plain + inter + excl


class _Matcher:
    """Evaluates terms against one inventory, with indexes cached on it."""

    def __init__(self, inventory: Inventory) -> None:
        self.inv = inventory
        cache = inventory.cache
        order = cache.get("host_order")
        if order is None:
            order = cache["host_order"] = {h: i for i, h in enumerate(inventory.hosts)}
        self.order: dict[str, int] = order
        if not inventory.members and inventory.hosts:
            inventory.members = derive_members(inventory)
        # explicit groups and the implicit ones (all, ungrouped, tier_*, role_*)
        self.groups: list[str] = list(dict.fromkeys([*inventory.groups, *inventory.members]))

    # ---- one term ------------------------------------------------------------------

    def match(self, term: Term) -> list[str]:
        """Hosts the term's body matches, subscript applied."""
        attr = None if term.body.startswith("~") else ATTR_RE.match(term.body)
        if attr is not None:
            hosts = self._attribute(term, attr.group("key"), attr.group("op"), attr.group("value"))
        elif term.subscript is not None and term.body in self.inv.members:
            hosts = self._group_order(term.body)
        else:
            hosts = self._names(term)
        if term.subscript is not None:
            hosts = self._subscript(term, hosts)
        return hosts

    def _group_order(self, name: str) -> list[str]:
        """A group's hosts as Ansible orders them for subscripts: its own, then its
        children's (breadth first); implicit groups in inventory order."""
        group = self.inv.groups.get(name)
        if group is None or group.implicit:
            return list(self.inv.members.get(name, ()))
        out: dict[str, None] = {}
        queue = [name]
        seen = {name}
        while queue:
            g = self.inv.groups.get(queue.pop(0))
            if g is None:
                continue
            out.update(dict.fromkeys(g.hosts))
            for child in g.children:
                if child not in seen:
                    seen.add(child)
                    queue.append(child)
        return list(out)

    def _names(self, term: Term) -> list[str]:
        body = term.body
        inv = self.inv
        if body in ("all", "*"):
            return list(inv.hosts)
        if body.startswith("~"):
            try:
                rx = re.compile(body[1:])
            except re.error as exc:
                raise SelectionError(f"invalid regular expression '{body}': {exc}") from None
            test: Callable[[str], Any] = rx.match
        elif GLOB_CHARS.intersection(body):
            test = re.compile(fnmatch.translate(body)).match
        else:
            if body in inv.members:
                return list(inv.members[body])
            if body in inv.hosts:
                return [body]
            raise SelectionError(
                f"no host or group named '{body}'" + _suggest(body, [*self.groups, *inv.hosts])
            )
        found: set[str] = set()
        named = False
        for g in self.groups:
            if test(g):
                named = True
                found.update(inv.members.get(g, ()))
        for h in inv.hosts:
            if test(h):
                named = True
                found.add(h)
        if not named:
            raise SelectionError(
                f"no host or group name matches '{body}'"
                + _suggest(body, [*self.groups, *inv.hosts])
            )
        return sorted(found, key=self.order.__getitem__)

    def _attribute(self, term: Term, key: str, op: str, value: str) -> list[str]:
        inv = self.inv
        equal = _value_test(value)
        hosts = inv.hosts
        if key in ROLE_KEYS:
            hit = [h for h, host in hosts.items() if any(equal(r) for r in host.roles)]
            known: list[str] = list(dict.fromkeys(r for host in hosts.values() for r in host.roles))
            what = "role"
        elif key in ("tier", "transport", "address"):
            if key == "tier":
                hit = [h for h, host in hosts.items() if equal(host.tier)]
                known = list(dict.fromkeys(host.tier for host in hosts.values()))
            elif key == "transport":
                hit = [h for h, host in hosts.items() if equal(host.transport)]
                known = list(dict.fromkeys(host.transport for host in hosts.values()))
            else:
                hit = [h for h, host in hosts.items() if equal(host.reach)]
                known = [host.reach for host in hosts.values()]
            what = key
        elif key in ("name", "host", "inventory_hostname"):
            hit = [h for h in hosts if equal(h)]
            known = list(hosts)
            what = "host name"
        else:
            hit = []
            seen: dict[str, None] = {}
            has_key = False
            for h in hosts:
                found, v = host_variable(inv, h, key)
                if not found:
                    continue
                has_key = True
                items = v if isinstance(v, list) else [v]
                texts = [_as_text(x) for x in items]
                if len(seen) < 1000:
                    seen.update(dict.fromkeys(texts))
                if any(equal(t) for t in texts):
                    hit.append(h)
            if not has_key:
                raise SelectionError(
                    f"no host has a variable '{key}'" + _suggest(key, _var_names(inv))
                )
            known = list(seen)
            what = ""
        if not hit:
            has = f"{what} '{value}'" if what else f"{key}={value}"
            raise SelectionError(f"no host has {has}" + _suggest(value, known))
        if op == "!=":
            hit_set = set(hit)
            return [h for h in hosts if h not in hit_set]
        return hit

    def _subscript(self, term: Term, hosts: list[str]) -> list[str]:
        assert term.subscript is not None
        start, end = term.subscript
        if end is None:
            try:
                return [hosts[start]]
            except IndexError:
                raise SelectionError(
                    f"'{term.text}': index {start} is out of range "
                    f"('{term.body}' has {len(hosts)} hosts)"
                ) from None
        if end == -1:
            end = len(hosts) - 1
        picked = hosts[start : end + 1]
        if not picked:
            raise SelectionError(
                f"'{term.text}': range is out of range ('{term.body}' has {len(hosts)} hosts)"
            )
        return picked


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def _value_test(value: str) -> Callable[[str], bool]:
    if GLOB_CHARS.intersection(value):
        rx = re.compile(fnmatch.translate(value))
        return lambda text: rx.match(text) is not None
    return lambda text: text == value


def _suggest(word: str, names: Sequence[str]) -> str:
    """The closest names to ``word``: a did-you-mean, else names that look alike."""
    uniq = list(dict.fromkeys(names))
    hint = did_you_mean(word, uniq)
    if hint:
        return hint
    lowered = word.lower().strip("*?~")
    alike = [n for n in uniq if lowered and (lowered in n.lower() or n.lower() in lowered)]
    alike = alike or difflib.get_close_matches(word, uniq, n=3, cutoff=0.3)
    if alike:
        return " (closest: " + ", ".join(alike[:3]) + ")"
    if 0 < len(uniq) <= 8:
        return " (known: " + ", ".join(uniq) + ")"
    return ""


def _var_names(inv: Inventory) -> list[str]:
    names: dict[str, None] = {}
    for group in inv.groups.values():
        names.update(dict.fromkeys(group.vars))
    for files in inv.group_vars_files.values():
        names.update(dict.fromkeys(files))
    for files in inv.host_vars_files.values():
        names.update(dict.fromkeys(files))
    for i, host in enumerate(inv.hosts.values()):
        if i > 2000:
            break
        names.update(dict.fromkeys(host.vars))
    return list(names)


def _evaluate(inv: Inventory, terms: list[Term], label: str) -> list[str]:
    matcher = _Matcher(inv)
    present: set[str] = set()
    for term in order_terms(terms):
        try:
            hosts = matcher.match(term)
        except SelectionError as exc:
            where = label if len(terms) == 1 else f"{label}, term '{term.text}'"
            raise SelectionError(f"{where}: {exc.message}") from None
        if term.op == "":
            present.update(hosts)
        elif term.op == "&":
            keep = set(hosts)
            present &= keep
        else:
            present -= set(hosts)
    order = matcher.order
    return sorted(present, key=order.__getitem__)


def select_hosts(
    inventory: Inventory, pattern: str | Sequence[str], *, location: Location | None = None
) -> list[str]:
    """Hosts matching ``pattern``, in inventory order.

    Raises :class:`SelectionError` (naming the closest names) when a term or the
    whole pattern matches nothing. ``location`` places the error (a play's ``hosts:``).
    """
    text = pattern if isinstance(pattern, str) else ",".join(pattern)
    try:
        terms = [parse_term(t) for t in split_pattern(text)]
        if not terms:
            raise SelectionError("empty host pattern")
        hosts = _evaluate(inventory, terms, f"pattern '{text}'")
        if not hosts:
            raise SelectionError(f"pattern '{text}' matches no hosts")
    except SelectionError as exc:
        if location is not None and exc.location is None:
            raise SelectionError(exc.message, location) from None
        raise
    return hosts


def _limit_terms(limit: str) -> list[str]:
    out: list[str] = []
    for term in split_pattern(limit):
        if not term.startswith("@"):
            out.append(term)
            continue
        path = Path(term[1:])
        if not term[1:]:
            raise SelectionError("--limit '@': a file name must follow '@'")
        try:
            # a FIFO or a device would block the open or never end: refused unopened
            text = read_user_file(path)
        except HlplayError as exc:
            why = exc.message.removeprefix("cannot read: ")
            if why == "no such file":
                why = "No such file or directory"  # as the limit file's error always said
            raise SelectionError(f"cannot read limit file: {why}", Location(str(path))) from None
        lines = [ln.strip() for ln in text.splitlines()]
        found = [ln for ln in lines if ln and not ln.startswith("#")]
        if not found:
            raise SelectionError("limit file lists no hosts", Location(str(path)))
        out.extend(found)
    return out


def apply_limit(
    inventory: Inventory,
    hosts: Sequence[str],
    limit: str | None,
    *,
    location: Location | None = None,
) -> list[str]:
    """Keep the ``hosts`` that the ``--limit`` pattern matches, in their order.

    The limit itself must match some host of the inventory (else
    :class:`SelectionError`); that it leaves none of ``hosts`` is not an error
    here — a play then has no hosts, as in Ansible.
    """
    if limit is None or not limit.strip():
        return list(hosts)
    label = f"limit '{limit}'"
    try:
        terms = [parse_term(t) for t in _limit_terms(limit)]
        if not terms:
            # a limit with no term must not mean "no limit": that would widen the run
            raise SelectionError(f"{label}: empty host pattern")
        allowed = set(_evaluate(inventory, terms, label))
        if not allowed:
            raise SelectionError(f"{label} matches no hosts")
    except SelectionError as exc:
        if exc.location is None and location is not None:
            raise SelectionError(exc.message, location) from None
        raise
    return [h for h in hosts if h in allowed]
