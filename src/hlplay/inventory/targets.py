"""Compile a host selection into deploy targets.

Listener hosts are reached through the fewest NATS subjects that reach exactly
the selected hosts (``deploy.<tier>.all``, ``deploy.<tier>.role.<role>``,
``deploy.<tier>.<host>``); a subject is used only when every listener host it
reaches is selected. Hosts without a listener become direct (SSH or local)
targets.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from hlplay.inventory.model import Host, Inventory


@dataclass(frozen=True)
class NatsTarget:
    """One NATS subject and the hosts expected to answer a request sent to it."""

    subject: str
    tier: str
    kind: str  # "tier" | "role" | "host"
    hosts: frozenset[str]


@dataclass(frozen=True)
class DirectTarget:
    """A host reached without a listener: over SSH or on the controller itself."""

    host: str
    transport: str  # "ssh" | "local"
    address: str


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


def compile_targets(inventory: Inventory, selected: Iterable[str | Host]) -> TargetPlan:
    """Compile selected hosts into targets (implemented in this module by the loader work)."""
    raise NotImplementedError
