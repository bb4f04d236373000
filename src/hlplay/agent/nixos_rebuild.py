"""The default executor: ``nixos-rebuild <action> --flake <flake>?ref=<revision>#<host>``.

The command is an argument vector handed to the context's runner, never a
shell line; the revision has already passed :func:`validate_revision` and is
percent-encoded into the flake URL all the same. A full 40-hex commit becomes
``rev=``, anything else (branch, tag) ``ref=``.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from hlplay.agent.executor import ExecContext, ExecResult, Executor
from hlplay.protocol.messages import DeployRequest, ErrorCode

COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
GENERATION_LINK_RE = re.compile(r"-(\d+)-link$")
REBUILD_ACTIONS = ("switch", "boot", "test", "dry-activate", "build")
REVISION_FILE = "revision"


def flake_ref(flake: str, revision: str, hostname: str) -> str:
    """``<flake>?ref=<revision>#<hostname>`` (``rev=`` for a full commit hash)."""
    base = flake.split("#", 1)[0]
    key = "rev" if COMMIT_RE.match(revision) else "ref"
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}{key}={quote(revision, safe='/._-')}#{hostname}"


def rebuild_argv(action: str, flake: str, revision: str, hostname: str) -> list[str]:
    if action == "rollback":
        return ["nixos-rebuild", "switch", "--rollback"]
    return ["nixos-rebuild", action, "--flake", flake_ref(flake, revision, hostname)]


def classify_failure(rc: int, output: str) -> ErrorCode:
    if rc in (126, 127):
        return ErrorCode.EXEC_FAILED
    if "activating the configuration" in output or "switching to" in output.lower():
        return ErrorCode.ACTIVATION_FAILED
    return ErrorCode.BUILD_FAILED


def profile_generation(profile: str) -> dict[str, Any]:
    """Generation number, store path and age of a Nix profile, from its symlinks."""
    link = Path(profile)
    try:
        target = os.readlink(link)
    except OSError:
        return {}
    out: dict[str, Any] = {}
    match = GENERATION_LINK_RE.search(target)
    if match:
        out["generation"] = int(match.group(1))
        gen_link = link.parent / target if not os.path.isabs(target) else Path(target)
        with contextlib.suppress(OSError):
            out["generation_time"] = gen_link.lstat().st_mtime
    with contextlib.suppress(OSError):
        out["store_path"] = os.path.realpath(link)
    return out


class NixosRebuildExecutor(Executor):
    name = "nixos-rebuild"

    async def current(self, ctx: ExecContext) -> dict[str, Any]:
        out = profile_generation(ctx.profile)
        if ctx.state_dir:
            with contextlib.suppress(OSError):
                out["revision"] = (Path(ctx.state_dir) / REVISION_FILE).read_text().strip()
        return out

    async def execute(self, request: DeployRequest, ctx: ExecContext) -> ExecResult:
        action = request.action
        if action == "noop":
            return ExecResult(ok=True, message="nothing to do")
        if action not in (*REBUILD_ACTIONS, "rollback"):
            return ExecResult(
                ok=False,
                error=ErrorCode.NOT_SUPPORTED,
                message=f"the nixos-rebuild executor does not support {action!r}; "
                "run the listener with --executor nix",
            )
        before = await self.current(ctx)
        argv = rebuild_argv(action, ctx.flake, request.revision, ctx.hostname)
        await ctx.progress("$ " + " ".join(argv))
        start = time.monotonic()
        result = await ctx.runner(argv, None)
        if result.rc != 0:
            output = result.stdout + result.stderr
            tail = [line for line in output.strip().splitlines() if line.strip()][-5:]
            code = ErrorCode.TIMEOUT if result.timed_out else classify_failure(result.rc, output)
            return ExecResult(
                ok=False,
                error=code,
                message=f"nixos-rebuild {action} exited {result.rc}"
                + (": " + " | ".join(tail) if tail else ""),
                data={"rc": result.rc},
            )
        if action in ("switch", "boot") and ctx.state_dir:
            state = Path(ctx.state_dir)
            state.mkdir(parents=True, exist_ok=True)
            (state / REVISION_FILE).write_text(request.revision + "\n")
        after = await self.current(ctx)
        data: dict[str, Any] = {
            "revision": request.revision if action != "rollback" else after.get("revision"),
            "build_seconds": round(time.monotonic() - start, 3),
        }
        if "generation" in after:
            data["generation"] = after["generation"]
        if "generation" in before:
            data["previous_generation"] = before["generation"]
        if "store_path" in after:
            data["store_path"] = after["store_path"]
        return ExecResult(ok=True, message=f"nixos-rebuild {action} succeeded", data=data)
