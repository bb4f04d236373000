"""``command``: run a program on the host, as an argument vector, never through a shell.

``command: ls -l /tmp`` is split the way a shell would split it (quotes
respected), but no shell runs it: pipes, redirections and ``$VARS`` are plain
arguments. ``argv:`` gives the vector directly. Use ``shell`` to ask for a shell.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

from hlplay.modules.base import Arg, Module, ModuleResult, TaskContext


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S.%f")


async def _exists(ctx: TaskContext, path: str) -> bool:
    res = await ctx.transport.run(ctx.exec_host, ["test", "-e", path], timeout=ctx.timeout)
    return res.rc == 0


async def run_argv_on_host(
    ctx: TaskContext, argv: Sequence[str], args: dict[str, Any], cmd_display: Any
) -> ModuleResult:
    """Shared by ``command`` and ``shell``: chdir/creates/removes/stdin, then the result."""
    creates, removes = args.get("creates"), args.get("removes")
    if creates and await _exists(ctx, creates):
        return ModuleResult(msg=f"skipped, since {creates} exists", rc=0, data={"cmd": cmd_display})
    if removes and not await _exists(ctx, removes):
        return ModuleResult(
            msg=f"skipped, since {removes} does not exist", rc=0, data={"cmd": cmd_display}
        )
    if ctx.check_mode:
        return ModuleResult(skipped=True, msg="skipped: command would run (check mode)")
    full = list(argv)
    chdir = args.get("chdir")
    if chdir:
        # the transport has no working directory parameter; env -C changes it without a shell
        full = ["env", "-C", str(chdir), *full]
    stdin = args.get("stdin")
    data: bytes | None = None
    if stdin is not None:
        text = str(stdin)
        if args.get("stdin_add_newline", True):
            text += "\n"
        data = text.encode()
    start = time.time()
    res = await ctx.transport.run(ctx.exec_host, full, timeout=ctx.timeout, stdin=data)
    end = time.time()
    stdout, stderr = res.stdout, res.stderr
    if args.get("strip_empty_ends", True):
        stdout, stderr = stdout.rstrip("\r\n"), stderr.rstrip("\r\n")
    failed = res.rc != 0
    if res.timed_out:
        msg = f"command timed out after {ctx.timeout}s"
    elif res.rc == 127 and not res.stdout:
        msg = stderr.strip() or "command not found"
    else:
        msg = "non-zero return code" if failed else ""
    return ModuleResult(
        changed=True,
        failed=failed,
        rc=res.rc,
        stdout=stdout,
        stderr=stderr,
        msg=msg,
        data={
            "cmd": cmd_display,
            "start": _stamp(start),
            "end": _stamp(end),
            "delta": str(timedelta(seconds=end - start)),
        },
    )


class Command(Module):
    name = "command"
    summary = "Run a program with arguments (no shell); a string is split like a shell would."
    free_form = "cmd"
    args: ClassVar[dict[str, Arg]] = {
        "cmd": Arg("str", help="the command line, split into arguments"),
        "argv": Arg("list", elements="str", help="the argument vector, as a list"),
        "chdir": Arg("path", help="change into this directory first"),
        "creates": Arg("path", help="do nothing if this path exists"),
        "removes": Arg("path", help="do nothing unless this path exists"),
        "stdin": Arg("str", help="text to feed on standard input"),
        "stdin_add_newline": Arg("bool", default=True),
        "strip_empty_ends": Arg("bool", default=True),
    }

    async def run(self, ctx: TaskContext, args: dict[str, Any]) -> ModuleResult:
        cmd, argv = args.get("cmd"), args.get("argv")
        if cmd and argv:
            return ModuleResult(failed=True, msg="give either a command line or argv, not both")
        if argv:
            vector = [str(a) for a in argv]
        elif cmd:
            try:
                vector = shlex.split(cmd)
            except ValueError as exc:
                return ModuleResult(failed=True, msg=f"cannot split the command line: {exc}")
        else:
            return ModuleResult(failed=True, msg="no command given")
        if not vector:
            return ModuleResult(failed=True, msg="no command given")
        return await run_argv_on_host(ctx, vector, args, vector)
