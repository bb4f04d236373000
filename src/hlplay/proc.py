"""Run a program as an argument vector (never through a shell), with a timeout.

Used by the local transport, the listener's executors and the Nix layer.
:class:`CommandResult` (what running a program gives back) and
:data:`CommandRunner` (the signature of something that runs one) live here,
at the bottom, so every layer above can use them; ``hlplay.transports.base``
re-exports ``CommandResult`` for the transports and their callers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["CommandResult", "CommandRunner", "LineCallback", "run_argv"]


@dataclass
class CommandResult:
    """One program's run: its argv, exit code, output, and whether it timed out."""

    argv: list[str]
    rc: int
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    duration: float = 0.0


# Something that runs an argument vector with a timeout (``run_argv`` fits, and
# so does a fake in tests): (argv, timeout) -> result.
CommandRunner = Callable[[Sequence[str], float | None], Awaitable[CommandResult]]

LineCallback = Callable[[str], Awaitable[None]]


async def run_argv(
    argv: Sequence[str],
    *,
    timeout: float | None = None,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    on_line: LineCallback | None = None,
) -> CommandResult:
    """Run ``argv``; a missing program is rc 127, a timeout kills the process group.

    With ``on_line``, stdout and stderr lines are passed on as they arrive
    (for progress reports) and still collected in the result.
    """
    args = [str(a) for a in argv]
    if not args:
        return CommandResult(argv=args, rc=127, stderr="empty command")
    full_env = None
    if env is not None:
        full_env = dict(os.environ)
        full_env.update(env)
    start = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
        )
    except FileNotFoundError:
        if cwd is not None and not os.path.isdir(cwd):
            return CommandResult(argv=args, rc=1, stderr=f"{cwd}: no such directory")
        return CommandResult(argv=args, rc=127, stderr=f"{args[0]}: command not found")
    except PermissionError:
        return CommandResult(argv=args, rc=126, stderr=f"{args[0]}: permission denied")
    except OSError as exc:
        return CommandResult(argv=args, rc=126, stderr=f"{args[0]}: {exc}")

    out_chunks: list[str] = []
    err_chunks: list[str] = []

    async def pump(stream: asyncio.StreamReader | None, sink: list[str]) -> None:
        if stream is None:
            return
        while True:
            line = await stream.readline()
            if not line:
                return
            text = line.decode("utf-8", "replace")
            sink.append(text)
            if on_line is not None:
                with contextlib.suppress(Exception):
                    await on_line(text.rstrip("\n"))

    async def communicate() -> int:
        if stdin is not None and proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                proc.stdin.write(stdin)
                await proc.stdin.drain()
            proc.stdin.close()
        await asyncio.gather(pump(proc.stdout, out_chunks), pump(proc.stderr, err_chunks))
        return await proc.wait()

    timed_out = False
    try:
        rc = await asyncio.wait_for(communicate(), timeout)
    except (TimeoutError, asyncio.CancelledError) as exc:
        timed_out = isinstance(exc, TimeoutError)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.wait(), 5)
        if not timed_out:
            raise
        rc = -9
    return CommandResult(
        argv=args,
        rc=rc,
        stdout="".join(out_chunks),
        stderr="".join(err_chunks) + (f"\ntimed out after {timeout}s" if timed_out else ""),
        timed_out=timed_out,
        duration=time.monotonic() - start,
    )
