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

from hlplay.modules.base import Arg, Module, ModuleResult, TaskContext


class PrometheusTargets(Module):
    name = "prometheus_targets"
    summary = "List Prometheus scrape targets (/api/v1/targets); fail when any is down."
    supports_check = True
    controller_side = True
    args: ClassVar[dict[str, Arg]] = {
        "url": Arg("str", help="Prometheus base URL (default: hlplay.monitoring.prometheus_url)"),
        "job": Arg("list", elements="str", help="only targets of these jobs"),
        "labels": Arg("dict", help="only targets carrying these label values"),
        "timeout": Arg("float", default=10.0, help="seconds for the request"),
        "fail_on_down": Arg("bool", default=True, help="fail when a target is down"),
    }

    async def run(self, ctx: TaskContext, args: dict[str, Any]) -> ModuleResult:
        from hlplay.health.http import UrlError
        from hlplay.health.monitoring import prometheus_targets

        url = args.get("url") or ctx.inventory.settings.monitoring.prometheus_url
        if not url:
            return ModuleResult(
                skipped=True, msg="no Prometheus URL (hlplay.monitoring.prometheus_url)"
            )
        try:
            rep = await prometheus_targets(
                str(url),
                job=args.get("job") or None,
                labels=args.get("labels") or None,
                timeout=max(0.1, float(args.get("timeout") or 10.0)),
            )
        except UrlError as exc:
            return ModuleResult(failed=True, msg=str(exc))
        data = {**rep.to_dict(), "markdown": rep.markdown()}
        if rep.error is not None:
            msg = f"cannot read Prometheus targets: {rep.error}"
        elif rep.down:
            msg = f"{len(rep.down)} of {len(rep.targets)} targets down: " + ", ".join(
                f"{t['job']}/{t['instance']}" for t in rep.down
            )
        else:
            msg = f"{len(rep.targets)} targets, all up"
        fail = args.get("fail_on_down", True) is not False
        return ModuleResult(failed=fail and not rep.ok, msg=msg, data=data)
