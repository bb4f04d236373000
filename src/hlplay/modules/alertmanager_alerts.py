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

from hlplay.modules.base import Arg, Module, ModuleResult, TaskContext


class AlertmanagerAlerts(Module):
    name = "alertmanager_alerts"
    summary = "List Alertmanager alerts (/api/v2/alerts); fail when any is firing."
    supports_check = True
    controller_side = True
    args: ClassVar[dict[str, Arg]] = {
        "url": Arg(
            "str", help="Alertmanager base URL (default: hlplay.monitoring.alertmanager_url)"
        ),
        "severity": Arg("list", elements="str", help="only alerts of these severities"),
        "labels": Arg("dict", help="only alerts carrying these label values"),
        "timeout": Arg("float", default=10.0, help="seconds for the request"),
        "fail_on_firing": Arg("bool", default=True, help="fail when an alert is firing"),
    }

    async def run(self, ctx: TaskContext, args: dict[str, Any]) -> ModuleResult:
        from hlplay.health.http import UrlError
        from hlplay.health.monitoring import alertmanager_alerts

        url = args.get("url") or ctx.inventory.settings.monitoring.alertmanager_url
        if not url:
            return ModuleResult(
                skipped=True, msg="no Alertmanager URL (hlplay.monitoring.alertmanager_url)"
            )
        try:
            rep = await alertmanager_alerts(
                str(url),
                severity=args.get("severity") or None,
                labels=args.get("labels") or None,
                timeout=max(0.1, float(args.get("timeout") or 10.0)),
            )
        except UrlError as exc:
            return ModuleResult(failed=True, msg=str(exc))
        data = {**rep.to_dict(), "markdown": rep.markdown()}
        if rep.error is not None:
            msg = f"cannot read Alertmanager alerts: {rep.error}"
        elif rep.firing:
            msg = f"{len(rep.firing)} alert(s) firing: " + ", ".join(
                a["alertname"] for a in rep.firing
            )
        else:
            msg = f"no firing alerts ({len(rep.alerts)} in all)"
        fail = args.get("fail_on_firing", True) is not False
        return ModuleResult(failed=fail and not rep.ok, msg=msg, data=data)
