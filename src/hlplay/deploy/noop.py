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
    after "activating", wait for the controller's confirmation as the Nix
    executor does: return ``awaiting_confirm``; :meth:`NoopExecutor.confirm`
    within the window keeps the new generation, :meth:`NoopExecutor.reject`
    (or a confirmation too late) restores the previous one.

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
        #: request id -> (generation to restore, deadline): activations waiting
        self._pending: dict[str, tuple[int, float]] = {}

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
        self._save(ctx)
        data: dict[str, Any] = {
            "generation": state["generation"],
            "previous_generation": previous,
            "revision": state["revision"],
        }
        message = f"noop {request.action} of {request.revision}"
        if confirm_timeout is not None and confirm_timeout > 0 and request.id:
            await ctx.progress("noop: waiting for confirmation")
            self._pending[request.id] = (previous, time.monotonic() + confirm_timeout)
            data.update(
                awaiting_confirm=True,
                request_id=request.id,
                confirm_timeout=confirm_timeout,
                confirm_deadline=time.time() + confirm_timeout,
            )
            message += f"; awaiting confirmation within {confirm_timeout:g}s"
        return ExecResult(ok=True, message=message, data=data)

    async def confirm(self, request_id: str, ctx: ExecContext) -> ExecResult:
        pending = self._pending.pop(request_id, None)
        if pending is None:
            return await super().confirm(request_id, ctx)
        previous, deadline = pending
        if time.monotonic() > deadline:
            restored = self._restore(ctx, previous)
            return ExecResult(
                ok=False,
                error=ErrorCode.CONFIRM_TIMEOUT,
                message="confirmation came too late; rolled back",
                data=restored,
            )
        await ctx.progress("noop: confirmed")
        state = self._load(ctx)
        data = {"confirmed": True, "generation": state["generation"]}
        return ExecResult(ok=True, message="confirmed", data=data)

    async def reject(self, request_id: str, ctx: ExecContext) -> ExecResult:
        pending = self._pending.pop(request_id, None)
        if pending is None:
            return await super().reject(request_id, ctx)
        restored = self._restore(ctx, pending[0])
        return ExecResult(
            ok=False, error=ErrorCode.ROLLED_BACK, message="rolled back", data=restored
        )

    def _restore(self, ctx: ExecContext, previous: int) -> dict[str, Any]:
        state = self._load(ctx)
        state["generation"] = previous
        self._save(ctx)
        return {"generation": previous, "rolled_back": True}
