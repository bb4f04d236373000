"""The one place a deploy action runs on a host: listener, SSH and local alike.

Whoever reaches the host (the listener on it, the SSH transport, the local
transport) builds an :class:`~hlplay.deploy.contract.ExecContext` with its own
command runner and hands it here. The harness applies the time limit, turns
an executor's exception into a failed result instead of a crash, stamps the
duration and executor, and performs confirm and reject. What the caller
does with the result (a protocol response, a ``DeployOutcome``) is its own
business; what happened on the host is decided here, once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any, Literal

from hlplay.deploy.contract import ExecContext, ExecResult, Executor
from hlplay.protocol.messages import DeployRequest, ErrorCode

log = logging.getLogger(__name__)

Settlement = Literal["confirm", "reject"]


async def execute(
    executor: Executor,
    request: DeployRequest,
    ctx: ExecContext,
    *,
    timeout: float | None = None,
) -> ExecResult:
    """Run ``request`` on the host of ``ctx``; never raises but for cancellation."""
    start = time.monotonic()
    begun: dict[str, Any] = {}
    told = ctx.checkpoint

    async def checkpoint(state: dict[str, Any]) -> None:
        begun.clear()
        begun.update(state)
        await told(state)

    ctx = dataclasses.replace(ctx, checkpoint=checkpoint)
    try:
        result = await asyncio.wait_for(executor.execute(request, ctx), timeout)
    except TimeoutError:
        result = ExecResult(
            ok=False,
            error=ErrorCode.TIMEOUT,
            message=f"{request.action} did not finish within {timeout:g}s",
        )
    except Exception as exc:  # one host's executor bug must not take the others down
        log.exception("executor %s failed on %s", executor.name, ctx.hostname)
        result = ExecResult(
            ok=False,
            error=ErrorCode.INTERNAL,
            message=f"executor error: {type(exc).__name__}: {exc}",
        )
    if result.error is ErrorCode.TIMEOUT and not result.message and timeout is not None:
        result.message = f"{request.action} did not finish within {timeout:g}s"
    if begun and not result.ok and result.error in (ErrorCode.TIMEOUT, ErrorCode.INTERNAL):
        # Stopped waiting mid-activation: say where the host is heading.
        result.message += "; " + where_the_host_is(begun)
        result.data.setdefault("activation", dict(begun))
    result.data = {
        **result.data,
        "duration": round(time.monotonic() - start, 3),
        "executor": executor.name,
    }
    return result


def where_the_host_is(state: dict[str, Any]) -> str:
    """What a run cut off after its checkpoint leaves on the host (never killed midway)."""
    path = state.get("path", "the new system")
    old = state.get("old_generation")
    if state.get("canary"):
        back = f"generation {old}" if old is not None else "its previous system"
        return (
            f"the activation of {path} had begun and runs on; without a confirmation "
            f"the host's watchdog rolls it back to {back}"
        )
    return f"the activation of {path} had begun and runs on: the host will run it"


async def settle(
    executor: Executor,
    what: Settlement,
    request_id: str,
    ctx: ExecContext,
    *,
    timeout: float | None = None,
) -> ExecResult:
    """Confirm (keep the new system) or reject (roll back now) a waiting activation."""
    method = executor.confirm if what == "confirm" else executor.reject
    try:
        return await asyncio.wait_for(method(request_id, ctx), timeout)
    except TimeoutError:
        return ExecResult(
            ok=False, error=ErrorCode.TIMEOUT, message=f"{what} took over {timeout:g}s"
        )
    except Exception as exc:  # reported, not raised: the other hosts carry on
        log.exception("executor %s: %s failed on %s", executor.name, what, ctx.hostname)
        return ExecResult(
            ok=False,
            error=ErrorCode.INTERNAL,
            message=f"{what} error: {type(exc).__name__}: {exc}",
        )
