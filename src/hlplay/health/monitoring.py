"""Prometheus scrape targets and Alertmanager alerts, read through their HTTP APIs.

* Prometheus ``GET /api/v1/targets?state=active``: a target whose ``health``
  is not ``up`` is *down*.
* Alertmanager ``GET /api/v2/alerts``: an alert whose ``status.state`` is
  ``active`` is *firing* (``suppressed`` alerts are silenced or inhibited,
  ``unprocessed`` ones not yet routed).

Filters keep a check to what it is about: ``job`` (one or several), ``labels``
(every given label must match), ``severity`` (one or several).
A server that cannot be read is a problem of its own (``error``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hlplay.health.http import HttpError, check_url, http_get, join_url


class MonitoringError(Exception):
    """The API answered something other than what it documents."""


def _as_set(value: str | Iterable[str] | None) -> set[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return {v.strip() for v in value.split(",") if v.strip()} or None
    return {str(v) for v in value} or None


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _labels_match(labels: Mapping[str, Any], wanted: Mapping[str, Any] | None) -> bool:
    return not wanted or all(str(labels.get(k)) == str(v) for k, v in wanted.items())


async def _get_json(url: str, timeout: float) -> Any:
    resp = await http_get(url, timeout=timeout, headers={"Accept": "application/json"})
    if resp.status != 200:
        raise MonitoringError(f"HTTP {resp.status} from {url}")
    try:
        return json.loads(resp.body)
    except ValueError:
        raise MonitoringError(f"{url} did not answer JSON") from None


@dataclass
class TargetsReport:
    """Prometheus scrape targets, after the filters."""

    url: str
    targets: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def down(self) -> list[dict[str, Any]]:
        return [t for t in self.targets if t["health"] != "up"]

    @property
    def ok(self) -> bool:
        return self.error is None and not self.down

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "ok": self.ok,
            "error": self.error,
            "total": len(self.targets),
            "up": len(self.targets) - len(self.down),
            "down": self.down,
            "targets": self.targets,
        }

    def markdown(self) -> str:
        if self.error is not None:
            return f"- **prometheus** ({self.url}): cannot read targets: {self.error}"
        if not self.down:
            return f"- prometheus ({self.url}): {len(self.targets)} targets, all up"
        lines = [
            f"- **prometheus** ({self.url}): {len(self.down)} of {len(self.targets)} targets down"
        ]
        for t in self.down:
            err = f": {t['last_error']}" if t.get("last_error") else ""
            lines.append(f"  - {t['job']} {t['instance']} is {t['health']}{err}")
        return "\n".join(lines)


@dataclass
class AlertsReport:
    """Alertmanager alerts, after the filters."""

    url: str
    alerts: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def firing(self) -> list[dict[str, Any]]:
        return [a for a in self.alerts if a["state"] == "active"]

    @property
    def ok(self) -> bool:
        return self.error is None and not self.firing

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "ok": self.ok,
            "error": self.error,
            "total": len(self.alerts),
            "firing": self.firing,
            "alerts": self.alerts,
        }

    def markdown(self) -> str:
        if self.error is not None:
            return f"- **alertmanager** ({self.url}): cannot read alerts: {self.error}"
        if not self.firing:
            return f"- alertmanager ({self.url}): no firing alerts"
        lines = [f"- **alertmanager** ({self.url}): {len(self.firing)} firing"]
        for a in self.firing:
            where = f" on {a['instance']}" if a.get("instance") else ""
            summary = f": {a['summary']}" if a.get("summary") else ""
            lines.append(f"  - {a['alertname']} ({a['severity'] or 'no severity'}){where}{summary}")
        return "\n".join(lines)


def parse_targets(
    doc: Any, *, job: str | Iterable[str] | None = None, labels: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The active targets of a ``/api/v1/targets`` answer, simplified and filtered."""
    data = doc.get("data") if isinstance(doc, Mapping) else None
    if (
        not isinstance(doc, Mapping)
        or doc.get("status") != "success"
        or not isinstance(data, Mapping)
    ):
        raise MonitoringError("not a Prometheus targets answer (expected status: success)")
    jobs = _as_set(job)
    out: list[dict[str, Any]] = []
    for t in data.get("activeTargets") or []:
        if not isinstance(t, Mapping):
            continue
        tl = _map(t.get("labels"))
        name = str(tl.get("job") or t.get("scrapePool") or "")
        if jobs is not None and name not in jobs:
            continue
        if not _labels_match(tl, labels):
            continue
        out.append(
            {
                "job": name,
                "instance": str(tl.get("instance") or ""),
                "health": str(t.get("health") or "unknown"),
                "last_error": str(t.get("lastError") or ""),
                "scrape_url": str(t.get("scrapeUrl") or ""),
                "labels": dict(tl),
            }
        )
    return out


def parse_alerts(
    doc: Any,
    *,
    severity: str | Iterable[str] | None = None,
    labels: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The alerts of a ``/api/v2/alerts`` answer, simplified and filtered."""
    if not isinstance(doc, list):
        raise MonitoringError("not an Alertmanager v2 alerts answer (expected a list)")
    severities = _as_set(severity)
    out: list[dict[str, Any]] = []
    for a in doc:
        if not isinstance(a, Mapping):
            continue
        al, ann, status = _map(a.get("labels")), _map(a.get("annotations")), _map(a.get("status"))
        sev = str(al.get("severity") or "")
        if severities is not None and sev not in severities:
            continue
        if not _labels_match(al, labels):
            continue
        out.append(
            {
                "alertname": str(al.get("alertname") or ""),
                "severity": sev,
                "state": str(status.get("state") or "unknown"),
                "instance": str(al.get("instance") or ""),
                "summary": str(ann.get("summary") or ann.get("description") or ""),
                "starts_at": str(a.get("startsAt") or ""),
                "labels": dict(al),
            }
        )
    return out


async def prometheus_targets(
    url: str,
    *,
    job: str | Iterable[str] | None = None,
    labels: Mapping[str, Any] | None = None,
    timeout: float = 10.0,
) -> TargetsReport:
    """Read and filter the targets of the Prometheus at ``url`` (its base URL)."""
    check_url(url, "the Prometheus URL")
    try:
        doc = await _get_json(join_url(url, "/api/v1/targets?state=active"), timeout)
        return TargetsReport(url, parse_targets(doc, job=job, labels=labels))
    except (HttpError, MonitoringError) as exc:
        return TargetsReport(url, error=str(exc))


async def alertmanager_alerts(
    url: str,
    *,
    severity: str | Iterable[str] | None = None,
    labels: Mapping[str, Any] | None = None,
    timeout: float = 10.0,
) -> AlertsReport:
    """Read and filter the alerts of the Alertmanager at ``url`` (its base URL)."""
    check_url(url, "the Alertmanager URL")
    try:
        doc = await _get_json(join_url(url, "/api/v2/alerts"), timeout)
        return AlertsReport(url, parse_alerts(doc, severity=severity, labels=labels))
    except (HttpError, MonitoringError) as exc:
        return AlertsReport(url, error=str(exc))
