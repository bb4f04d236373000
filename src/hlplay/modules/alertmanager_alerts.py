"""``alertmanager_alerts``: is anything firing?

::

    - alertmanager_alerts:
        severity: [critical, warning]   # optional: only these severities
        labels: {team: infra}           # optional: only alerts with these labels
      run_once: true

``url`` defaults to the inventory's ``hlplay.monitoring.alertmanager_url``;
with neither, the task is skipped. An alert fires when its ``status.state``
is ``active`` (silenced and inhibited alerts are ``suppressed``). Fails when
one fires or the API cannot be read, unless ``fail_on_firing: false``. The
result has ``alerts``, ``firing``, ``total`` and ``markdown``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from hlplay.modules._monitoring import MonitoringQuery
from hlplay.modules.base import Arg


class AlertmanagerAlerts(MonitoringQuery):
    name = "alertmanager_alerts"
    summary = "List Alertmanager alerts (/api/v2/alerts); fail when any is firing."
    supports_check = True
    controller_side = True
    service = "Alertmanager"
    setting = "alertmanager_url"
    reading = "alerts"
    fail_arg = "fail_on_firing"
    args: ClassVar[dict[str, Arg]] = {
        "url": Arg(
            "str", help="Alertmanager base URL (default: hlplay.monitoring.alertmanager_url)"
        ),
        "severity": Arg("list", elements="str", help="only alerts of these severities"),
        "labels": Arg("dict", help="only alerts carrying these label values"),
        "timeout": Arg("float", default=10.0, help="seconds for the request"),
        "fail_on_firing": Arg("bool", default=True, help="fail when an alert is firing"),
    }

    async def query(self, url: str, args: dict[str, Any], timeout: float) -> Any:
        from hlplay.health.monitoring import alertmanager_alerts

        return await alertmanager_alerts(
            url,
            severity=args.get("severity") or None,
            labels=args.get("labels") or None,
            timeout=timeout,
        )

    def describe(self, report: Any) -> str:
        if report.firing:
            return f"{len(report.firing)} alert(s) firing: " + ", ".join(
                a["alertname"] for a in report.firing
            )
        return f"no firing alerts ({len(report.alerts)} in all)"
