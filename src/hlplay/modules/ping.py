"""``ping``: is the host reachable, and is it free to take a deploy?

Over NATS it asks the listener for its facts; over SSH or locally it runs
``true``. An unreachable host is reported as unreachable, not failed. With
``require_idle`` (default), a host already running a deploy fails the task.

It also says what safety the host's deploys get (``safety``: magic rollback,
health gate, closure diff). A host that cannot give them — a homelab-deploy
listener, or one too old to say what it runs — is named in the result, so
that deploy-all can refuse it (unless ``-e allow_unsafe=true``) instead of
losing the safety silently.
"""

from __future__ import annotations

from typing import Any, ClassVar

from hlplay.modules.base import Arg, Module, ModuleResult, TaskContext
from hlplay.transports.base import NotSupported


class Ping(Module):
    name = "ping"
    summary = "Check that a host answers (listener facts, or a no-op command) and is idle."
    supports_check = True
    args: ClassVar[dict[str, Arg]] = {
        "require_idle": Arg("bool", default=True),
        "timeout": Arg("float", default=10.0),
    }

    async def run(self, ctx: TaskContext, args: dict[str, Any]) -> ModuleResult:
        timeout = float(args.get("timeout") or 10.0)
        facts: dict[str, Any] = {}
        try:
            facts = await ctx.transport.facts(ctx.exec_host, timeout=timeout)
        except NotSupported:
            res = await ctx.transport.run(ctx.exec_host, ["true"], timeout=timeout)
            if res.rc != 0:
                return ModuleResult(
                    failed=True, rc=res.rc, msg=f"'true' failed: {res.stderr.strip()}"
                )
            safety = safety_of(ctx, None)
            return ModuleResult(msg="pong", data={"ping": "pong", "safety": safety})
        busy = bool(facts.get("busy"))
        data = {"ping": "pong", "facts": facts, "safety": safety_of(ctx, facts)}
        if busy and args.get("require_idle", True):
            return ModuleResult(
                failed=True, msg="a deploy is already running on this host", data=data
            )
        return ModuleResult(msg="pong", data=data)


#: What a deploy through hlplay's own pipeline guarantees.
SAFEGUARDS = ("magic_rollback", "health_gate", "diff")
#: Executors that run hlplay's pipeline (noop changes nothing, so loses nothing).
SAFE_EXECUTORS = frozenset({"nix", "noop"})


def safety_of(ctx: TaskContext, facts: dict[str, Any] | None) -> dict[str, Any]:
    """``{"ok", "magic_rollback", "health_gate", "diff", "reason"}`` for one host."""
    from hlplay.inventory.hostsettings import host_settings

    host = ctx.exec_host
    reason = ""
    if getattr(host, "protocol", "hlplay") == "homelab-deploy":
        reason = "a homelab-deploy listener: no magic rollback, health gate or diff"
    elif facts is not None and host.has_listener and "executor" not in facts:
        reason = "the listener does not say what it runs (older than this hlplay)"
    else:
        executor = str((facts or {}).get("executor") or "")
        if not executor:
            executor = host_settings(ctx.inventory, host).executor or "nix"
        if executor not in SAFE_EXECUTORS:
            reason = f"executor {executor!r} is not hlplay's pipeline"
    ok = not reason
    out: dict[str, Any] = {"ok": ok, **{k: ok for k in SAFEGUARDS}}
    if reason:
        out["reason"] = reason
    return out
