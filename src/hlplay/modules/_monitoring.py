"""What the Prometheus and Alertmanager modules share: where the URL comes
from, how a bad one is reported, and when the task fails."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

from hlplay.modules.base import Module, ModuleResult, TaskContext


class MonitoringQuery(Module):
    """Query one monitoring API; subclasses say which and how to read the answer."""

    service: ClassVar[str]  # "Prometheus"
    setting: ClassVar[str]  # attribute of inventory.settings.monitoring
    reading: ClassVar[str]  # what failed to be read: "targets", "alerts"
    fail_arg: ClassVar[str]  # the argument that turns failing off

    @abstractmethod
    async def query(self, url: str, args: dict[str, Any], timeout: float) -> Any:
        """The report: ``.ok``, ``.error``, ``.to_dict()``, ``.markdown()``."""

    @abstractmethod
    def describe(self, report: Any) -> str:
        """The task's message for a report that was read."""

    async def run(self, ctx: TaskContext, args: dict[str, Any]) -> ModuleResult:
        from hlplay.health.http import UrlError

        url = args.get("url") or getattr(ctx.inventory.settings.monitoring, self.setting)
        if not url:
            return ModuleResult(
                skipped=True, msg=f"no {self.service} URL (hlplay.monitoring.{self.setting})"
            )
        try:
            rep = await self.query(str(url), args, max(0.1, float(args.get("timeout") or 10.0)))
        except UrlError as exc:
            return ModuleResult(failed=True, msg=str(exc))
        data = {**rep.to_dict(), "markdown": rep.markdown()}
        if rep.error is not None:
            msg = f"cannot read {self.service} {self.reading}: {rep.error}"
        else:
            msg = self.describe(rep)
        fail = args.get(self.fail_arg, True) is not False
        return ModuleResult(failed=fail and not rep.ok, msg=msg, data=data)
