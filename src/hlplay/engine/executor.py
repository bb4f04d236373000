"""Running one task on hosts: conditions, loops, retries, delegation, results.

Whatever goes wrong for one host — an undefined variable, a module that
raises, a transport that cannot reach it — becomes that host's result; it
never stops the other hosts or the run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hlplay.engine.events import HostResult, ItemResult, RetryAttempt, TaskInfo, TaskStarted
from hlplay.engine.results import Status
from hlplay.engine.scope import controller_host
from hlplay.errors import HlplayError
from hlplay.inventory.model import Host
from hlplay.modules.base import ArgError, Module, ModuleResult, TaskContext
from hlplay.playbook import validation
from hlplay.playbook.model import Task
from hlplay.playbook.templating import TemplateFailure, Vars
from hlplay.transports.base import NotSupported, Transport, Unreachable

if TYPE_CHECKING:
    from hlplay.engine.services import RunServices
    from hlplay.engine.state import HostState, PlayContext

CENSORED = "the output has been hidden due to the fact that 'no_log: true' was specified"


@dataclass
class Outcome:
    """A task's result on one host, before it is recorded."""

    result: ModuleResult
    delegated_to: str | None = None
    is_loop: bool = False
    rendered_name: str | None = None
    ignore_errors: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _failed(msg: str, **data: Any) -> ModuleResult:
    return ModuleResult(failed=True, msg=msg, data=dict(data))


def _skipped(reason: str, **data: Any) -> ModuleResult:
    return ModuleResult(skipped=True, data={"skip_reason": reason, **data})


def status_of(res: ModuleResult, ignore_errors: bool, rescuable: bool) -> Status:
    if res.unreachable:
        return "unreachable"
    if res.failed:
        if ignore_errors:
            return "ignored"
        return "rescued" if rescuable else "failed"
    if res.skipped:
        return "skipped"
    return "changed" if res.changed else "ok"


def result_dict(res: ModuleResult, task: Task) -> dict[str, Any]:
    out = res.to_dict()
    if res.skipped and "msg" in out and not out["msg"]:
        del out["msg"]
    return out


def censor(result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"censored": CENSORED, "changed": bool(result.get("changed"))}
    for key in ("failed", "skipped", "unreachable", "attempts"):
        if key in result:
            out[key] = result[key]
    return out


def _number(value: Any, what: str) -> float:
    try:
        n = float(value)
    except (TypeError, ValueError):
        raise TemplateFailure(f"'{what}' must be a number, got {value!r}") from None
    if n < 0:
        raise TemplateFailure(f"'{what}' must not be negative, got {value!r}")
    return n


