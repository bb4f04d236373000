"""``ping``: is the host reachable, and is it free to take a deploy?

Over NATS it asks the listener for its facts; over SSH or locally it runs
``true``. An unreachable host is reported as unreachable, not failed. With
``require_idle`` (default), a host already running a deploy fails the task.
"""

from __future__ import annotations

from typing import Any, ClassVar

from hlplay.modules.base import Arg, Module, ModuleResult, TaskContext
from hlplay.transports.base import NotSupported


class Ping(Module):
    name = "ping"
    summary = "Check that a host answers (listener facts, or a no-op command) and is idle."
    supports_check = True
    args: ClassVar[dict[str, Arg]] = {
        "require_idle": Arg("bool", default=True),
        "timeout": Arg("float", default=10.0),
    }

    async def run(self, ctx: TaskContext, args: dict[str, Any]) -> ModuleResult:
        timeout = float(args.get("timeout") or 10.0)
        facts: dict[str, Any] = {}
        try:
            facts = await ctx.transport.facts(ctx.exec_host, timeout=timeout)
        except NotSupported:
            res = await ctx.transport.run(ctx.exec_host, ["true"], timeout=timeout)
            if res.rc != 0:
                return ModuleResult(
                    failed=True, rc=res.rc, msg=f"'true' failed: {res.stderr.strip()}"
                )
            return ModuleResult(msg="pong", data={"ping": "pong"})
        busy = bool(facts.get("busy"))
        data = {"ping": "pong", "facts": facts}
        if busy and args.get("require_idle", True):
            return ModuleResult(
                failed=True, msg="a deploy is already running on this host", data=data
            )
        return ModuleResult(msg="pong", data=data)
