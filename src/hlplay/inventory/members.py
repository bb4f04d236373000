"""Group membership of an inventory built in code rather than by the loader.

Both host patterns (``patterns``) and variable merging (``variables``) need it;
it lives here, below both, so neither imports the other for it.
"""

from __future__ import annotations

from hlplay.inventory.model import Inventory


def derive_members(inv: Inventory) -> dict[str, list[str]]:
    """Group members of an inventory built in code rather than by the loader."""
    order = {h: i for i, h in enumerate(inv.hosts)}
    members: dict[str, set[str]] = {}

    def of(name: str, seen: frozenset[str]) -> set[str]:
        got = members.get(name)
        if got is None:
            group = inv.groups[name]
            got = {h for h in group.hosts if h in order}
            for child in group.children:
                if child in inv.groups and child not in seen:
                    got |= of(child, seen | {child})
            members[name] = got
        return got

    for name in inv.groups:
        of(name, frozenset({name}))
    grouped = set().union(*(m for g, m in members.items() if g not in ("all", "ungrouped")))
    members["all"] = set(order)
    members.setdefault("ungrouped", set()).update(h for h in order if h not in grouped)
    for host in inv.hosts.values():
        members.setdefault(f"tier_{host.tier}", set()).add(host.name)
        for role in host.roles:
            members.setdefault(f"role_{role}", set()).add(host.name)
    return {g: sorted(hs, key=order.__getitem__) for g, hs in members.items()}
