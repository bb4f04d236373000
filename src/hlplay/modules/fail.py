"""``fail``: fail the host's task with a message (usually under ``when``)."""

from __future__ import annotations

from typing import Any, ClassVar

from hlplay.modules.base import Arg, Module, ModuleResult, TaskContext


class Fail(Module):
    name = "fail"
    summary = "Fail the task with a message."
    controller_side = True
    supports_check = True
    args: ClassVar[dict[str, Arg]] = {
        "msg": Arg("raw", default="Failed as requested from task"),
    }

    async def run(self, ctx: TaskContext, args: dict[str, Any]) -> ModuleResult:
        msg = args.get("msg")
        return ModuleResult(failed=True, msg=str(msg if msg is not None else "Failed"))
