"""``debug``: print a message or a variable's value, on the controller."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from hlplay.modules.base import Arg, Module, ModuleResult, TaskContext
from hlplay.templating.templar import TemplateFailure, default_templar


def plain(value: Any) -> Any:
    """Lazy mappings (``hostvars``) and tuples as plain data, so results print as JSON."""
    if isinstance(value, Mapping):
        flatten = getattr(value, "flatten", None)
        if callable(flatten):
            return plain(flatten())
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


class Debug(Module):
    name = "debug"
    summary = "Print a message (msg) or the value of an expression (var)."
    controller_side = True
    supports_check = True
    args: ClassVar[dict[str, Arg]] = {
        "msg": Arg("raw", help="what to print (default 'Hello world!')"),
        "var": Arg("str", help="an expression whose value is printed"),
        "verbosity": Arg("int", default=0, help="print only at this -v level or above"),
    }

    async def run(self, ctx: TaskContext, args: dict[str, Any]) -> ModuleResult:
        if args.get("msg") is not None and args.get("var"):
            return ModuleResult(failed=True, msg="'msg' and 'var' are mutually exclusive")
        wanted = int(args.get("verbosity") or 0)
        if wanted > int(ctx.run_state.get("verbosity", 0)):
            return ModuleResult(skipped=True, msg="verbosity threshold not met")
        var = args.get("var")
        if var:
            try:
                value = default_templar().evaluate(var, ctx.vars)
            except TemplateFailure as exc:
                value = f"VARIABLE IS NOT DEFINED! ({exc.message})" if exc.undefined else None
                if not exc.undefined:
                    return ModuleResult(failed=True, msg=exc.message)
            return ModuleResult(data={var: plain(value)})
        msg = args.get("msg")
        return ModuleResult(msg="Hello world!" if msg is None else plain(msg))
