"""Revision drift: hosts of one tier running different configuration revisions.

A tier is meant to run one revision; two or more means a deploy stopped
half-way, a host was rolled back, or one was deployed by hand. Drift is a
warning (a rolling deploy passes through it), named per tier with the hosts on
each revision.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def tier_drift(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One entry per tier whose reachable hosts report more than one revision.

    ``rows`` are report rows (``HostHealth.row()``): ``tier``, ``host``,
    ``revision_full`` (or ``revision``). Hosts without a revision are left out.
    """
    by_tier: dict[str, dict[str, list[str]]] = {}
    for row in rows:
        rev = row.get("revision_full") or row.get("revision")
        if not row.get("reachable", True) or not isinstance(rev, str) or not rev:
            continue
        tier = str(row.get("tier"))
        by_tier.setdefault(tier, {}).setdefault(rev, []).append(str(row.get("host")))
    out: list[dict[str, Any]] = []
    for tier, revs in by_tier.items():
        if len(revs) < 2:
            continue
        ordered = sorted(revs.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        parts = [f"{rev[:12]} ({', '.join(hosts)})" for rev, hosts in ordered]
        out.append(
            {
                "tier": tier,
                "revisions": {rev: hosts for rev, hosts in ordered},
                "message": f"tier {tier} runs {len(revs)} revisions: " + "; ".join(parts),
            }
        )
    return out


def drift_markdown(drift: list[dict[str, Any]]) -> str:
    if not drift:
        return "- no revision drift"
    return "\n".join(f"- **drift**: {d['message']}" for d in drift)
