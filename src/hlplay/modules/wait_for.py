"""``wait_for``: wait until a TCP port answers (or stops) or a path appears (or goes).

On the controller (local transport, ``delegate_to: localhost``) the checks run
in-process. On other hosts they run through the host's transport: ``test -e``
and ``cat`` for paths, bash's ``/dev/tcp`` for ports (host and port passed as
arguments, never spliced into the script).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from hlplay.modules.base import Arg, ArgError, Module, ModuleResult, TaskContext

_TCP_PROBE = 'exec 3<>"/dev/tcp/$0/$1"'


class WaitFor(Module):
    name = "wait_for"
    summary = "Wait for a TCP port or a path (present/absent), with a timeout."
    supports_check = True
    args: ClassVar[dict[str, Arg]] = {
        "host": Arg("str", default="127.0.0.1", help="address to connect to"),
        "port": Arg("int", help="TCP port"),
        "path": Arg("path", help="file that must exist (or not)"),
        "state": Arg("str", default="started", choices=("started", "stopped", "present", "absent")),
        "timeout": Arg("float", default=300.0, help="seconds before failing"),
        "delay": Arg("float", default=0.0, help="seconds to wait before the first check"),
        "sleep": Arg("float", default=1.0, help="seconds between checks"),
        "connect_timeout": Arg("float", default=5.0),
        "search_regex": Arg("str", help="text the file (or the port's greeting) must contain"),
        "msg": Arg("str", help="message on timeout"),
    }

    @classmethod
    def check_args(cls, args: Mapping[str, Any]) -> None:
        """Checked when the playbook loads (templated values skipped) and once rendered."""
        port, path = args.get("port"), args.get("path")
        if port is None and not path:
            raise ArgError("wait_for needs 'port' or 'path'")
        if port is not None and path:
            raise ArgError("'port' and 'path' are mutually exclusive")
        if isinstance(port, int) and not isinstance(port, bool) and not 0 < port < 65536:
            raise ArgError(f"argument 'port' must be a port number (1-65535), got {port}")
        regex = args.get("search_regex")
        if isinstance(regex, str) and "{{" not in regex and "{%" not in regex:
            try:
                re.compile(regex)
            except re.error as exc:
                raise ArgError(f"search_regex {regex!r} is not a valid regex: {exc}") from None

    async def run(self, ctx: TaskContext, args: dict[str, Any]) -> ModuleResult:
        port, path = args.get("port"), args.get("path")
        if port is None and not path:
            return ModuleResult(failed=True, msg="wait_for needs 'port' or 'path'")
        if port is not None and path:
            return ModuleResult(failed=True, msg="'port' and 'path' are mutually exclusive")
        state = args.get("state") or "started"
        want_present = state in ("started", "present")
        regex = args.get("search_regex")
        pattern = re.compile(regex) if regex else None
        timeout = float(args.get("timeout") or 0)
        sleep = max(0.01, float(args.get("sleep") or 1.0))
        start = time.monotonic()
        if args.get("delay"):
            await asyncio.sleep(float(args["delay"]))
        deadline = start + timeout
        while True:
            present, text = await (
                self._port(ctx, args, pattern is not None)
                if port is not None
                else self._path(ctx, str(path), pattern is not None)
            )
            match = pattern.search(text) if (pattern and present) else None
            done = (
                (present and (pattern is None or match is not None))
                if want_present
                else (not present)
            )
            elapsed = time.monotonic() - start
            if done:
                data: dict[str, Any] = {"elapsed": round(elapsed, 3), "state": state}
                data.update({"port": port} if port is not None else {"path": path})
                if match is not None:
                    data["match_groups"] = list(match.groups())
                    data["match_groupdict"] = match.groupdict()
                return ModuleResult(data=data)
            if time.monotonic() + sleep > deadline:
                where = f"{args.get('host')}:{port}" if port is not None else str(path)
                return ModuleResult(
                    failed=True,
                    msg=args.get("msg") or f"Timeout when waiting for {where}",
                    data={"elapsed": round(elapsed, 3), "state": state},
                )
            await asyncio.sleep(sleep)

    async def _port(self, ctx: TaskContext, args: dict[str, Any], read: bool) -> tuple[bool, str]:
        host, port = str(args.get("host") or "127.0.0.1"), int(args["port"])
        ct = float(args.get("connect_timeout") or 5.0)
        if ctx.transport.name == "local":
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), ct)
            except (OSError, TimeoutError):
                return False, ""
            text = ""
            if read:
                with contextlib.suppress(OSError, TimeoutError):
                    text = (await asyncio.wait_for(reader.read(4096), ct)).decode(
                        "utf-8", "replace"
                    )
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return True, text
        res = await ctx.transport.run(
            ctx.exec_host, ["bash", "-c", _TCP_PROBE, host, str(port)], timeout=ct
        )
        return res.rc == 0, ""

    async def _path(self, ctx: TaskContext, path: str, read: bool) -> tuple[bool, str]:
        if ctx.transport.name == "local":
            p = Path(path)
            if not p.exists():
                return False, ""
            text = ""
            if read:
                with contextlib.suppress(OSError):
                    text = p.read_text(encoding="utf-8", errors="replace")
            return True, text
        if read:
            res = await ctx.transport.run(ctx.exec_host, ["cat", path], timeout=ctx.timeout)
            return res.rc == 0, res.stdout
        res = await ctx.transport.run(ctx.exec_host, ["test", "-e", path], timeout=ctx.timeout)
        return res.rc == 0, ""
