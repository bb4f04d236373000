"""``pause``: wait a number of seconds or minutes (never waits for the keyboard)."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from hlplay.modules.base import Arg, Module, ModuleResult, TaskContext


class Pause(Module):
    name = "pause"
    summary = "Wait for seconds/minutes; prompts are printed, never waited on."
    controller_side = True
    supports_check = True
    args: ClassVar[dict[str, Arg]] = {
        "seconds": Arg("float"),
        "minutes": Arg("float"),
        "prompt": Arg("str", help="shown in the result; hlplay never reads the keyboard"),
        "echo": Arg("bool", default=True, help="accepted for compatibility"),
    }

    async def run(self, ctx: TaskContext, args: dict[str, Any]) -> ModuleResult:
        seconds = float(args.get("seconds") or 0) + 60.0 * float(args.get("minutes") or 0)
        if seconds < 0:
            return ModuleResult(failed=True, msg="cannot pause for a negative time")
        if seconds > 0:
            await asyncio.sleep(seconds)
        prompt = args.get("prompt") or ""
        return ModuleResult(
            msg=f"Paused for {seconds:g} seconds" + (f": {prompt}" if prompt else ""),
            data={"delta": seconds, "user_input": ""},
        )
