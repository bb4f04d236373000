"""Facts against thresholds: what is wrong with one host, and how badly.

Levels: ``bad`` (failed units, a full disk, too little memory: the host is
not healthy), ``warn`` (high load, facts that cannot tell: worth a look, the
host still counts as healthy). A host that does not answer is
``unreachable``. The same measures serve the fleet report and the ``health``
module's single checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hlplay.health.thresholds import Thresholds
from hlplay.inventory.model import Host

BAD, WARN, OK, UNREACHABLE = "bad", "warn", "ok", "unreachable"

# the report's columns, in order (keys of HostHealth.row())
COLUMNS = [
    "host", "tier", "via", "reachable", "generation", "age", "revision", "failed_units",
    "disk_used_pct", "mem_avail_pct", "load1", "verdict", "notes",
]  # fmt: skip


@dataclass(frozen=True)
class Finding:
    """One thing wrong: which check, how bad, in words."""

    check: str
    level: str  # BAD | WARN
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"check": self.check, "level": self.level, "message": self.message}


@dataclass(frozen=True)
class Measure:
    """One measure of one host: ``ok`` is None when the facts cannot tell."""

    ok: bool | None
    value: Any
    message: str


def disk_used_percent(entry: Mapping[str, Any]) -> float | None:
    """Used share of a file system as ``df`` shows it: used / (used + available),
    so blocks reserved for root count as unusable."""
    used, free = entry.get("used"), entry.get("free")
    if isinstance(used, int | float) and isinstance(free, int | float) and used + free > 0:
        return round(100.0 * used / (used + free), 1)
    pct = entry.get("percent")
    return float(pct) if isinstance(pct, int | float) else None


def measure_disk(facts: Mapping[str, Any], max_percent: float, path: str | None = None) -> Measure:
    """The fullest reported disk (or ``path``'s) against ``max_percent``."""
    entries = [d for d in facts.get("disk") or [] if isinstance(d, Mapping)]
    if path is not None:
        chosen = [d for d in entries if d.get("path") == path]
        if not chosen:
            known = ", ".join(str(d.get("path")) for d in entries) or "none"
            return Measure(None, None, f"disk {path} is not reported (reported: {known})")
        entries = chosen
    if not entries:
        return Measure(None, None, "no disk usage reported")
    errors = [f"disk {d.get('path')}: {d['error']}" for d in entries if d.get("error")]
    worst: tuple[float, str] | None = None
    for d in entries:
        pct = disk_used_percent(d)
        if pct is not None and (worst is None or pct > worst[0]):
            worst = (pct, str(d.get("path")))
    if worst is None:
        return Measure(None, None, "; ".join(errors) or "no disk usage reported")
    pct, where = worst
    if pct >= max_percent:
        return Measure(False, pct, f"disk {where} {pct:g}% used (limit {max_percent:g}%)")
    note = "; ".join(errors)
    return Measure(True if not errors else None, pct, note or f"disk {where} {pct:g}% used")


def measure_memory(facts: Mapping[str, Any], min_percent: float) -> Measure:
    """Available memory as a share of the total, against ``min_percent``."""
    mem = facts.get("memory")
    if not isinstance(mem, Mapping) or not mem.get("total"):
        return Measure(None, None, "no memory figures reported")
    pct = round(100.0 * float(mem.get("available") or 0) / float(mem["total"]), 1)
    if pct < min_percent:
        return Measure(False, pct, f"memory {pct:g}% available (minimum {min_percent:g}%)")
    return Measure(True, pct, f"memory {pct:g}% available")


def measure_load(facts: Mapping[str, Any], max_per_cpu: float) -> Measure:
    """The 1-minute load average per CPU against ``max_per_cpu``."""
    load = facts.get("load")
    if not isinstance(load, Sequence) or not load or not isinstance(load[0], int | float):
        return Measure(None, None, "no load average reported")
    load1 = float(load[0])
    cpus = facts.get("cpus")
    n = int(cpus) if isinstance(cpus, int) and cpus > 0 else 1
    per_cpu = load1 / n
    what = (
        f"load {load1:g} on {n} CPU{'s' if n != 1 else ''}"
        if cpus
        else f"load {load1:g} (CPU count unknown: taken as 1)"
    )
    if per_cpu > max_per_cpu:
        return Measure(False, load1, f"{what} (above {max_per_cpu:g} per CPU)")
    return Measure(True, load1, what)


def measure_units(facts: Mapping[str, Any], unit: str | None = None) -> Measure:
    """No failed units (or ``unit`` is not among them)."""
    units = facts.get("failed_units")
    if not isinstance(units, list):
        return Measure(None, None, "failed units unknown (no systemd, no units directory)")
    if unit is not None:
        if unit in units:
            return Measure(False, units, f"{unit} failed")
        return Measure(True, units, f"{unit} not failed")
    if units:
        return Measure(False, units, "failed units: " + ", ".join(str(u) for u in units))
    return Measure(True, units, "no failed units")


def human_age(seconds: float | None) -> str | None:
    """``45s``, ``12m``, ``5h 3m``, ``3d 4h``."""
    if seconds is None:
        return None
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


@dataclass
class HostHealth:
    """One host's health: its figures and what is wrong."""

    host: str
    tier: str
    via: str
    reachable: bool
    generation: int | None = None
    age_seconds: float | None = None
    revision: str | None = None
    failed_units: list[str] | None = None
    disk_used_pct: float | None = None
    mem_avail_pct: float | None = None
    load1: float | None = None
    cpus: int | None = None
    disks: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    thresholds: Thresholds = field(default_factory=Thresholds)
    error: str = ""

    @property
    def verdict(self) -> str:
        if not self.reachable:
            return UNREACHABLE
        levels = {f.level for f in self.findings}
        return BAD if BAD in levels else WARN if WARN in levels else OK

    @property
    def notes(self) -> str:
        if not self.reachable:
            return self.error or "unreachable"
        return "; ".join(f.message for f in self.findings)

    def row(self) -> dict[str, Any]:
        """The report row: the columns, then machine-friendly extras."""
        return {
            "host": self.host,
            "tier": self.tier,
            "via": self.via,
            "reachable": self.reachable,
            "generation": self.generation,
            "age": human_age(self.age_seconds),
            "revision": self.revision[:12] if self.revision else None,
            "failed_units": self.failed_units,
            "disk_used_pct": self.disk_used_pct,
            "mem_avail_pct": self.mem_avail_pct,
            "load1": self.load1,
            "verdict": self.verdict,
            "notes": self.notes,
            "age_seconds": self.age_seconds,
            "revision_full": self.revision,
            "cpus": self.cpus,
            "disks": self.disks,
            "findings": [f.to_dict() for f in self.findings],
            "thresholds": self.thresholds.to_dict(),
        }


def unreachable(host: Host, error: str, thresholds: Thresholds | None = None) -> HostHealth:
    return HostHealth(
        host=host.name,
        tier=host.tier,
        via=host.transport,
        reachable=False,
        error=error,
        thresholds=thresholds or Thresholds(),
    )


def evaluate(host: Host, facts: Mapping[str, Any], thresholds: Thresholds) -> HostHealth:
    """Every measure of one reachable host, with its findings."""
    findings: list[Finding] = []
    units = measure_units(facts)
    disk = measure_disk(facts, thresholds.disk_max_percent)
    mem = measure_memory(facts, thresholds.mem_min_percent)
    load = measure_load(facts, thresholds.load_max_per_cpu)
    for check, m, level in (
        ("units", units, BAD),
        ("disk", disk, BAD),
        ("memory", mem, BAD),
        ("load", load, WARN),
    ):
        if m.ok is False:
            findings.append(Finding(check, level, m.message))
        elif m.ok is None:
            findings.append(Finding(check, WARN, m.message))
    if facts.get("generation") is None:
        system = facts.get("error") or "no current generation reported"
        findings.append(Finding("generation", WARN, str(system)))
    if facts.get("busy"):
        findings.append(Finding("busy", WARN, "a deploy is running"))
    tier = facts.get("tier")
    if isinstance(tier, str) and tier and tier != host.tier:
        findings.append(
            Finding("tier", WARN, f"the host says tier {tier}, the inventory {host.tier}")
        )
    gen = facts.get("generation")
    age = facts.get("generation_age")
    rev = facts.get("revision")
    cpus = facts.get("cpus")
    return HostHealth(
        host=host.name,
        tier=host.tier,
        via=host.transport,
        reachable=True,
        generation=gen if isinstance(gen, int) else None,
        age_seconds=float(age) if isinstance(age, int | float) else None,
        revision=rev if isinstance(rev, str) and rev else None,
        failed_units=units.value if isinstance(units.value, list) else None,
        disk_used_pct=disk.value,
        mem_avail_pct=mem.value,
        load1=load.value,
        cpus=cpus if isinstance(cpus, int) else None,
        disks=[dict(d) for d in facts.get("disk") or [] if isinstance(d, Mapping)],
        findings=findings,
        thresholds=thresholds,
    )
