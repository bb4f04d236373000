"""``assert``: fail the host's task unless every condition holds."""

from __future__ import annotations

from typing import Any, ClassVar

from hlplay.modules.base import Arg, Module, ModuleResult, TaskContext
from hlplay.templating.templar import TemplateFailure, default_templar


class Assert(Module):
    name = "assert"
    summary = "Check conditions (Jinja2 expressions); fail with fail_msg when one is false."
    controller_side = True
    supports_check = True
    #: arguments the loader compiles as bare expressions
    expression_args: ClassVar[tuple[str, ...]] = ("that",)
    args: ClassVar[dict[str, Arg]] = {
        "that": Arg("raw", required=True, help="a condition or a list of conditions"),
        "fail_msg": Arg("raw", aliases=("msg",), help="message when a condition is false"),
        "success_msg": Arg("raw", help="message when all hold"),
        "quiet": Arg("bool", default=False),
    }

    async def run(self, ctx: TaskContext, args: dict[str, Any]) -> ModuleResult:
        that = args.get("that")
        conditions = that if isinstance(that, list) else [that]
        templar = default_templar()
        for cond in conditions:
            try:
                ok = templar.condition(cond, ctx.vars)
            except TemplateFailure as exc:
                return ModuleResult(failed=True, msg=exc.message, data={"assertion": cond})
            if not ok:
                msg = args.get("fail_msg") or "Assertion failed"
                return ModuleResult(
                    failed=True, msg=msg, data={"assertion": cond, "evaluated_to": False}
                )
        msg = args.get("success_msg") or "All assertions passed"
        return ModuleResult(msg="" if args.get("quiet") and not args.get("success_msg") else msg)
