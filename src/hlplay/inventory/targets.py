"""Compile a host selection into deploy targets.

Listener hosts are reached through the fewest NATS subjects that reach exactly
the selected hosts (``deploy.<tier>.all``, ``deploy.<tier>.role.<role>``,
``deploy.<tier>.<host>``); a subject is used only when every listener host it
reaches is selected. Hosts without a listener become direct (SSH or local)
targets.

Subjects are also chosen pairwise disjoint: a host that two subjects reach
would receive the request twice (and reject the second as already running).
Choosing the fewest disjoint subjects is a maximum-weight set packing (each
tier or role subject of ``n`` hosts saves ``n - 1`` host subjects): it is solved
exactly for each group of overlapping candidates of up to ``EXACT_LIMIT``
subjects, greedily beyond (largest first) — in practice tiers and roles barely
overlap and groups are tiny.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hlplay.errors import InventoryError, SelectionError, did_you_mean
from hlplay.inventory.model import Host, Inventory

EXACT_LIMIT = 16
KIND_RANK = {"tier": 0, "role": 1, "host": 2}


@dataclass(frozen=True)
class NatsTarget:
    """One NATS subject and the hosts expected to answer a request sent to it."""

    subject: str
    tier: str
    kind: str  # "tier" | "role" | "host"
    hosts: frozenset[str]

    def to_dict(self, order: dict[str, int] | None = None) -> dict[str, Any]:
        hosts = sorted(self.hosts, key=order.__getitem__) if order else sorted(self.hosts)
        return {"subject": self.subject, "tier": self.tier, "kind": self.kind, "hosts": hosts}


@dataclass(frozen=True)
class DirectTarget:
    """A host reached without a listener: over SSH or on the controller itself."""

    host: str
    transport: str  # "ssh" | "local"
    address: str

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "transport": self.transport, "address": self.address}


@dataclass
class TargetPlan:
    nats: list[NatsTarget] = field(default_factory=list)
    direct: list[DirectTarget] = field(default_factory=list)

    @property
    def subjects(self) -> list[str]:
        return [t.subject for t in self.nats]

    def expected_hosts(self) -> set[str]:
        out: set[str] = set()
        for t in self.nats:
            out |= t.hosts
        return out | {d.host for d in self.direct}

    def to_dict(self, order: dict[str, int] | None = None) -> dict[str, Any]:
        return {
            "nats": [t.to_dict(order) for t in self.nats],
            "direct": [d.to_dict() for d in self.direct],
        }


@dataclass
class SubjectIndex:
    """Which listener hosts subscribe to each deploy subject."""

    subscribers: dict[str, list[str]]  # subject -> hosts, inventory order
    kind: dict[str, str]  # subject -> "host" | "tier" | "role"
    tier: dict[str, str]  # subject -> tier ("" when it spans tiers)
    host_subject: dict[str, str]  # listener host -> its own subject
    shared: dict[str, tuple[str, ...]]  # listener host -> its tier and role subjects


def _expand(template: str, tier: str, host: str = "", role: str = "") -> str:
    return template.replace("<tier>", tier).replace("<hostname>", host).replace("<role>", role)


def subject_index(inventory: Inventory) -> SubjectIndex:
    """Build (once) the subject index; a host subject shared with another host is an error."""
    got = inventory.cache.get("subject_index")
    if isinstance(got, SubjectIndex):
        return got
    templates = inventory.settings.nats.subjects
    subscribers: dict[str, list[str]] = {}
    kind: dict[str, str] = {}
    tier: dict[str, str] = {}
    host_subject: dict[str, str] = {}
    shared: dict[str, tuple[str, ...]] = {}

    def add(subject: str, k: str, host: Host) -> None:
        lst = subscribers.get(subject)
        if lst is None:
            subscribers[subject] = [host.name]
            kind[subject] = k
            tier[subject] = host.tier
        else:
            if lst[-1] != host.name:
                lst.append(host.name)
            if tier[subject] != host.tier:
                tier[subject] = ""

    # tier and role subjects are the same for every host of a tier: expand them once
    tier_subject: dict[str, str] = {}
    role_subject: dict[tuple[str, str], str] = {}
    for host in inventory.hosts.values():
        if host.transport != "nats":
            continue
        own = _expand(templates.host, host.tier, host.name)
        host_subject[host.name] = own
        add(own, "host", host)
        ts = tier_subject.get(host.tier)
        if ts is None:
            ts = tier_subject[host.tier] = _expand(templates.tier, host.tier)
        add(ts, "tier", host)
        subjects = [ts]
        for r in host.roles:
            rs = role_subject.get((host.tier, r))
            if rs is None:
                rs = role_subject[host.tier, r] = _expand(templates.role, host.tier, role=r)
            add(rs, "role", host)
            subjects.append(rs)
        shared[host.name] = tuple(s for s in dict.fromkeys(subjects) if s != own)

    for name, own in host_subject.items():
        others = [h for h in subscribers[own] if h != name]
        if others:
            host = inventory.hosts[name]
            raise InventoryError(
                f"host '{name}': its subject '{own}' also reaches '{others[0]}'; rename the "
                "host or change hlplay.nats.subjects",
                host.location,
            )
    index = SubjectIndex(subscribers, kind, tier, host_subject, shared)
    inventory.cache["subject_index"] = index
    return index


def _host_order(inventory: Inventory) -> dict[str, int]:
    got = inventory.cache.get("host_order")
    if got is None:
        got = inventory.cache["host_order"] = {h: i for i, h in enumerate(inventory.hosts)}
    return got


def _best_packing(cands: list[str], sets: dict[str, frozenset[str]]) -> list[str]:
    """Disjoint candidates with the largest total of (size - 1): exact on small inputs."""
    n = len(cands)
    weights = [len(sets[c]) - 1 for c in cands]
    if n > EXACT_LIMIT:
        chosen: list[str] = []
        used: set[str] = set()
        for i in sorted(range(n), key=lambda i: (-weights[i], i)):
            s = sets[cands[i]]
            if used.isdisjoint(s):
                chosen.append(cands[i])
                used |= s
        return chosen
    conflicts = [0] * n
    for i in range(n):
        for j in range(i + 1, n):
            if not sets[cands[i]].isdisjoint(sets[cands[j]]):
                conflicts[i] |= 1 << j
                conflicts[j] |= 1 << i
    memo: dict[int, tuple[int, int]] = {}

    def solve(mask: int) -> tuple[int, int]:
        """(best total, chosen bitmask) among the candidates in ``mask``."""
        if mask == 0:
            return 0, 0
        got = memo.get(mask)
        if got is not None:
            return got
        low = mask & -mask
        i = low.bit_length() - 1
        skip_total, skip_set = solve(mask & ~low)
        take_total, take_set = solve(mask & ~low & ~conflicts[i])
        take_total += weights[i]
        best = (take_total, take_set | low) if take_total >= skip_total else (skip_total, skip_set)
        memo[mask] = best
        return best

    _, picked = solve((1 << n) - 1)
    return [cands[i] for i in range(n) if picked >> i & 1]


def compile_targets(inventory: Inventory, selected: Iterable[str | Host]) -> TargetPlan:
    """Compile selected hosts into NATS subjects (listener hosts) and direct targets."""
    names: set[str] = set()
    for item in selected:
        name = item.name if isinstance(item, Host) else item
        if name not in inventory.hosts:
            raise SelectionError(f"unknown host '{name}'" + did_you_mean(name, inventory.hosts))
        names.add(name)
    index = subject_index(inventory)
    order = _host_order(inventory)
    ordered = sorted(names, key=order.__getitem__)
    plan = TargetPlan()
    listeners: list[str] = []
    for name in ordered:
        host = inventory.hosts[name]
        if host.transport == "nats":
            listeners.append(name)
        else:
            plan.direct.append(DirectTarget(name, host.transport, host.reach))
    if not listeners:
        return plan

    # candidate shared subjects: they reach two hosts or more, all of them selected
    sets: dict[str, frozenset[str]] = {}
    rejected: set[str] = set()
    by_reach: dict[frozenset[str], str] = {}
    for name in listeners:
        for subject in index.shared[name]:
            if subject in sets or subject in rejected:
                continue
            subs = index.subscribers[subject]
            if len(subs) < 2 or not all(h in names for h in subs):
                rejected.add(subject)
                continue
            reach = frozenset(subs)
            other = by_reach.get(reach)
            if other is not None:
                # same hosts, two subjects: keep the broader kind (tier over role), then by name
                if (KIND_RANK[index.kind[subject]], subject) >= (
                    KIND_RANK[index.kind[other]],
                    other,
                ):
                    rejected.add(subject)
                    continue
                del sets[other]
                rejected.add(other)
            by_reach[reach] = subject
            sets[subject] = reach

    # overlapping candidates form components solved independently
    parent: dict[str, str] = {s: s for s in sets}

    def find(s: str) -> str:
        while parent[s] != s:
            parent[s] = parent[parent[s]]
            s = parent[s]
        return s

    owner: dict[str, str] = {}
    for subject, reach in sets.items():
        for h in reach:
            prev = owner.get(h)
            if prev is None:
                owner[h] = subject
            else:
                a, b = find(prev), find(subject)
                if a != b:
                    parent[a] = b
    components: dict[str, list[str]] = {}
    for subject in sets:
        components.setdefault(find(subject), []).append(subject)

    chosen: list[str] = []
    for comp in components.values():
        chosen.extend(comp if len(comp) == 1 else _best_packing(sorted(comp), sets))
    covered: set[str] = set()
    for subject in chosen:
        covered |= sets[subject]

    targets = [NatsTarget(s, index.tier[s], index.kind[s], sets[s]) for s in chosen]
    for name in listeners:
        if name not in covered:
            own = index.host_subject[name]
            targets.append(NatsTarget(own, inventory.hosts[name].tier, "host", frozenset((name,))))
    tier_rank: dict[str, int] = {}
    for name in listeners:
        tier_rank.setdefault(inventory.hosts[name].tier, len(tier_rank))

    def key(t: NatsTarget) -> tuple[int, int, int, str]:
        first = min(order[h] for h in t.hosts)
        return (tier_rank.get(t.tier, len(tier_rank)), KIND_RANK[t.kind], first, t.subject)

    plan.nats = sorted(targets, key=key)
    return plan
