"""``nixos_rebuild``: build, diff and activate NixOS systems, with rollback.

::

    - name: deploy
      nixos_rebuild:
        action: switch            # switch | boot | test | dry-activate | build
        revision: main            # default: the flake's HEAD, resolved to a commit
        confirm_timeout: 30       # magic rollback; 0 disables
        health:
          - unit_active: nginx.service
          - http: http://127.0.0.1/health
          - tcp: "{{ inventory_hostname }}:22"
            from: controller      # checked from here before confirming

A batch module: one deploy request per transport reaches every host of the
step at once (one NATS publish for a whole tier). A host whose new closure
equals the running one is ``ok`` and is not activated. A failed activation or
health check rolls the host back and fails the task with both stories. Under
``--check`` the hosts build and diff (action ``diff``), the diff becomes the
task's diff (shown with ``--diff``), and nothing is activated.

Hosts with ``transport: local`` deploy in-process (see :mod:`hlplay.transports.local`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from hlplay.modules.base import Arg, Module, ModuleResult, TaskContext
from hlplay.nix import health
from hlplay.transports.base import DeployOutcome, NotSupported, Transport, Unreachable

ACTIONS = ("switch", "boot", "test", "dry-activate", "build")
# Actions after which the host runs the new system and can be cut off by it.
CONFIRMED_ACTIONS = ("switch", "test")
RESULT_KEYS = (
    "old_generation",
    "generation",
    "revision",
    "path",
    "old_path",
    "diff_summary",
    "rollback",
    "rolled_back",
    "health",
    "confirmed",
    "build_seconds",
    "duration",
    "transport",
    "error_detail",
)


class NixosRebuild(Module):
    name = "nixos_rebuild"
    summary = "Build, diff and activate NixOS systems; health gate and magic rollback."
    supports_check = True
    batch = True
    args: ClassVar[dict[str, Arg]] = {
        "action": Arg("str", default="switch", choices=ACTIONS),
        "revision": Arg("str", help="branch, tag or commit (default: HEAD of the flake)"),
        "flake": Arg("str", help="configuration flake (default: the inventory's nix.flake)"),
        "health": Arg("list", default=[], help="checks after activation (see docs/nix.md)"),
        "confirm_timeout": Arg("float", default=30.0, help="seconds; 0 disables magic rollback"),
        "diff": Arg("bool", default=True, help="include the closure diff in the result"),
        "timeout": Arg("float", help="seconds to wait for each host (default: transport's)"),
    }

    async def run(self, ctx: TaskContext, args: dict[str, Any]) -> ModuleResult:
        results = await self.run_batch([ctx], {ctx.host.name: args})
        return results[ctx.host.name]

    async def run_batch(
        self, ctxs: Sequence[TaskContext], args: Mapping[str, dict[str, Any]]
    ) -> dict[str, ModuleResult]:
        results: dict[str, ModuleResult] = {}
        groups: dict[tuple[Any, ...], list[TaskContext]] = {}
        requests: dict[tuple[Any, ...], dict[str, Any]] = {}
        checks: dict[str, list[health.HealthCheck]] = {}
        for ctx in ctxs:
            name = ctx.host.name
            try:
                request, controller_checks = await self._request(ctx, args[name])
            except (ValueError, health.HealthSpecError) as exc:
                results[name] = ModuleResult(failed=True, msg=str(exc))
                continue
            checks[name] = controller_checks
            # Hosts share a request (and a NATS publish) when all of it matches.
            key = (_deployer_key(ctx), repr(sorted(request.items())))
            groups.setdefault(key, []).append(ctx)
            requests[key] = request
        outcomes = await asyncio.gather(
            *(self._deploy_group(group, requests[key], checks) for key, group in groups.items())
        )
        for part in outcomes:
            results.update(part)
        return {c.host.name: results[c.host.name] for c in ctxs}

    # -- building the request ------------------------------------------------------

    async def _request(
        self, ctx: TaskContext, args: Mapping[str, Any]
    ) -> tuple[dict[str, Any], list[health.HealthCheck]]:
        from hlplay.protocol.messages import ProtocolError, validate_revision

        action = str(args.get("action") or "switch")
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
        checks = health.parse_checks(args.get("health") or [])
        revision = args.get("revision")
        if revision is None:
            revision = await _head_revision(ctx, str(args.get("flake") or _flake_of(ctx)))
        try:
            validate_revision(str(revision))
        except ProtocolError as exc:
            raise ValueError(f"revision {revision!r}: {exc.message}") from None
        raw_confirm = args.get("confirm_timeout")
        confirm = float(30 if raw_confirm is None else raw_confirm)
        # not-a-number and infinity ("1e309") compare false or pass "< 0";
        # 3600 is the most the listener accepts (MAX_CONFIRM_TIMEOUT)
        if not 0 <= confirm <= 3600:
            raise ValueError(f"confirm_timeout must be from 0 to 3600 seconds, got {raw_confirm!r}")
        options: dict[str, Any] = {"diff": bool(args.get("diff", True))}
        if ctx.check_mode:
            action = "diff"
        elif action in CONFIRMED_ACTIONS:
            options["confirm_timeout"] = confirm
            host_checks = [c.to_spec() for c in checks if c.side == "host"]
            if host_checks:
                options["health"] = host_checks
        request: dict[str, Any] = {"action": action, "revision": str(revision), "options": options}
        if args.get("flake") and ctx.host.transport == "local":
            request["flake"] = str(args["flake"])
        if args.get("timeout") is not None:
            request["timeout"] = float(args["timeout"])
        controller_checks = [c for c in checks if c.side == "controller"]
        if controller_checks and confirm == 0:
            raise ValueError(
                "health checks 'from: controller' need confirm_timeout > 0: the host"
                " keeps the new system only when they pass"
            )
        if ctx.check_mode or action not in CONFIRMED_ACTIONS:
            controller_checks = []
        return request, controller_checks

    # -- one transport's hosts -----------------------------------------------------

    async def _deploy_group(
        self,
        group: Sequence[TaskContext],
        request: dict[str, Any],
        checks: Mapping[str, list[health.HealthCheck]],
    ) -> dict[str, ModuleResult]:
        first = group[0]
        hosts = {c.host.name: c.host for c in group}
        deployer = _deployer(first, request.pop("flake", None))
        timeout = request.pop("timeout", None)
        if timeout is None:
            timeout = first.timeout
        request_id = uuid.uuid4().hex
        request["id"] = request_id
        settling: dict[str, asyncio.Task[_Settled]] = {}

        def settle(name: str) -> None:
            if name in hosts and name not in settling:
                settling[name] = asyncio.create_task(
                    _settle(deployer, hosts[name], request_id, checks.get(name) or [])
                )

        def awaiting(outcome: DeployOutcome) -> None:
            # Confirm each host as soon as it waits, not when the slowest host
            # of the group is done: its window runs from now.
            settle(outcome.host)

        try:
            outcomes = await deployer.deploy(
                list(hosts.values()), request, timeout=timeout, awaiting=awaiting
            )
        except NotSupported as exc:
            outcomes = {h: DeployOutcome(h, "failed", "not_supported", str(exc)) for h in hosts}
        except Unreachable as exc:
            outcomes = {h: DeployOutcome(h, "unreachable", None, str(exc)) for h in hosts}
        for name in hosts:
            if name not in outcomes:
                outcomes[name] = DeployOutcome(name, "failed", "internal", "no outcome")
            elif outcomes[name].awaiting:
                settle(name)  # a transport that did not call back
        if settling:
            done = await asyncio.gather(*settling.values())
            for name, settled in zip(settling, done, strict=True):
                _apply(outcomes[name], settled)
        return {
            name: _result(outcomes[name], request["action"], first.check_mode) for name in hosts
        }


@dataclass
class _Settled:
    """What the controller did about one host waiting for confirmation."""

    report: health.HealthReport | None
    confirmed: bool
    answer: DeployOutcome | None = None  # the transport's answer
    note: str = ""


async def _settle(
    deployer: Transport, host: Any, request_id: str, checks: list[health.HealthCheck]
) -> _Settled:
    """Controller-side checks, then confirm (or reject) one waiting host."""
    from hlplay.proc import run_argv

    async def here(argv: Any, timeout: float | None) -> Any:
        return await run_argv(argv, timeout=timeout)

    report = None
    what = "confirm"
    try:
        if checks:
            report = await health.run_checks(here, checks)
            if not report.ok:
                what = "reject"
                answers = await deployer.reject([host], request_id)
                return _Settled(report, False, answers.get(host.name), "confirmation withheld")
        answers = await deployer.confirm([host], request_id)
    except (NotSupported, Unreachable) as exc:
        note = f"{what} not delivered: {exc}"
        return _Settled(report, False, None, note)
    answer = answers.get(host.name)
    ok = answer is not None and answer.ok
    return _Settled(report, ok, answer, "" if ok else "confirmation not delivered")


def _apply(out: DeployOutcome, settled: _Settled) -> None:
    """Fold the controller's part (checks, confirmation) into a host's outcome."""
    if settled.report is not None:
        out.data.setdefault("health", []).extend(settled.report.to_list())
    answer = settled.answer
    if answer is not None:
        out.data.update({k: v for k, v in answer.data.items() if k in RESULT_KEYS})
    if settled.report is not None and not settled.report.ok:
        story = answer.message if answer is not None else (
            "confirmation withheld: the host rolls back by itself"
        )
        out.status, out.error = "failed", "health_failed"
        out.message = f"health check failed on the controller: {settled.report.summary()}; {story}"
        return
    if settled.confirmed:
        out.data["confirmed"] = True
        out.data.pop("awaiting_confirm", None)
        out.message = f"{out.message.split('; awaiting')[0]}; confirmed"
        out.status = "completed"
        return
    out.status = "failed"
    if answer is not None:
        out.error = answer.error or "confirm_timeout"
        out.message = answer.message
    else:
        out.error = "confirm_timeout"
        out.message = f"{settled.note}: the host rolls back by itself"


def _result(outcome: DeployOutcome, action: str, check_mode: bool) -> ModuleResult:
    data = {k: outcome.data[k] for k in RESULT_KEYS if k in outcome.data}
    if outcome.error:
        data["error"] = outcome.error
    diff = outcome.data.get("diff_text")
    if outcome.status == "unreachable":
        return ModuleResult(unreachable=True, msg=outcome.message or "unreachable", data=data)
    if not outcome.ok:
        msg = outcome.message or outcome.status
        if outcome.error and not msg.startswith(outcome.error):
            msg = f"{outcome.error}: {msg}"
        return ModuleResult(failed=True, msg=msg, diff=diff, data=data)
    # A build or dry activation leaves the running system as it was.
    changed = bool(outcome.data.get("changed", True)) and action not in ("build", "dry-activate")
    summary = outcome.data.get("diff_summary")
    msg = outcome.message
    if summary and summary not in msg:
        msg = f"{msg} ({summary})"
    # an unchanged host has no diff to show, as with Ansible's --diff
    show = diff if changed else None
    return ModuleResult(changed=changed, msg=msg, diff=show, data=data)


def _deployer_key(ctx: TaskContext) -> Any:
    if ctx.exec_host.transport == "local":
        return ("local", id(ctx.inventory))
    return ("transport", id(ctx.transport))


def _deployer(ctx: TaskContext, flake: str | None) -> Transport:
    if ctx.exec_host.transport == "local":
        from hlplay.transports.local import LocalTransport

        # the module's ``flake`` overrides the hosts' own, for this task only
        return LocalTransport(ctx.inventory, flake=flake)
    return ctx.transport


def _flake_of(ctx: TaskContext) -> str:
    from hlplay.inventory.hostsettings import host_settings

    return host_settings(ctx.inventory, ctx.exec_host).flake


async def _head_revision(ctx: TaskContext, flake: str) -> str:
    """The flake repository's HEAD as a commit id, resolved once per run and flake."""
    from hlplay import gitrepo
    from hlplay.nix.flakeref import local_repo

    repo = local_repo(flake)
    if repo is None:
        return "HEAD"
    cache: dict[str, str] = ctx.run_state.setdefault("nixos_rebuild.head", {})
    if repo not in cache:
        try:
            cache[repo] = await gitrepo.resolve(repo)
        except gitrepo.GitError as exc:
            raise ValueError(f"cannot resolve the revision to deploy: {exc}") from None
    return cache[repo]
