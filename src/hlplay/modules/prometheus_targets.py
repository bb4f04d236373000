"""``prometheus_targets``: are Prometheus's scrape targets up?

::

    - prometheus_targets:
        job: [node, nginx]          # optional: only these jobs
        labels: {env: prod}         # optional: only targets with these labels
      run_once: true

``url`` defaults to the inventory's ``hlplay.monitoring.prometheus_url``;
with neither, the task is skipped. Fails when a target is down (``health`` not
``up``) or the API cannot be read, unless ``fail_on_down: false``. The result
has ``targets``, ``down``, ``total``, ``up`` and ``markdown``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from hlplay.modules._monitoring import MonitoringQuery
from hlplay.modules.base import Arg


class PrometheusTargets(MonitoringQuery):
    name = "prometheus_targets"
    summary = "List Prometheus scrape targets (/api/v1/targets); fail when any is down."
    supports_check = True
    controller_side = True
    service = "Prometheus"
    setting = "prometheus_url"
    reading = "targets"
    fail_arg = "fail_on_down"
    args: ClassVar[dict[str, Arg]] = {
        "url": Arg("str", help="Prometheus base URL (default: hlplay.monitoring.prometheus_url)"),
        "job": Arg("list", elements="str", help="only targets of these jobs"),
        "labels": Arg("dict", help="only targets carrying these label values"),
        "timeout": Arg("float", default=10.0, help="seconds for the request"),
        "fail_on_down": Arg("bool", default=True, help="fail when a target is down"),
    }

    async def query(self, url: str, args: dict[str, Any], timeout: float) -> Any:
        from hlplay.health.monitoring import prometheus_targets

        return await prometheus_targets(
            url, job=args.get("job") or None, labels=args.get("labels") or None, timeout=timeout
        )

    def describe(self, report: Any) -> str:
        if report.down:
            return f"{len(report.down)} of {len(report.targets)} targets down: " + ", ".join(
                f"{t['job']}/{t['instance']}" for t in report.down
            )
        return f"{len(report.targets)} targets, all up"