class TaskExecutor:
    """Runs tasks for the run's :class:`~hlplay.engine.services.RunServices` (the Runner)."""

    def __init__(self, runner: RunServices) -> None:
        self.runner = runner
        self.templar = runner.templar
        self.bus = runner.bus
        self._instances: dict[type[Module], Module] = {}
        self._localhost = controller_host()

    # --- helpers ------------------------------------------------------------------

    def module(self, cls: type[Module]) -> Module:
        inst = self._instances.get(cls)
        if inst is None:
            inst = self._instances[cls] = cls()
        return inst

    def task_info(self, pc: PlayContext, task: Task) -> TaskInfo:
        return self.runner.task_info(pc, task)

    def announce(self, pc: PlayContext, task: Task) -> TaskInfo:
        info = self.task_info(pc, task)
        if task.id not in pc.started_tasks:
            pc.started_tasks.add(task.id)
            self.bus.emit(TaskStarted(info))
        return info

    def check_mode(self, pc: PlayContext, task: Task) -> bool:
        return task.check_mode if task.check_mode is not None else pc.check_mode

    def diff_mode(self, pc: PlayContext, task: Task) -> bool:
        return task.diff if task.diff is not None else pc.diff_mode

    def _delegate(self, task: Task, variables: Vars) -> Host | None:
        if not task.delegate_to:
            return None
        name = str(self.templar.render(task.delegate_to, variables)).strip()
        inventory = self.runner.inventory
        if name in inventory.hosts:
            return inventory.hosts[name]
        if name in ("localhost", "127.0.0.1", "::1"):
            return self._localhost
        raise TemplateFailure(f"delegate_to: unknown host '{name}'")

    def _transport(self, cls: type[Module], exec_host: Host) -> Transport:
        pool = self.runner.pool
        return pool.local() if cls.controller_side else pool.for_host(exec_host)

    def _ignore_errors(self, task: Task, variables: Vars) -> bool:
        value = task.ignore_errors
        if isinstance(value, bool):
            return value
        try:
            return self.templar.condition(value, variables)
        except TemplateFailure:
            return False

    # --- one step of a task over hosts -----------------------------------------------

    async def run_task(
        self, pc: PlayContext, task: Task, hosts: Sequence[HostState], rescuable: bool
    ) -> None:
        """Run ``task`` on every host in ``hosts`` (a linear step, or one host of ``free``)."""
        assert task.module is not None
        if task.run_once:
            await self._run_once(pc, task, hosts, rescuable)
            return
        self.announce(pc, task)
        if task.module.batch and task.loop is None and not task.until:
            await self._run_batch(pc, task, hosts, rescuable)
            return
        if len(hosts) == 1:
            await self.run_host(pc, task, hosts[0], rescuable)
            return
        await asyncio.gather(*(self.run_host(pc, task, hs, rescuable) for hs in hosts))

    async def _run_once(
        self, pc: PlayContext, task: Task, hosts: Sequence[HostState], rescuable: bool
    ) -> None:
        """Run on the first host only; every host gets its registered result and facts."""
        fut = pc.run_once.get(task.id)
        if fut is None:
            fut = pc.run_once[task.id] = asyncio.get_running_loop().create_future()
            self.announce(pc, task)
            first = hosts[0]
            try:
                outcome = await self.run_host(pc, task, first, rescuable)
            except BaseException:
                fut.cancel()  # hosts waiting for this result stop with it
                raise
            fut.set_result(outcome)
            others = [h for h in hosts if h is not first and h.active]
        else:
            outcome = await fut
            others = [h for h in hosts if h.active]
        if outcome is None:
            return
        reg = result_dict(outcome.result, task)
        facts = outcome.result.data.get("ansible_facts")
        for hs in others:
            if task.register:
                hs.facts[task.register] = reg
            if isinstance(facts, Mapping) and not outcome.result.failed:
                hs.facts.update(facts)

    async def run_host(
        self, pc: PlayContext, task: Task, hs: HostState, rescuable: bool
    ) -> Outcome | None:
        """Run ``task`` for one host, within the fork and throttle limits, and record it."""
        runner = self.runner
        throttle = pc.throttle(task.id, task.throttle) if task.throttle else None
        if throttle is not None:
            await throttle.acquire()
        try:
            async with runner.forks:
                if runner.stopping or pc.stopped:
                    return None
                start = time.monotonic()
                try:
                    outcome = await self._host_task(pc, task, hs, rescuable)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # one host's trouble stays its own
                    outcome = Outcome(_failed(f"internal error: {type(exc).__name__}: {exc}"))
        finally:
            if throttle is not None:
                throttle.release()
        self.record(pc, task, hs, outcome, rescuable, time.monotonic() - start)
        return outcome

    # --- the work for one host ---------------------------------------------------------

    async def _host_task(
        self, pc: PlayContext, task: Task, hs: HostState, rescuable: bool
    ) -> Outcome:
        variables = self.runner.scope.vars_for(hs, task)
        delegated: str | None = None
        try:
            if task.delegate_to:
                target = self._delegate(task, variables)
                delegated = target.name if target is not None else None
            if task.loop is not None:
                return await self._loop(pc, task, hs, variables, rescuable, delegated)
            if task.when and not self.templar.conditions(task.when, variables):
                return Outcome(_skipped("Conditional result was False"), delegated)
            res = await self._attempts(pc, task, hs, variables)
            return Outcome(res, delegated, ignore_errors=self._ignore_errors(task, variables))
        except TemplateFailure as exc:
            return Outcome(_failed(exc.message), delegated)

    async def _attempts(
        self, pc: PlayContext, task: Task, hs: HostState, variables: Vars
    ) -> ModuleResult:
        """Run the module, then until/retries: retried until the condition holds."""
        max_attempts = 1
        delay = 0.0
        if task.until:
            retries_raw = self.templar.render(task.retries, variables)
            retries = int(_number(retries_raw, "retries")) if retries_raw is not None else 3
            max_attempts = retries + 1 if retries > 0 else 1
            delay = _number(self.templar.render(task.delay, variables), "delay")
        attempt = 0
        while True:
            attempt += 1
            res = await self.execute(pc, task, hs, variables)
            if res.unreachable or res.skipped:
                return res
            try:
                scoped = variables
                if task.register:
                    scoped = variables.child({task.register: result_dict(res, task)})
                self._apply_conditions(task, res, scoped)
                if not task.until:
                    return res
                res.data["attempts"] = attempt
                if task.register:
                    scoped = variables.child({task.register: result_dict(res, task)})
                if self.templar.conditions(task.until, scoped):
                    return res
            except TemplateFailure as exc:
                res.failed = True
                res.msg = exc.message
                return res
            if attempt >= max_attempts:
                res.failed = True
                if not res.msg:
                    res.msg = f"the until condition was still false after {attempt} attempts"
                return res
            info = self.task_info(pc, task)
            self.bus.emit(
                RetryAttempt(hs.name, info, attempt, max_attempts - attempt, result_dict(res, task))
            )
            if not self.runner.stopping:
                if delay:
                    await self.runner.sleep(delay)
                else:
                    await self.runner.checkpoint()
            if self.runner.stopping:
                res.failed = True
                res.msg = "interrupted while retrying"
                return res

    def _apply_conditions(self, task: Task, res: ModuleResult, variables: Vars) -> None:
        if task.changed_when is not None:
            res.changed = self.templar.conditions(task.changed_when, variables)
        if task.failed_when is not None:
            failed = self.templar.conditions(task.failed_when, variables)
            res.data["failed_when_result"] = failed
            if failed and not res.failed and not res.msg:
                res.msg = "failed_when condition was true"
            res.failed = failed

    async def execute(
        self, pc: PlayContext, task: Task, hs: HostState, variables: Vars
    ) -> ModuleResult:
        """One module run for one host: arguments, delegation, transport, timeout."""
        cls = task.module
        assert cls is not None
        check_mode = self.check_mode(pc, task)
        if check_mode and not cls.supports_check:
            reason = f"the {cls.name} module does not support check mode"
            res = _skipped(reason)
            res.msg = reason
            return res
        try:
            rendered = self.templar.render(task.args, variables)
            args = validation.finalize(cls, rendered)
            target = self._delegate(task, variables)
            transport = self._transport(cls, target or hs.host)
            timeout = task.timeout
            if timeout is not None:
                timeout = _number(self.templar.render(timeout, variables), "timeout")
        except TemplateFailure as exc:
            return _failed(exc.message)
        except ArgError as exc:
            return _failed(str(exc))
        except HlplayError as exc:
            return _failed(str(exc))
        ctx = TaskContext(
            host=hs.host,
            inventory=self.runner.inventory,
            vars=variables,
            transport=transport,
            check_mode=check_mode,
            diff_mode=self.diff_mode(pc, task),
            timeout=timeout,
            target=target,
            run_state=self.runner.run_state,
        )
        res = await self._guarded(cls, self.module(cls).run(ctx, args), timeout)
        if isinstance(res, ModuleResult):
            return res
        return _failed(f"module '{cls.name}' returned {type(res).__name__}, not a ModuleResult")

    async def _guarded(self, cls: type[Module], coro: Any, timeout: float | None) -> Any:
        try:
            if timeout:
                res = await asyncio.wait_for(coro, timeout)
            else:
                res = await coro
        except TimeoutError:
            return _failed(f"the task timed out after {timeout:g}s")
        except Unreachable as exc:
            return ModuleResult(unreachable=True, msg=str(exc) or "host unreachable")
        except NotSupported as exc:
            return _failed(str(exc) or "not supported by this host's transport")
        except TemplateFailure as exc:
            return _failed(exc.message)
        except (HlplayError, ArgError) as exc:
            return _failed(str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken module fails its task, not the run
            return _failed(f"module '{cls.name}' failed unexpectedly: {type(exc).__name__}: {exc}")
        return res

    # --- loops -----------------------------------------------------------------------------

    def _items(self, task: Task, variables: Vars) -> list[Any]:
        items = self.templar.render(task.loop, variables)
        if task.loop_kind == "dict":
            if not isinstance(items, Mapping):
                raise TemplateFailure(f"with_dict needs a mapping, got {type(items).__name__}")
            return [{"key": k, "value": v} for k, v in items.items()]
        if task.loop_kind == "items" and isinstance(items, list):
            flat: list[Any] = []
            for it in items:
                flat.extend(it if isinstance(it, list) else [it])
            return flat
        if not isinstance(items, list):
            raise TemplateFailure(
                f"'loop' needs a list, got {type(items).__name__}: {str(items)[:80]!r}"
            )
        return items

    async def _loop(
        self,
        pc: PlayContext,
        task: Task,
        hs: HostState,
        variables: Vars,
        rescuable: bool,
        delegated: str | None,
    ) -> Outcome:
        items = self._items(task, variables)
        lc = task.loop_control
        info = self.task_info(pc, task)
        if not items:
            return Outcome(_skipped("No items in the list", results=[]), delegated, is_loop=True)
        results: list[dict[str, Any]] = []
        any_changed = any_failed = any_unreachable = False
        all_skipped = True
        ignore = False
        diff_mode = self.diff_mode(pc, task)
        for index, item in enumerate(items):
            await self.runner.checkpoint()
            if self.runner.stopping:
                break
            layer: dict[str, Any] = {lc.loop_var: item}
            if lc.index_var:
                layer[lc.index_var] = index
            if lc.extended:
                layer["ansible_loop"] = {
                    "index": index + 1,
                    "index0": index,
                    "first": index == 0,
                    "last": index == len(items) - 1,
                    "length": len(items),
                    "revindex": len(items) - index,
                    "revindex0": len(items) - index - 1,
                    "allitems": items,
                    "previtem": items[index - 1] if index else None,
                    "nextitem": items[index + 1] if index + 1 < len(items) else None,
                }
            ivars = variables.child(layer)
            try:
                label = self.templar.render(lc.label, ivars) if lc.label is not None else item
                if task.when and not self.templar.conditions(task.when, ivars):
                    res = _skipped("Conditional result was False")
                else:
                    res = await self._attempts(pc, task, hs, ivars)
                item_ignore = self._ignore_errors(task, ivars)
            except TemplateFailure as exc:
                label, res, item_ignore = item, _failed(exc.message), False
            ignore = ignore or item_ignore
            rd = result_dict(res, task)
            rd[lc.loop_var] = item
            rd["ansible_loop_var"] = lc.loop_var
            if lc.index_var:
                rd[lc.index_var] = index
                rd["ansible_index_var"] = lc.index_var
            results.append(rd)
            any_changed = any_changed or (res.changed and not res.failed)
            any_failed = any_failed or res.failed
            any_unreachable = any_unreachable or res.unreachable
            all_skipped = all_skipped and res.skipped
            shown = censor(rd) if task.no_log else rd
            self.bus.emit(
                ItemResult(
                    hs.name,
                    info,
                    status_of(res, item_ignore, rescuable),
                    _label(label),
                    shown,
                    delegated,
                    diff_mode,
                )
            )
            if res.unreachable:
                break
            if lc.pause and index + 1 < len(items):
                await self.runner.sleep(lc.pause)
        agg = ModuleResult(
            changed=any_changed,
            failed=any_failed,
            unreachable=any_unreachable,
            skipped=all_skipped and bool(results) and not any_failed,
            msg=(
                "One or more items failed"
                if any_failed
                else ("" if all_skipped else "All items completed")
            ),
            data={"results": results},
        )
        if agg.skipped:
            agg.data["skipped_reason"] = "All items skipped"
        return Outcome(agg, delegated, is_loop=True, ignore_errors=ignore)

    # --- batch modules ------------------------------------------------------------------

    async def _run_batch(
        self, pc: PlayContext, task: Task, hosts: Sequence[HostState], rescuable: bool
    ) -> None:
        """One ``run_batch`` call with every host of the step that is not skipped."""
        cls = task.module
        assert cls is not None
        runner = self.runner
        start = time.monotonic()
        ctxs: list[TaskContext] = []
        args_by_host: dict[str, dict[str, Any]] = {}
        pending: dict[str, tuple[HostState, Vars, str | None]] = {}
        check_mode = self.check_mode(pc, task)
        for hs in hosts:
            if runner.stopping or pc.stopped:
                return
            variables = runner.scope.vars_for(hs, task)
            delegated: str | None = None
            try:
                target = self._delegate(task, variables)
                delegated = target.name if target is not None else None
                if task.when and not self.templar.conditions(task.when, variables):
                    self.record(
                        pc,
                        task,
                        hs,
                        Outcome(_skipped("Conditional result was False"), delegated),
                        rescuable,
                        0.0,
                    )
                    continue
                if check_mode and not cls.supports_check:
                    reason = f"the {cls.name} module does not support check mode"
                    self.record(pc, task, hs, Outcome(_skipped(reason), delegated), rescuable, 0.0)
                    continue
                args = validation.finalize(cls, self.templar.render(task.args, variables))
                transport = self._transport(cls, target or hs.host)
                timeout = task.timeout
                if timeout is not None:
                    timeout = _number(self.templar.render(timeout, variables), "timeout")
            except (TemplateFailure, ArgError, HlplayError) as exc:
                msg = exc.message if isinstance(exc, HlplayError) else str(exc)
                self.record(pc, task, hs, Outcome(_failed(msg), delegated), rescuable, 0.0)
                continue
            ctxs.append(
                TaskContext(
                    host=hs.host,
                    inventory=runner.inventory,
                    vars=variables,
                    transport=transport,
                    check_mode=check_mode,
                    diff_mode=self.diff_mode(pc, task),
                    timeout=timeout,
                    target=target,
                    run_state=runner.run_state,
                )
            )
            args_by_host[hs.name] = args
            pending[hs.name] = (hs, variables, delegated)
        if not ctxs:
            return
        timeout = ctxs[0].timeout
        async with runner.forks:
            got = await self._guarded(cls, self.module(cls).run_batch(ctxs, args_by_host), timeout)
        if not isinstance(got, (ModuleResult, dict)):
            got = _failed(f"module '{cls.name}' returned {type(got).__name__}, not results by host")
        duration = time.monotonic() - start
        for name, (hs, variables, delegated) in pending.items():
            if isinstance(got, ModuleResult):  # the whole batch failed
                res = ModuleResult(
                    failed=got.failed, unreachable=got.unreachable, msg=got.msg, data=dict(got.data)
                )
            else:
                found = got.get(name)
                res = (
                    found
                    if isinstance(found, ModuleResult)
                    else _failed(f"module '{cls.name}' returned no result for this host")
                )
            try:
                if task.register:
                    self._apply_conditions(
                        task, res, variables.child({task.register: result_dict(res, task)})
                    )
                else:
                    self._apply_conditions(task, res, variables)
            except TemplateFailure as exc:
                res.failed, res.msg = True, exc.message
            outcome = Outcome(res, delegated, ignore_errors=self._ignore_errors(task, variables))
            self.record(pc, task, hs, outcome, rescuable, duration)

    # --- recording ---------------------------------------------------------------------

    def record(
        self,
        pc: PlayContext,
        task: Task,
        hs: HostState,
        outcome: Outcome | None,
        rescuable: bool,
        duration: float,
    ) -> None:
        """Register, set facts, notify, update the host's state and the recap, emit."""
        if outcome is None:
            return
        runner = self.runner
        res = outcome.result
        status = status_of(res, outcome.ignore_errors, rescuable)
        if res.unreachable and task.ignore_unreachable:
            status = "ignored"
        rd = result_dict(res, task)
        if task.register:
            hs.facts[task.register] = rd
        facts = res.data.get("ansible_facts")
        if isinstance(facts, Mapping) and not res.failed and not res.skipped:
            hs.facts.update(facts)
        if status == "changed" and task.notify:
            self._notify(pc, task, hs)
        if status == "rescued":
            info = self.task_info(pc, task)
            hs.facts["ansible_failed_task"] = {
                "name": info.name,
                "action": task.action,
                "location": info.location,
            }
            hs.facts["ansible_failed_result"] = rd
        if status in ("failed", "rescued"):
            hs.failed = True
        elif status == "unreachable":
            hs.unreachable = True
        if status in ("failed", "unreachable"):
            pc.batch_failed.add(hs.name)
            pc.host_gone(hs.name)
            fatal = task.any_errors_fatal
            if fatal if fatal is not None else pc.play.any_errors_fatal:
                pc.fatal = True
        runner.stats_for(hs.name).record(status, res.changed)
        shown = censor(rd) if task.no_log else rd
        self.bus.emit(
            HostResult(
                host=hs.name,
                task=self.task_info(pc, task),
                status=status,
                result=shown,
                delegated_to=outcome.delegated_to,
                duration=duration,
                is_loop=outcome.is_loop,
                diff_mode=self.diff_mode(pc, task),
            )
        )

    def _notify(self, pc: PlayContext, task: Task, hs: HostState) -> None:
        for name in task.notify:
            if "{" in name:
                try:
                    name = str(self.templar.render(name, self.runner.scope.vars_for(hs, task)))
                except TemplateFailure:
                    continue
            for handler in pc.play.handlers_for(name):
                hs.notified.add(handler.id)


def _label(value: Any) -> str:
    if isinstance(value, str):
        return value
    import json

    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(value)
