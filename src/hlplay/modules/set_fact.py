"""``set_fact``: set host variables for the rest of the run (highest precedence but -e)."""

from __future__ import annotations

from typing import Any, ClassVar

from hlplay.modules.base import Arg, Module, ModuleResult, TaskContext

_RESERVED = frozenset(("inventory_hostname", "hostvars", "groups", "group_names", "omit"))


class SetFact(Module):
    name = "set_fact"
    summary = "Set variables on the host (key: value pairs), templated."
    controller_side = True
    supports_check = True
    open_args = True
    args: ClassVar[dict[str, Arg]] = {
        "cacheable": Arg("bool", default=False, help="accepted for compatibility; no effect"),
    }

    async def run(self, ctx: TaskContext, args: dict[str, Any]) -> ModuleResult:
        facts = {k: v for k, v in args.items() if k != "cacheable"}
        if not facts:
            return ModuleResult(failed=True, msg="set_fact needs at least one variable")
        for key in facts:
            if not key.isidentifier():
                return ModuleResult(failed=True, msg=f"invalid variable name '{key}'")
            if key in _RESERVED:
                return ModuleResult(failed=True, msg=f"'{key}' is a reserved variable name")
        return ModuleResult(data={"ansible_facts": facts})
