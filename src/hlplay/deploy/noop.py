"""An executor that changes nothing: for tests, benchmarks and dry protocol checks.

Request options it understands:

``sleep`` (seconds, 0-86400)
    wait that long before finishing (a run in progress, for lock and
    shutdown tests);
``fail`` (bool)
    finish with ``failed`` / ``exec_failed``;
``lines`` (int, 0-1000, default 3)
    how many progress lines to emit;
``confirm_timeout`` (seconds)
    after "activating", wait that long for the controller's confirmation and
    fail with ``confirm_timeout`` (rolled back) without it.

A successful ``switch`` or ``boot`` adds a generation, kept in
``<state-dir>/noop-state.json`` when a state directory is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any

from hlplay.deploy.contract import ExecContext, ExecResult, Executor
from hlplay.protocol.messages import DeployRequest, ErrorCode

MAX_SLEEP = 86400.0


def _number(options: dict[str, Any], key: str, default: float, high: float) -> float:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"option {key!r} must be a number")
    if not math.isfinite(value) or not 0 <= value <= high:
        raise ValueError(f"option {key!r} must be between 0 and {high:g}")
    return float(value)


class NoopExecutor(Executor):
    name = "noop"

    def __init__(self) -> None:
        self._state: dict[str, Any] | None = None

    def _state_file(self, ctx: ExecContext) -> Path | None:
        return Path(ctx.state_dir) / "noop-state.json" if ctx.state_dir else None

    def _load(self, ctx: ExecContext) -> dict[str, Any]:
        if self._state is None:
            self._state = {"generation": 1, "revision": None, "time": time.time()}
            path = self._state_file(ctx)
            if path is not None and path.exists():
                with contextlib.suppress(OSError, ValueError):
                    loaded = json.loads(path.read_text())
                    if isinstance(loaded, dict):
                        self._state.update(loaded)
        return self._state

    def _save(self, ctx: ExecContext) -> None:
        path = self._state_file(ctx)
        if path is None or self._state is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._state))
        os.replace(tmp, path)

    async def current(self, ctx: ExecContext) -> dict[str, Any]:
        state = self._load(ctx)
        return {
            "generation": state["generation"],
            "revision": state["revision"],
            "store_path": f"/nix/store/noop-{ctx.hostname}-{state['generation']}",
            "generation_time": state["time"],
        }

    async def execute(self, request: DeployRequest, ctx: ExecContext) -> ExecResult:
        options = {**ctx.options, **request.options}
        try:
            sleep = _number(options, "sleep", 0.0, MAX_SLEEP)
            lines = int(_number(options, "lines", 3, 1000))
            confirm_timeout = (
                _number(options, "confirm_timeout", 0.0, MAX_SLEEP)
                if "confirm_timeout" in options
                else None
            )
        except ValueError as exc:
            return ExecResult(ok=False, error=ErrorCode.INVALID_OPTIONS, message=str(exc))
        fail = options.get("fail", False) is True

        for i in range(lines):
            await ctx.progress(f"noop: step {i + 1}/{lines} of {request.action} {request.revision}")
        if sleep:
            await asyncio.sleep(sleep)
        if fail:
            return ExecResult(
                ok=False, error=ErrorCode.EXEC_FAILED, message="noop: failing as asked"
            )
        state = self._load(ctx)
        previous = state["generation"]
        if request.action in ("switch", "boot", "test", "rollback"):
            if request.action == "rollback":
                state["generation"] = max(1, previous - 1)
            elif request.action != "test":
                state["generation"] = previous + 1
            state["revision"] = request.revision
            state["time"] = time.time()
        if confirm_timeout is not None:
            await ctx.progress("noop: waiting for confirmation")
            if not await ctx.wait_confirm(confirm_timeout):
                state["generation"] = previous
                self._save(ctx)
                return ExecResult(
                    ok=False,
                    error=ErrorCode.CONFIRM_TIMEOUT,
                    message=f"not confirmed (waited up to {confirm_timeout:g}s); rolled back",
                    data={"generation": previous, "rolled_back": True},
                )
            await ctx.progress("noop: confirmed")
        self._save(ctx)
        return ExecResult(
            ok=True,
            message=f"noop {request.action} of {request.revision}",
            data={
                "generation": state["generation"],
                "previous_generation": previous,
                "revision": state["revision"],
            },
        )
