"""The Nix executor: build, diff, activate, confirm and roll back one host.

The one host-side pipeline, the default everywhere: run by the listener
(``hlplay listen``, commands run on the host), by the SSH transport (the same
code on the controller, commands run over SSH) and for local hosts. Actions:

``build``
    build the host's toplevel at the request's revision; report its path.
``diff``
    build, then diff its closure against the running system (nvd style).
``switch`` / ``boot`` / ``test`` / ``dry-activate``
    build; a system identical to the current one is *not* activated
    (``changed: false``). Otherwise set the profile (switch, boot) and run
    ``switch-to-configuration``. A failed activation or health gate rolls back
    at once; with ``confirm_timeout`` the host rolls back by itself unless the
    controller confirms in time (magic rollback).
``rollback``
    go back to the previous generation and activate it.

Request options (``request.options``, sent by the controller):
``confirm_timeout`` (seconds, 0 = no confirmation), ``health`` (checks, see
:mod:`hlplay.nix.health`), ``diff`` (bool, default true: include a closure
diff in switch/boot/test results), ``build_timeout``, ``activate_timeout``.

Magic rollback is one mechanism wherever this runs, as deploy-rs's: with
``confirm_timeout`` the host arms its watchdog (a canary file and a detached
process, or a transient unit) *before* activating, so a host cut off
mid-activation still rolls back by itself; once the activation and the health
gate passed, the confirmation window opens and the executor returns with
``awaiting_confirm``. The controller keeps the new system with
:meth:`NixExecutor.confirm` (through ``Transport.confirm``) or rolls it back
at once with :meth:`NixExecutor.reject`.

Context options (``ctx.options``, set by whoever runs the executor, never by
a request): ``build_on``
(``host`` or ``controller``), ``copy_to`` (store URI for ``nix copy`` when
building on the controller), ``nix_sshopts``, ``activation_env`` (variables
for ``switch-to-configuration``), ``units_dir`` (hosts without systemd: unit
state files for ``unit_active`` checks), ``current_system`` (the running
system's link, default ``/run/current-system``).

Activation follows nixos-rebuild-ng (docs/nix.md, "Activation semantics"):
under ``systemd-run`` in a transient unit where the host runs systemd; exit 4
(the system switched, units failed) is left to the health gate, and without
one fails the host and rolls back; "unchanged" compares with what runs.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hlplay.deploy.contract import ExecContext, ExecResult, Executor
from hlplay.nix import errors, flakeref, health, system
from hlplay.nix.system import Generation, NixOpError, RollbackOutcome
from hlplay.proc import CommandResult, CommandRunner
from hlplay.protocol.messages import BUILD_ACTIONS, Action, DeployRequest, ErrorCode

ACTIONS = (*BUILD_ACTIONS, Action.ROLLBACK.value, Action.NOOP.value)
MAX_CONFIRM_TIMEOUT = 3600.0
DEFAULT_DIFF_LINES = 400
#: What the watchdog allows the health gate, on top of the activation's own
#: time limit, before the confirmation window opens.
HEALTH_ALLOWANCE = 300.0


class OptionsError(ValueError):
    pass


@dataclass
class RequestOptions:
    """The request options this executor understands, validated."""

    confirm_timeout: float = 0.0
    health: list[health.HealthCheck] = field(default_factory=list)
    diff: bool = True
    build_timeout: float = system.DEFAULT_BUILD_TIMEOUT
    activate_timeout: float = system.DEFAULT_ACTIVATE_TIMEOUT

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> RequestOptions:
        out = cls()
        out.confirm_timeout = _seconds(options, "confirm_timeout", 0.0, MAX_CONFIRM_TIMEOUT)
        out.build_timeout = _seconds(options, "build_timeout", out.build_timeout, 86400)
        out.activate_timeout = _seconds(options, "activate_timeout", out.activate_timeout, 86400)
        diff = options.get("diff", True)
        if not isinstance(diff, bool):
            raise OptionsError("option 'diff' must be true or false")
        out.diff = diff
        try:
            checks = health.parse_checks(options.get("health"))
        except health.HealthSpecError as exc:
            raise OptionsError(str(exc)) from None
        # Controller-side checks are the playbook module's business.
        out.health = [c for c in checks if c.side == "host"]
        return out


def _seconds(options: Mapping[str, Any], key: str, default: float, high: float) -> float:
    value = options.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OptionsError(f"option {key!r} must be a number of seconds")
    if not math.isfinite(value) or not 0 <= value <= high:
        raise OptionsError(f"option {key!r} must be between 0 and {high:g}")
    return float(value)


async def local_runner(argv: Any, timeout: float | None) -> CommandResult:
    from hlplay.proc import run_argv

    return await run_argv(argv, timeout=timeout)


class NixExecutor(Executor):
    name = "nix"

    # -- facts ---------------------------------------------------------------

    async def current(self, ctx: ExecContext) -> dict[str, Any]:
        """The running generation (number, path, revision, age) and the list of all."""
        gens = await system.list_generations(ctx.runner, ctx.profile)
        cur = next((g for g in gens if g.current), None)
        out: dict[str, Any] = {"profile": ctx.profile, "generations": len(gens)}
        if not gens:
            out["generation_list"] = []
            return out
        records = await system.read_deployments(
            ctx.runner, system.record_file(ctx.profile, ctx.state_dir)
        )
        out["generation_list"] = [
            {**g.to_dict(), "revision": system.revision_of(records, g.path)} for g in gens
        ]
        if cur is None:
            return out
        out.update(
            generation=cur.number,
            path=cur.path,
            store_path=cur.path,
            revision=system.revision_of(records, cur.path),
            age=max(0.0, round(time.time() - cur.time, 1)),
            generation_time=cur.time,
        )
        return out

    async def generations(self, ctx: ExecContext) -> list[dict[str, Any]]:
        """Every generation of the profile, oldest first, with its deployed revision."""
        rows = (await self.current(ctx)).get("generation_list") or []
        return list(rows)

    # -- entry point ---------------------------------------------------------

    async def execute(self, request: DeployRequest, ctx: ExecContext) -> ExecResult:
        action = request.action
        if action == "noop":
            return ExecResult(ok=True, message="nothing to do")
        if action not in ACTIONS:
            return ExecResult(
                ok=False,
                error=ErrorCode.INVALID_ACTION,
                message=f"the nix executor does not support {action!r}",
            )
        try:
            opts = RequestOptions.parse(request.options)
        except OptionsError as exc:
            return ExecResult(ok=False, error=ErrorCode.INVALID_REQUEST, message=str(exc))
        try:
            if action == "rollback":
                return await self._rollback_action(ctx, opts, request.options.get("generation"))
            return await _Run(request, ctx, opts).run()
        except NixOpError as exc:
            return ExecResult(ok=False, error=ErrorCode.EXEC_FAILED, message=exc.message)
        except flakeref.FlakeRefError as exc:
            return ExecResult(ok=False, error=ErrorCode.INVALID_REQUEST, message=str(exc))

    # -- confirmation from the controller ------------------------------------------

    async def confirm(self, request_id: str, ctx: ExecContext) -> ExecResult:
        """Keep the activation of ``request_id``, waiting for it (magic rollback)."""
        try:
            canary = system.canary_path(ctx.profile, ctx.state_dir, request_id)
        except NixOpError as exc:
            return ExecResult(ok=False, error=ErrorCode.INVALID_REQUEST, message=exc.message)
        outcome = await system.confirm_canary(ctx.runner, canary)
        if outcome.confirmed:
            # Kept only now: pruning before would have taken what a rollback needs.
            pruned = await _prune(ctx, {})
            data = await self._safe_current(ctx)
            return ExecResult(
                ok=True, message="confirmed", data={"confirmed": True, **data, **pruned}
            )
        data = {"confirmed": False, "rolled_back": outcome.rolled_back}
        if outcome.rolled_back:
            data["rollback"] = {"ok": bool(outcome.rollback_ok), "message": outcome.message}
        return ExecResult(
            ok=False,
            error=ErrorCode.CONFIRM_TIMEOUT,
            message=f"confirmation came too late: {outcome.message}",
            data=data,
        )

    async def reject(self, request_id: str, ctx: ExecContext) -> ExecResult:
        """Withdraw the waiting activation of ``request_id``: roll back now, not at the timeout.

        The controller calls this when its own checks fail; the watchdog stands
        down and the rollback runs here, so its outcome is reported directly.
        """
        try:
            canary = system.canary_path(ctx.profile, ctx.state_dir, request_id)
        except NixOpError as exc:
            return ExecResult(ok=False, error=ErrorCode.INVALID_REQUEST, message=exc.message)
        claim = await system.claim_canary(ctx.runner, canary)
        if not claim.claimed:
            return ExecResult(
                ok=False,
                error=ErrorCode.ROLLED_BACK,
                message=claim.message,
                data={"rolled_back": "rollback: ok" in claim.message},
            )
        gens = await system.list_generations(ctx.runner, ctx.profile)
        to = next((g for g in gens if g.number == claim.old), None)
        out = await system.roll_back(
            ctx.runner,
            ctx.profile,
            to=to,
            failed=claim.new,
            action=claim.action,
            env=_activation_env(ctx),
            systemd=await system.has_systemd(ctx.runner),
        )
        data = {"rolled_back": out.ok, "rollback": out.to_dict()}
        if out.ok and to is not None:
            data["generation"] = to.number
        return ExecResult(ok=False, error=ErrorCode.ROLLED_BACK, message=out.message, data=data)

    async def resume(self, state: dict[str, Any], ctx: ExecContext) -> ExecResult:
        path, action = state.get("path"), state.get("action")
        if not isinstance(path, str) or action not in ACTIONS:
            return await super().resume(state, ctx)
        data: dict[str, Any] = {
            k: state[k] for k in ("generation", "old_generation", "path") if k in state
        }
        data.update(action=action, resumed=True)
        took = await _took_effect(ctx, path, str(action))
        canary, rid = state.get("canary"), state.get("request_id")
        raw = state.get("confirm_timeout")
        window = float(raw) if isinstance(raw, int | float) else 0.0
        if isinstance(canary, str) and isinstance(rid, str):
            if took and window > 0 and await system.open_window(ctx.runner, canary, window):
                data.update(
                    awaiting_confirm=True,
                    canary=canary,
                    request_id=rid,
                    confirm_timeout=window,
                    confirm_deadline=time.time() + window,
                )
                return ExecResult(
                    True,
                    None,
                    f"the new system {path} runs (the listener restarted during its "
                    f"activation); awaiting confirmation within {window:g}s",
                    data,
                )
            back = await self.reject(rid, ctx)
            return ExecResult(
                False,
                ErrorCode.INTERRUPTED if not took else (back.error or ErrorCode.ROLLED_BACK),
                "the listener stopped during the activation; " + back.message,
                {**data, **back.data},
            )
        if took:
            return ExecResult(
                True, None, f"the new system {path} runs (the listener restarted)", data
            )
        return ExecResult(
            False,
            ErrorCode.INTERRUPTED,
            f"the listener stopped during the activation of {path}, which did not take effect",
            data,
        )

    async def _safe_current(self, ctx: ExecContext) -> dict[str, Any]:
        try:
            cur = await self.current(ctx)
        except NixOpError:
            return {}
        return {k: cur[k] for k in ("generation", "path", "revision") if k in cur}

    # -- rollback action -------------------------------------------------------

    async def _rollback_action(
        self, ctx: ExecContext, opts: RequestOptions, wanted: object = None
    ) -> ExecResult:
        gens = await system.list_generations(ctx.runner, ctx.profile)
        cur = next((g for g in gens if g.current), None)
        if wanted is not None:
            if isinstance(wanted, bool) or not isinstance(wanted, int):
                return ExecResult(
                    ok=False,
                    error=ErrorCode.INVALID_REQUEST,
                    message="option 'generation' must be a generation number",
                )
            prev = next((g for g in gens if g.number == wanted), None)
            if prev is None:
                known = ", ".join(str(g.number) for g in gens) or "none"
                return ExecResult(
                    ok=False,
                    error=ErrorCode.INVALID_REQUEST,
                    message=f"no generation {wanted} on this host (generations: {known})",
                )
        else:
            prev = system.previous_of(gens, cur.number if cur else None)
        if cur is None or prev is None:
            return ExecResult(
                ok=False,
                error=ErrorCode.NO_PREVIOUS_GENERATION,
                message="no previous generation to roll back to",
            )
        await ctx.progress(f"rolling back from generation {cur.number} to {prev.number}")
        # An explicit rollback keeps the generation it leaves: it is not broken.
        out = await system.roll_back(
            ctx.runner,
            ctx.profile,
            to=prev,
            failed=None,
            action="switch",
            env=_activation_env(ctx),
            timeout=opts.activate_timeout,
            systemd=await system.has_systemd(ctx.runner),
        )
        records = await system.read_deployments(
            ctx.runner, system.record_file(ctx.profile, ctx.state_dir)
        )
        data = {
            "old_generation": cur.number,
            "generation": prev.number,
            "path": prev.path,
            "revision": system.revision_of(records, prev.path),
            "changed": out.ok,
            "rollback": out.to_dict(),
        }
        if not out.ok:
            return ExecResult(False, ErrorCode.ACTIVATION_FAILED, out.message, data)
        return ExecResult(True, None, out.message, data)


#: How long a resumed run waits for an activation that outlived its listener.
RESUME_SETTLE = 30.0


async def _took_effect(ctx: ExecContext, path: str, action: str) -> bool:
    """Whether the activation of ``path`` took effect (given time to end, if it still runs)."""
    where = ctx.options.get("current_system", system.CURRENT_SYSTEM)
    deadline = time.monotonic() + RESUME_SETTLE
    while True:
        running = await system.resolve_existing(ctx.runner, str(where))
        if running is None:
            # no running-system link (a host without one): the profile tells
            gen = await system.current_generation(ctx.runner, ctx.profile)
            return action not in ("switch", "boot") or (gen is not None and gen.path == path)
        if running == path:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.5)


def _activation_env(ctx: ExecContext) -> dict[str, str] | None:
    env = ctx.options.get("activation_env")
    if not env:
        return None
    if not isinstance(env, Mapping):
        raise NixOpError("activation_env must be a mapping")
    return {str(k): str(v) for k, v in env.items()}


class _Run:
    """One build-and-activate request on one host."""

    def __init__(self, request: DeployRequest, ctx: ExecContext, opts: RequestOptions) -> None:
        self.request = request
        self.ctx = ctx
        self.opts = opts
        #: the watchdog's canary, armed before activation when confirmation is due
        self.canary: str | None = None
        self._request_id: str | None = None
        self.action = request.action
        self.env = _activation_env(ctx)
        self.data: dict[str, Any] = {"action": self.action, "revision": request.revision}
        self.systemd: bool | None = None  # learnt before the first activation
        self.back_to: Generation | None = None
        from hlplay.deploy import buildplace

        build_on = ctx.options.get("build_on", "host")
        if build_on not in ("host", "controller"):
            raise NixOpError("build_on must be 'host' or 'controller'")
        self.build_on = str(build_on)
        #: a build host's store: built there, brought back, then copied as from here
        self.build_store = buildplace.option(ctx.options, "build_store")
        # Before anything runs: a host handed a controller's checkout fails late and obscurely.
        problem = buildplace.unreadable_flake(ctx.flake, ctx.hostname, ctx.options)
        if problem is not None:
            raise flakeref.FlakeRefError(problem)

    @property
    def runner(self) -> CommandRunner:
        return self.ctx.runner

    def fail(self, code: ErrorCode, message: str) -> ExecResult:
        return ExecResult(ok=False, error=code, message=message, data=self.data)

    async def run(self) -> ExecResult:
        ctx = self.ctx
        gens = await system.list_generations(self.runner, ctx.profile)
        before = next((g for g in gens if g.current), None)
        if before is not None:
            self.data.update(old_generation=before.number, old_path=before.path)
        try:
            new_path = await self.build()
        except NixOpError as exc:
            timed_out = exc.result is not None and exc.result.timed_out
            repo = flakeref.local_repo(ctx.flake) if ctx.flake else None
            if exc.result is not None:
                out = exc.result.stderr.strip() or exc.result.stdout.strip()
                self.data["error_detail"] = errors.detail(out, repo)
            return self.fail(
                ErrorCode.TIMEOUT if timed_out else ErrorCode.BUILD_FAILED,
                errors.map_source_paths(exc.message, repo),
            )
        self.data["path"] = new_path
        running = await self.running_system()
        profile_differs = before is None or before.path != new_path
        # What runs now is what an activation changes; the profile is what boots.
        running_differs = running != new_path if running is not None else profile_differs
        if self.action == "switch":
            changed = running_differs or profile_differs
        elif self.action == "boot":
            changed = profile_differs
        else:
            changed = running_differs
        self.data["changed"] = changed
        # A profile ahead of (or behind) the running system: roll back to what runs.
        self.back_to = self.rollback_target(gens, before, running, new_path)

        if self.action == "build":
            return ExecResult(True, None, f"built {new_path}", self.data)
        if self.action == "diff":
            await self.add_diff(self.diff_base(before, running), new_path, required=True)
            summary = self.data.get("diff_summary") or ("changes" if changed else "no changes")
            return ExecResult(True, None, str(summary), self.data)

        if not changed:
            if before is None:
                return ExecResult(True, None, f"the running system is {new_path}", self.data)
            self.data["generation"] = before.number
            if self.action in ("switch", "boot") and not profile_differs:
                # The running system is exactly what this revision builds: record
                # it, so that revision drift reports only real differences.
                await system.record_deployment(
                    self.runner,
                    system.record_file(ctx.profile, ctx.state_dir),
                    system.Deployment(
                        time.time(), before.number, new_path, self.request.revision, "unchanged"
                    ),
                )
            return ExecResult(
                True, None, f"generation {before.number} already runs {new_path}", self.data
            )
        if self.opts.diff:
            await self.add_diff(self.diff_base(before, running), new_path, required=False)
        if self.build_on == "controller":
            await self.copy(new_path)

        if self.action == "dry-activate":
            res = await self.activate(new_path)
            self.data["output"] = system.tail(res, 40) if res.rc == 0 else ""
            self.data["changed"] = False  # a dry activation changes nothing
            if res.rc != 0:
                return self.fail(ErrorCode.ACTIVATION_FAILED, _failed("dry-activate", res))
            return ExecResult(True, None, "dry activation succeeded", self.data)
        return await self.activate_and_guard(gens, before, new_path)

    # -- the running system ------------------------------------------------------

    async def running_system(self) -> str | None:
        """The running toplevel (``/run/current-system`` resolved), or None where there is none.

        The location is the context option ``current_system`` (tests point it
        at a symlink of their own).
        """
        where = self.ctx.options.get("current_system", system.CURRENT_SYSTEM)
        if not isinstance(where, str) or not where:
            raise NixOpError("current_system must be a path")
        running = await system.resolve_existing(self.runner, where)
        if running is not None:
            self.data["running_path"] = running
        return running

    @staticmethod
    def diff_base(before: Generation | None, running: str | None) -> str | None:
        return running if running is not None else (before.path if before else None)

    @staticmethod
    def rollback_target(
        gens: list[Generation], before: Generation | None, running: str | None, new_path: str
    ) -> Generation | None:
        """The generation a failed activation returns to.

        The one that runs, when the profile holds it (newest first); else the
        profile's current generation, unless that is the new system itself —
        then the one before it.
        """
        if running is not None:
            for gen in reversed(gens):
                if gen.path == running and gen.path != new_path:
                    return gen
        if before is not None and before.path == new_path:
            return system.previous_of(gens, before.number)
        return before

    async def uses_systemd(self) -> bool:
        if self.systemd is None:
            self.systemd = await system.has_systemd(self.runner)
            self.data["systemd_run"] = self.systemd
        return self.systemd

    # -- steps -----------------------------------------------------------------

    async def build(self) -> str:
        ctx = self.ctx
        target = flakeref.installable(
            ctx.flake, self.request.revision, ctx.toplevel_attr, ctx.hostname
        )
        if self.build_store is not None:
            where = f"on {self.build_store}"
        elif self.build_on == "controller":
            where = "on the controller"
        else:
            where = ""
        await ctx.progress(f"building {target} {where}".rstrip())
        start = time.monotonic()
        if self.build_store is not None:
            from hlplay.deploy import buildplace

            remote = buildplace.runner_with_sshopts(buildplace.option(ctx.options, "build_sshopts"))
            path = await buildplace.build_on_store(
                remote, target, self.build_store, timeout=self.opts.build_timeout
            )
            self.data["build_seconds"] = round(time.monotonic() - start, 3)
            await ctx.progress(f"built {path}; copying it from {self.build_store}")
            # The diff and the copy to the host read the closure from here.
            await system.copy_closure(
                remote, path, None, from_uri=self.build_store, timeout=self.opts.build_timeout
            )
            self.data["build_host_store"] = self.build_store
            return path
        runner = local_runner if self.build_on == "controller" else self.runner
        path = await system.build(runner, target, timeout=self.opts.build_timeout)
        self.data["build_seconds"] = round(time.monotonic() - start, 3)
        await ctx.progress(f"built {path}")
        return path

    async def copy(self, path: str) -> None:
        from hlplay.deploy import buildplace

        options = self.ctx.options
        store = buildplace.option(options, "copy_to")
        if store is None:
            raise NixOpError("build_on: controller needs copy_to (a store URI such as ssh-ng://…)")
        substitute = options.get("substitute_on_destination") is True
        await self.ctx.progress(
            f"copying {path} to {store}" + (" (substitutes on the host)" if substitute else "")
        )
        start = time.monotonic()
        await system.copy_closure(
            buildplace.runner_with_sshopts(buildplace.option(options, "nix_sshopts")),
            path,
            store,
            substitute=substitute,
            timeout=self.opts.build_timeout,
        )
        self.data.update(copied_to=store, copy_seconds=round(time.monotonic() - start, 3))

    async def add_diff(self, old_path: str | None, new_path: str, *, required: bool) -> None:
        """Put the closure diff (JSON, text, summary) into the result data."""
        try:
            from hlplay.nix.closure import closure_from_path_info_json
            from hlplay.nix.diff import diff_closures

            new_runner = local_runner if self.build_on == "controller" else self.runner
            after = closure_from_path_info_json(
                await system.path_info_json(new_runner, new_path), root=new_path
            )
            if old_path is not None:
                old = closure_from_path_info_json(
                    await system.path_info_json(self.runner, old_path), root=old_path
                )
            else:
                old = _empty_closure()
            diff = diff_closures(
                old, after, before_label=None if old_path is not None else "(no system)"
            )
            text = diff.render_text()
            lines = text.splitlines()
            if len(lines) > DEFAULT_DIFF_LINES:
                text = "\n".join([*lines[: DEFAULT_DIFF_LINES - 1], f"… {len(lines)} lines"])
            self.data.update(
                diff=diff.to_json(),
                diff_text=text,
                diff_summary=diff.summary(),
                changed=not diff.is_empty or self.data.get("changed", False),
            )
        except Exception as exc:
            # A diff is information, not a gate: a deploy goes on without it.
            self.data["diff_error"] = f"{type(exc).__name__}: {exc}"
            if required:
                raise NixOpError(f"closure diff failed: {exc}") from None

    async def activate(self, path: str) -> CommandResult:
        unit = system.activation_unit_name() if await self.uses_systemd() else None
        if unit is not None:
            self.data["activation_unit"] = unit
        await self.ctx.progress(
            f"switch-to-configuration {self.action}" + (f" (unit {unit})" if unit else "")
        )
        res = await system.switch_to_configuration(
            self.runner,
            path,
            self.action,
            env=self.env,
            timeout=self.opts.activate_timeout,
            unit=unit,
        )
        self.data["activation_rc"] = None if res.timed_out else res.rc
        return res

    async def activate_and_guard(
        self, gens: list[Generation], before: Generation | None, new_path: str
    ) -> ExecResult:
        ctx = self.ctx
        new_gen: Generation | None = None
        keep_profile = before is not None and before.path == new_path
        if keep_profile:
            # The profile already holds this system (a `boot` or `test` ran it
            # before): activate it, and leave the generation alone.
            assert before is not None
            self.data["generation"] = before.number
        elif self.action in ("switch", "boot"):
            await system.check_nixos_toplevel(self.runner, new_path)
            await system.set_profile(self.runner, ctx.profile, new_path)
            new_gen = await system.current_generation(self.runner, ctx.profile)
            if new_gen is not None:
                self.data["generation"] = new_gen.number
                await system.record_deployment(
                    self.runner,
                    system.record_file(ctx.profile, ctx.state_dir),
                    system.Deployment(
                        time.time(),
                        new_gen.number,
                        new_path,
                        self.request.revision,
                        self.action,
                    ),
                )
        elif before is not None:
            self.data["generation"] = before.number
        before = self.back_to

        timeout = self.opts.confirm_timeout
        if timeout > 0 and self.action in ("switch", "test"):
            # Armed before activating: a host cut off from here on (the
            # controller killed, the link or the listener gone) rolls back by
            # itself unless someone confirms.
            await self.arm_watchdog(before, new_gen, timeout)

        await ctx.checkpoint(
            {
                "phase": "activating",
                "action": self.action,
                "path": new_path,
                "canary": self.canary,
                "request_id": self.request_id if self.canary else self.request.id,
                "confirm_timeout": timeout if self.canary else 0,
                "generation": self.data.get("generation"),
                "old_generation": before.number if before else None,
                "old_path": before.path if before else None,
            }
        )
        res = await self.activate(new_path)
        units_failed = (
            res.rc == system.EXIT_UNITS_FAILED
            and not res.timed_out
            and self.action in ("switch", "test")
        )
        if units_failed:
            # The new system is active; some of its units are not. The health
            # gate decides; without one, this is a failed deploy (deploy-rs).
            names = system.failed_units(res)
            self.data.update(units_failed=True, failed_units=names)
            await ctx.progress(
                "switch-to-configuration: some units failed"
                + (f" ({', '.join(names)})" if names else "")
            )
            if not self.opts.health:
                back = await self.roll_back(before, new_gen)
                return self.fail(
                    ErrorCode.ACTIVATION_FAILED,
                    f"{_failed(self.action, res)}; units failed"
                    + (f": {', '.join(names)}" if names else "")
                    + f" and no health check vouches for the new system; {back.message}",
                )
        elif res.timed_out and self.canary is not None:
            # It runs on (in its unit, or detached): rolling back now would
            # interleave two activations. The watchdog armed before it decides.
            self.data["activation_running"] = True
            return self.fail(
                ErrorCode.TIMEOUT,
                f"switch-to-configuration {self.action} did not finish within "
                f"{self.opts.activate_timeout:g}s and runs on; without a confirmation the "
                "host's watchdog rolls it back"
                + (f" to generation {before.number}" if before else ""),
            )
        elif res.rc != 0:
            back = await self.roll_back(before, new_gen)
            return self.fail(
                ErrorCode.ACTIVATION_FAILED,
                f"{_failed(self.action, res)}; {back.message}",
            )
        if self.action == "boot":
            await _prune(ctx, self.data)
            return ExecResult(
                True, None, f"generation {self.data.get('generation')} set for next boot", self.data
            )

        if self.opts.health:
            await ctx.progress(f"running {len(self.opts.health)} health check(s)")
            units_dir = ctx.options.get("units_dir")
            report = await health.run_checks(
                self.runner, self.opts.health, units_dir=str(units_dir) if units_dir else None
            )
            self.data["health"] = report.to_list()
            if not report.ok:
                back = await self.roll_back(before, new_gen)
                return self.fail(
                    ErrorCode.HEALTH_FAILED,
                    f"health check failed: {report.summary()}; {back.message}",
                )

        if self.canary is not None:
            return await self.await_confirmation(timeout)
        if self.action == "switch":
            await _prune(ctx, self.data)
        return ExecResult(True, None, self.success_message(), self.data)

    def success_message(self) -> str:
        gen = self.data.get("generation")
        if self.action == "test":
            text = f"activated {self.data['path']} (test: the profile is unchanged)"
        else:
            text = f"switched to generation {gen}"
        if self.data.get("units_failed"):
            names = self.data.get("failed_units") or []
            text += " (some units failed" + (f": {', '.join(names)}" if names else "")
            text += "; the health checks passed)"
        return text

    async def await_confirmation(self, timeout: float) -> ExecResult:
        """Open the confirmation window and hand the host over to the controller."""
        assert self.canary is not None
        if not await system.open_window(self.runner, self.canary, timeout):
            # The watchdog's first deadline passed during a long activation.
            claim = await system.claim_canary(self.runner, self.canary)
            self.data["rolled_back"] = "rollback: ok" in claim.message
            return self.fail(ErrorCode.CONFIRM_TIMEOUT, claim.message or "the watchdog acted")
        self.data.update(
            awaiting_confirm=True,
            canary=self.canary,
            request_id=self.request_id,
            confirm_timeout=timeout,
            confirm_deadline=time.time() + timeout,
        )
        await self.ctx.progress(
            f"awaiting confirmation of {self.request_id} within {timeout:g}s"
        )
        return ExecResult(
            True,
            None,
            f"{self.success_message()}; awaiting confirmation within {timeout:g}s",
            self.data,
        )

    @property
    def request_id(self) -> str:
        if self._request_id is None:
            # a canary needs a name: one per request, so reruns never share one
            self._request_id = self.request.id or uuid.uuid4().hex
        return self._request_id

    async def arm_watchdog(
        self, before: Generation | None, new_gen: Generation | None, timeout: float
    ) -> None:
        """The host rolls back by itself unless the canary is confirmed in time."""
        canary = system.canary_path(self.ctx.profile, self.ctx.state_dir, self.request_id)
        allowance = self.opts.activate_timeout + (HEALTH_ALLOWANCE if self.opts.health else 0)
        await system.arm_watchdog(
            self.runner,
            canary=canary,
            profile=self.ctx.profile,
            timeout=timeout,
            old=before,
            new=new_gen,
            action=self.action,
            env=self.env,
            systemd=await self.uses_systemd(),
            before=allowance,
        )
        self.canary = canary
        self.data["canary"] = canary

    async def roll_back(
        self, before: Generation | None, new_gen: Generation | None
    ) -> RollbackOutcome:
        if self.canary is not None:
            # Stand the watchdog down first: one rollback, never two at once.
            claim = await system.claim_canary(self.runner, self.canary)
            self.canary = None
            if not claim.claimed and claim.message.startswith("the host had already acted"):
                ok = "rollback: ok" in claim.message
                self.data["rolled_back"] = ok
                return RollbackOutcome(
                    ok, before.number if before else None, None, claim.message
                )
        await self.ctx.progress(
            "rolling back" + (f" to generation {before.number}" if before else "")
        )
        out = await system.roll_back(
            self.runner,
            self.ctx.profile,
            to=before,
            failed=new_gen.number if new_gen else None,
            action=self.action,
            env=self.env,
            timeout=self.opts.activate_timeout,
            systemd=await self.uses_systemd(),
        )
        self.data["rolled_back"] = out.ok
        self.data["rollback"] = out.to_dict()
        if out.ok and before is not None:
            self.data["generation"] = before.number
        return out


def _failed(action: str, res: CommandResult) -> str:
    return system.tail_message(f"switch-to-configuration {action}", res)


def _empty_closure() -> Any:
    from hlplay.nix.closure import Closure

    return Closure(root="", sizes={}, root_references=frozenset())


async def _prune(ctx: ExecContext, data: dict[str, Any]) -> dict[str, Any]:
    """Delete generations beyond the host's ``keep_generations`` into ``data``.

    Housekeeping, never a gate: a deploy whose pruning failed still succeeded
    (``prune_error`` says why). The booted and the running system are kept
    whatever their age.
    """
    try:
        keep = ctx.options.get("keep_generations", system.DEFAULT_KEEP_GENERATIONS)
        protect = []
        for option, default in (
            ("booted_system", system.BOOTED_SYSTEM),
            ("current_system", system.CURRENT_SYSTEM),
        ):
            where = ctx.options.get(option, default)
            if not isinstance(where, str) or not where:
                raise NixOpError(f"{option} must be a path")
            found = await system.resolve_existing(ctx.runner, where)
            if found is not None:
                protect.append(found)
        data["pruned"] = await system.prune_generations(
            ctx.runner, ctx.profile, keep, protect=protect
        )
    except Exception as exc:
        data["prune_error"] = exc.message if isinstance(exc, NixOpError) else f"{exc}"
    return data
