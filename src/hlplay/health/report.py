"""The fleet health report: one row per host, a fleet section, a verdict.

Markdown and JSON come from the same renderer as the ``report`` module, so
``hlplay health`` and ``playbooks/system-health-check.yml`` print the same
table. Exit status: 4 when a host is unreachable (checked first, as
ansible-playbook does), 2 when a host or the fleet has a *bad* finding (with
``strict``, a warning too), 0 otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hlplay.errors import EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE
from hlplay.health.drift import drift_markdown
from hlplay.health.evaluate import BAD, COLUMNS, OK, UNREACHABLE, WARN, Finding, HostHealth
from hlplay.health.monitoring import AlertsReport, TargetsReport
from hlplay.health.thresholds import Thresholds

TITLE = "System health"


def thresholds_line(t: Thresholds) -> str:
    return (
        f"thresholds: disk >= {t.disk_max_percent:g}% used is bad, "
        f"memory < {t.mem_min_percent:g}% available is bad, "
        f"load1 > {t.load_max_per_cpu:g} per CPU is a warning"
    )


def fleet_markdown(
    drift: list[dict[str, Any]],
    prometheus: dict[str, Any] | TargetsReport | None,
    alertmanager: dict[str, Any] | AlertsReport | None,
    extra: list[str] | None = None,
) -> str:
    """The fleet section: drift, Prometheus, Alertmanager (and any extra lines)."""
    lines = [drift_markdown(drift) if drift else "- no revision drift"]
    for name, rep in (("prometheus", prometheus), ("alertmanager", alertmanager)):
        if rep is None:
            lines.append(f"- {name}: not configured")
        elif isinstance(rep, TargetsReport | AlertsReport):
            lines.append(rep.markdown())
        else:
            lines.append(str(rep.get("markdown") or f"- {name}: {rep}"))
    lines.extend(extra or [])
    return "\n".join(lines)


@dataclass
class FleetReport:
    hosts: list[HostHealth]
    drift: list[dict[str, Any]] = field(default_factory=list)
    discovery: dict[str, Any] | None = None
    prometheus: TargetsReport | None = None
    alertmanager: AlertsReport | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    thresholds_vary: bool = False  # inventory variables give some hosts their own
    strict: bool = False
    duration: float = 0.0

    @property
    def fleet_findings(self) -> list[Finding]:
        out = [Finding("drift", WARN, d["message"]) for d in self.drift]
        if self.prometheus is not None and not self.prometheus.ok:
            p = self.prometheus
            msg = (
                f"cannot read Prometheus targets: {p.error}"
                if p.error is not None
                else f"{len(p.down)} Prometheus target(s) down: "
                + ", ".join(f"{t['job']}/{t['instance']}" for t in p.down)
            )
            out.append(Finding("prometheus", BAD, msg))
        if self.alertmanager is not None and not self.alertmanager.ok:
            a = self.alertmanager
            msg = (
                f"cannot read Alertmanager alerts: {a.error}"
                if a.error is not None
                else f"{len(a.firing)} alert(s) firing: "
                + ", ".join(a["alertname"] for a in a.firing)
            )
            out.append(Finding("alertmanager", BAD, msg))
        if self.discovery and self.discovery.get("unknown"):
            names = ", ".join(self.discovery["unknown"])
            out.append(Finding("discovery", WARN, f"listeners not in the inventory: {names}"))
        return out

    def counts(self) -> dict[str, int]:
        out = {OK: 0, WARN: 0, BAD: 0, UNREACHABLE: 0}
        for h in self.hosts:
            out[h.verdict] += 1
        return out

    @property
    def exit_code(self) -> int:
        verdicts = {h.verdict for h in self.hosts}
        levels = {f.level for f in self.fleet_findings}
        if UNREACHABLE in verdicts:
            return EXIT_UNREACHABLE
        if BAD in verdicts or BAD in levels:
            return EXIT_FAILED
        if self.strict and (WARN in verdicts or WARN in levels):
            return EXIT_FAILED
        return EXIT_OK

    @property
    def healthy(self) -> bool:
        return self.exit_code == EXIT_OK

    def verdict_line(self) -> str:
        c = self.counts()
        parts = [f"{len(self.hosts)} host{'s' if len(self.hosts) != 1 else ''}"]
        for level in (OK, WARN, BAD, UNREACHABLE):
            if c[level]:
                names = [h.host for h in self.hosts if h.verdict == level]
                shown = "" if level == OK else f" ({', '.join(names)})"
                parts.append(f"{c[level]} {level}{shown}")
        fleet_bad = [f.check for f in self.fleet_findings if f.level == BAD]
        if fleet_bad:
            parts.append("fleet: " + ", ".join(fleet_bad))
        word = "healthy" if self.healthy else "NOT healthy"
        return f"**{word}**: " + ", ".join(parts) + f" (exit {self.exit_code})"

    def fleet_dict(self) -> dict[str, Any]:
        return {
            "drift": self.drift,
            "discovery": self.discovery,
            "prometheus": self.prometheus.to_dict() if self.prometheus else None,
            "alertmanager": self.alertmanager.to_dict() if self.alertmanager else None,
            "findings": [f.to_dict() for f in self.fleet_findings],
        }

    def fleet_section(self) -> str:
        extra: list[str] = []
        if self.discovery is not None:
            d = self.discovery
            if d.get("error"):
                extra.append(f"- discovery: {d['error']}")
            else:
                line = f"- discovery: {len(d['answered'])} listener(s) answered"
                if d.get("missing"):
                    line += f"; silent: {', '.join(d['missing'])}"
                if d.get("unknown"):
                    line += f"; **not in the inventory**: {', '.join(d['unknown'])}"
                extra.append(line)
        line = thresholds_line(self.thresholds)
        if self.thresholds_vary:
            line += " (some hosts have their own: see their rows)"
        extra.append(f"- {line}")
        return fleet_markdown(self.drift, self.prometheus, self.alertmanager, extra)

    def render(self) -> tuple[str, dict[str, Any]]:
        """The Markdown text and the JSON document."""
        from hlplay.mdreport import render_report

        rows = [h.row() for h in self.hosts]
        md, doc = render_report(
            TITLE,
            rows,
            list(COLUMNS),
            self.verdict_line(),
            [{"title": "Fleet", "markdown": self.fleet_section(), "data": self.fleet_dict()}],
        )
        doc.update(
            fleet=self.fleet_dict(),
            counts=self.counts(),
            healthy=self.healthy,
            exit_code=self.exit_code,
            thresholds=self.thresholds.to_dict(),
            thresholds_vary=self.thresholds_vary,
            duration=self.duration,
        )
        return md, doc
