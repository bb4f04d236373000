"""``shell``: run a command line through ``/bin/sh -c`` — only when a playbook asks.

Pipes, redirections and variables work here because a shell runs the line.
Prefer ``command`` unless you need them: templated values in a shell line are
shell code (quote them with the ``quote`` filter).
"""

from __future__ import annotations

from typing import Any, ClassVar

from hlplay.modules.base import Arg, Module, ModuleResult, TaskContext
from hlplay.modules.command import run_argv_on_host


class Shell(Module):
    name = "shell"
    summary = "Run a command line through a shell (/bin/sh -c), explicitly."
    free_form = "cmd"
    args: ClassVar[dict[str, Arg]] = {
        "cmd": Arg("str", required=True, help="the command line"),
        "executable": Arg("path", default="/bin/sh", help="the shell to run it with"),
        "chdir": Arg("path"),
        "creates": Arg("path"),
        "removes": Arg("path"),
        "stdin": Arg("str"),
        "stdin_add_newline": Arg("bool", default=True),
        "strip_empty_ends": Arg("bool", default=True),
    }

    async def run(self, ctx: TaskContext, args: dict[str, Any]) -> ModuleResult:
        cmd = args.get("cmd")
        if not cmd:
            return ModuleResult(failed=True, msg="no command given")
        shell = args.get("executable") or "/bin/sh"
        return await run_argv_on_host(ctx, [shell, "-c", cmd], args, cmd)
