"""Running a playbook: plays, serial batches, sections, blocks and handlers.

Semantics follow ansible-playbook: a failed or unreachable host leaves the
play (and later plays); ``block``/``rescue``/``always`` recover per host;
handlers run once per flush, in the order they are defined; a play stops for
every host when ``any_errors_fatal`` trips or ``max_fail_percentage`` is
exceeded, and the playbook stops with it (but for a play tagged ``always``
on localhost alone, which still runs: a final report); Ctrl-C stops dispatching new work,
lets running tasks end, and still reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hlplay.engine import strategies
from hlplay.engine.events import (
    BatchStarted,
    EventBus,
    Forged,
    NoHostsMatched,
    NoMoreHosts,
    PlaybookEnded,
    PlaybookStarted,
    PlayEnded,
    PlayStarted,
    TaskInfo,
    Warning_,
)
from hlplay.engine.executor import TaskExecutor
from hlplay.engine.results import HostStats, exit_code
from hlplay.engine.scope import PlayScope, controller_host
from hlplay.engine.state import HostState, PlayContext
from hlplay.errors import Location, PlaybookError, SelectionError
from hlplay.inventory.model import Host, Inventory
from hlplay.playbook.loader import parse_serial
from hlplay.playbook.model import Block, Item, Play, Playbook, Task
from hlplay.playbook.templating import (
    Templar,
    TemplateFailure,
    Vars,
    has_template,
    template_keys,
)
from hlplay.transports.factory import TransportPool
from hlplay.yamlsrc import load_yaml_file

LOCALHOST_NAMES = ("localhost", "127.0.0.1")
# How long work that never awaits (an until loop with no delay, a loop whose
# module does not await) may keep the event loop to itself: Ctrl-C and
# SIGTERM reach the run through the loop.
YIELD_EVERY = 0.05


@dataclass
class RunOptions:
    limit: str | None = None
    extra_vars: Mapping[str, Any] = field(default_factory=dict)
    forks: int = 50
    check: bool = False
    diff: bool = False
    tags: tuple[str, ...] = ()
    skip_tags: tuple[str, ...] = ()
    force_handlers: bool = False
    start_at_task: str | None = None
    verbosity: int = 0


@dataclass
class PreparedPlay:
    """A play with its hosts selected and its vars_files read, before anything runs."""

    play: Play
    hosts: list[Host]
    vars_files: list[dict[str, Any]]
    name: str
    serial: list[int | str] = field(default_factory=list)
    note: str = ""  # a warning to show when the play starts (e.g. a tier this fleet lacks)


def batch_sizes(serial: Sequence[int | str], total: int) -> list[int]:
    """Batch sizes for ``serial`` over ``total`` hosts; the last value repeats."""
    if total <= 0:
        return []
    if not serial:
        return [total]
    sizes: list[int] = []
    remaining = total
    i = 0
    while remaining > 0:
        spec = serial[min(i, len(serial) - 1)]
        if isinstance(spec, str) and spec.endswith("%"):
            size = max(1, int(total * float(spec[:-1]) / 100))
        else:
            size = int(spec)
        if size <= 0:
            size = remaining
        size = min(size, remaining)
        sizes.append(size)
        remaining -= size
        i += 1
    return sizes


def tags_selected(task_tags: frozenset[str], only: Sequence[str], skip: Sequence[str]) -> bool:
    """Ansible's tag rules: ``always`` runs unless skipped, ``never`` only when asked for."""
    tags = task_tags or frozenset(("untagged",))
    should = True
    only_set = set(only) or {"all"}
    if (
        "always" in tags
        or ("all" in only_set and "never" not in tags)
        or not tags.isdisjoint(only_set)
        or ("tagged" in only_set and tags != {"untagged"} and "never" not in tags)
    ):
        should = True
    else:
        should = False
    if should and skip:
        skip_set = set(skip)
        if "all" in skip_set:
            if "always" not in tags or "always" in skip_set:
                should = False
        elif not tags.isdisjoint(skip_set) or ("tagged" in skip_set and tags != {"untagged"}):
            should = False
    return should


def _play_scope(templar: Templar, extra: Mapping[str, Any], play: Play) -> Vars:
    return Vars(
        [
            (extra, template_keys(extra)),
            (play.vars, template_keys(play.vars)),
            templar.globals_layer,
        ],
        templar,
    )


def _select(inventory: Inventory, pattern: str, limit: str | None, loc: Location) -> list[Host]:
    text = pattern.strip()
    if (
        text in LOCALHOST_NAMES
        and "localhost" not in inventory.hosts
        and text not in inventory.hosts
    ):
        # the controller itself: not an inventory host, so --limit does not apply to it
        return [controller_host()]
    if not inventory.hosts:
        return []
    from hlplay.inventory.patterns import apply_limit, select_hosts

    try:
        names = select_hosts(inventory, text, location=loc)
    except SelectionError as exc:
        if _only_tiers_or_roles(text):
            raise _MissingTierOrRole(exc.message, exc.location or loc) from None
        raise
    names = apply_limit(inventory, names, limit, location=loc)
    return [inventory.hosts[n] for n in names]


# Only the implicit groups: they exist when some host has that tier or role, so a
# playbook written for fleets in general may name one this fleet lacks. A
# selector such as ``tier=staging`` is a choice and stays an error.
_TIER_OR_ROLE = re.compile(r"^[!&]?(tier_|role_)[A-Za-z0-9_-]+$")


class _MissingTierOrRole(SelectionError):
    """A play pattern of only tiers and roles, none of which this fleet has."""


def _only_tiers_or_roles(pattern: str) -> bool:
    """Whether every term of a host pattern is a ``tier_*`` or ``role_*`` group."""
    terms = [t.strip() for t in re.split(r"[,:]", pattern) if t.strip()]
    return bool(terms) and all(_TIER_OR_ROLE.match(t) for t in terms)


def prepare_plays(
    playbook: Playbook, inventory: Inventory, options: RunOptions, templar: Templar
) -> list[PreparedPlay]:
    """Select every play's hosts and read its vars_files: all errors before anything runs."""
    out: list[PreparedPlay] = []
    for play in playbook.plays:
        scope = _play_scope(templar, options.extra_vars, play)
        try:
            pattern = (
                str(templar.render(play.hosts, scope)) if has_template(play.hosts) else play.hosts
            )
            name = str(templar.render(play.name, scope)) if has_template(play.name) else play.name
        except TemplateFailure as exc:
            raise PlaybookError(exc.message, play.loc) from None
        note = ""
        try:
            hosts = _select(inventory, pattern, options.limit, play.loc)
        except _MissingTierOrRole as exc:
            # A shipped playbook names the tiers and roles a fleet may have
            # (deploy-all's tier_prod): one this fleet lacks leaves the play
            # without hosts, said out loud, as Ansible warns and skips.
            hosts = []
            note = f"play '{name}': {exc.message}; the play has no hosts"
        except SelectionError as exc:
            raise SelectionError(exc.message, exc.location or play.loc) from None
        files: list[dict[str, Any]] = []
        for raw, loc in play.vars_files:
            try:
                rel = str(templar.render(raw, scope))
            except TemplateFailure as exc:
                raise PlaybookError(exc.message, loc) from None
            path = Path(rel) if Path(rel).is_absolute() else play.base_dir / rel
            if not path.is_file():
                if path.is_dir():
                    what = "is a directory"
                elif path.exists():
                    what = "is not a regular file (not read)"
                else:
                    what = "not found"
                raise PlaybookError(f"vars file {what}: {path}", loc)
            data = load_yaml_file(path)
            if data is None:
                data = {}
            if not isinstance(data, Mapping):
                raise PlaybookError("a vars file must be a mapping of names to values", loc)
            files.append(dict(data))
        serial = play.serial
        if len(serial) == 1 and isinstance(serial[0], str) and has_template(serial[0]):
            try:
                rendered = templar.render(serial[0], scope)
            except TemplateFailure as exc:
                raise PlaybookError(exc.message, play.loc) from None
            serial = parse_serial(rendered, play.loc)
        out.append(
            PreparedPlay(
                play=play, hosts=hosts, vars_files=files, name=name, serial=serial, note=note
            )
        )
    return out


def _runs_after_stop(prepared: PreparedPlay) -> bool:
    """Whether a play still runs after any_errors_fatal or a failed batch stopped the playbook.

    A play tagged ``always`` on the controller alone does, as a block's
    ``always:`` runs after the block failed: a report of the run is written
    on every exit path. A play on inventory hosts never does.
    """
    return (
        "always" in prepared.play.tags
        and bool(prepared.hosts)
        and all(h.name in LOCALHOST_NAMES for h in prepared.hosts)
    )


class Runner:
    """Runs prepared plays; ``run()`` returns the exit code."""

    def __init__(
        self,
        *,
        playbook: Playbook,
        plays: list[PreparedPlay],
        inventory: Inventory,
        options: RunOptions,
        bus: EventBus,
        pool: TransportPool,
        templar: Templar,
        stop: asyncio.Event | None = None,
    ) -> None:
        self.playbook = playbook
        self.plays = plays
        self.inventory = inventory
        self.options = options
        self.bus = bus
        self.pool = pool
        self.templar = templar
        self.stop = stop or asyncio.Event()
        self.forks = asyncio.Semaphore(max(1, options.forks))
        self.states: dict[str, HostState] = {}
        self.stats: dict[str, HostStats] = {}
        self.run_state: dict[str, Any] = {
            "verbosity": options.verbosity,
            "check_mode": options.check,
            "playbook_dir": str(playbook.path.parent),
        }
        self.executor = TaskExecutor(self)
        self.scope: PlayScope
        self.halted = ""
        self.interrupted = False
        self._started = options.start_at_task is None
        self._infos: dict[int, TaskInfo] = {}
        self._groups: dict[str, list[str]] | None = None
        self._warned: set[str] = set()
        self._yielded = time.monotonic()

    # --- small services for the executor -----------------------------------------------

    @property
    def stopping(self) -> bool:
        return self.stop.is_set()

    async def sleep(self, seconds: float) -> None:
        """Sleep, but wake at once on Ctrl-C."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    async def checkpoint(self) -> None:
        """Yield to the event loop if nothing has for :data:`YIELD_EVERY` seconds.

        Only then: yielding at every step would interleave the hosts of a
        step differently from a run that never waits.
        """
        now = time.monotonic()
        if now - self._yielded >= YIELD_EVERY:
            self._yielded = now
            await asyncio.sleep(0)

    def stats_for(self, host: str) -> HostStats:
        found = self.stats.get(host)
        if found is None:
            found = self.stats[host] = HostStats()
        return found

    def state(self, host: Host) -> HostState:
        found = self.states.get(host.name)
        if found is None:
            found = self.states[host.name] = HostState(host)
        return found

    def warn(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            self.bus.emit(Warning_(message))

    def task_info(self, pc: PlayContext, task: Task) -> TaskInfo:
        info = self._infos.get(task.id)
        if info is None:
            name = task.display_name
            if task.name and has_template(task.name):
                with contextlib.suppress(TemplateFailure):
                    name = str(self.templar.render(task.name, self.scope.play_vars))
            check = task.check_mode if task.check_mode is not None else pc.check_mode
            info = TaskInfo(
                id=task.id,
                name=name,
                action=task.action,
                is_handler=task.is_handler,
                location=str(task.loc),
                no_log=task.no_log,
                check_mode=check,
            )
            self._infos[task.id] = info
        return info

    def force_handlers(self, pc: PlayContext) -> bool:
        return self.options.force_handlers or pc.play.force_handlers

    # --- the playbook --------------------------------------------------------------------

    async def run(self) -> int:
        start = time.monotonic()
        self.bus.emit(
            PlaybookStarted(str(self.playbook.path), self.options.check, self.options.diff)
        )
        try:
            for prepared in self.plays:
                if self.stopping:
                    break
                if self.halted and not _runs_after_stop(prepared):
                    continue
                await self.run_play(prepared)
        except asyncio.CancelledError:
            # a second Ctrl-C cancels running tasks; the recap still prints
            self.interrupted = True
        # a signal that arrived during the last task (one that never awaited,
        # a render it interrupted) waits in the loop's queue: let it land
        # before the exit code is decided
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0)
        if self.stopping:
            self.interrupted = True
        if not self._started:
            self.warn(f"no task named '{self.options.start_at_task}' was found to start at")
        for entry in self.pool.forged_answers():
            self.bus.emit(
                Forged(
                    host=str(entry.get("host")),
                    subject=str(entry.get("subject")),
                    code=str(entry.get("code")),
                    reason=str(entry.get("reason")),
                    request_id=entry.get("request_id"),
                    key=entry.get("key"),
                )
            )
        code = exit_code(self.stats, self.interrupted)
        self.bus.emit(
            PlaybookEnded(dict(self.stats), code, self.interrupted, time.monotonic() - start)
        )
        return code

    async def run_play(self, prepared: PreparedPlay) -> None:
        play = prepared.play
        if prepared.note:
            self.warn(prepared.note)
        check = play.check_mode if play.check_mode is not None else self.options.check
        diff = play.diff if play.diff is not None else self.options.diff
        states = [self.state(h) for h in prepared.hosts]
        eligible = [s for s in states if not (s.failed or s.unreachable)]
        for s in eligible:
            s.ended = False
            s.notified.clear()
        pc = PlayContext(play=play, states=eligible, check_mode=check, diff_mode=diff)
        pc.active_names.extend(s.name for s in eligible)
        if self._groups is None:
            self._groups = self.inventory.groups_map()
        self.scope = PlayScope(
            templar=self.templar,
            inventory=self.inventory,
            play=play,
            pc=pc,
            states=self.states,
            extra_vars=self.options.extra_vars,
            vars_files=prepared.vars_files,
            groups=self._groups,
            playbook_dir=self.playbook.path.parent,
        )
        self.bus.emit(
            PlayStarted(
                name=prepared.name,
                pattern=play.hosts,
                hosts=tuple(s.name for s in eligible),
                index=play.index,
                strategy=play.strategy,
                check=check,
            )
        )
        if not eligible:
            self.bus.emit(NoHostsMatched(prepared.name))
            self.bus.emit(PlayEnded(prepared.name))
            return
        if play.gather_facts:
            self.warn("gather_facts is not supported and was ignored (facts come from modules)")
        for s in eligible:
            self.stats_for(s.name)
        sizes = batch_sizes(prepared.serial, len(eligible))
        run_strategy = strategies.STRATEGIES[play.strategy]
        offset = 0
        for index, size in enumerate(sizes):
            if self.stopping:
                break
            batch = eligible[offset : offset + size]
            offset += size
            pc.batch = batch
            pc.batch_failed = set()
            pc.batch_ended = False
            pc.started_tasks = set()
            pc.run_once = {}
            pc.throttles = {}
            pc.batch_names[:] = [s.name for s in batch]
            if len(sizes) > 1:
                self.bus.emit(BatchStarted(index + 1, len(sizes), tuple(pc.batch_names)))
            await run_strategy(self, pc, batch)
            if pc.aborted:
                self.halted = pc.aborted
                self.bus.emit(NoMoreHosts(pc.aborted))
                break
            if pc.ended:
                break
            if batch and len(pc.batch_failed) == len(batch):
                self.halted = "every host of the batch failed"
                self.bus.emit(NoMoreHosts(self.halted))
                break
        for s in eligible:
            s.notified.clear()
        self.bus.emit(PlayEnded(prepared.name))

    # --- task lists and blocks -------------------------------------------------------------

    def selected(self, task: Task) -> bool:
        if not self._started:
            if task.name != self.options.start_at_task and task.display_name != (
                self.options.start_at_task
            ):
                return False
            self._started = True
        return tags_selected(task.tags, self.options.tags, self.options.skip_tags)

    def after_task(self, pc: PlayContext) -> None:
        if pc.fatal and not pc.aborted:
            pc.aborted = "any_errors_fatal: a host failed"
        mfp = pc.play.max_fail_percentage
        if (
            mfp is not None
            and pc.batch
            and not pc.aborted
            and len(pc.batch_failed) * 100.0 / len(pc.batch) > mfp
        ):
            pc.aborted = f"max_fail_percentage ({mfp:g}%) exceeded"

    async def run_items(
        self, pc: PlayContext, items: Sequence[Item], hosts: Sequence[HostState], rescuable: bool
    ) -> None:
        for item in items:
            if self.stopping or pc.stopped:
                return
            active = [h for h in hosts if h.active]
            if not active:
                return
            if isinstance(item, Block):
                await self.run_block(pc, item, active, rescuable)
                continue
            if not self.selected(item):
                continue
            if item.action == "meta":
                await self.meta(pc, item, active)
                continue
            await self.executor.run_task(pc, item, active, rescuable)
            self.after_task(pc)

    def _revive(self, pc: PlayContext, hs: HostState) -> None:
        hs.failed = False
        if hs.name not in pc.active_names:
            pc.active_names.append(hs.name)
        if hs in pc.batch and hs.name not in pc.batch_names:
            pc.batch_names.append(hs.name)

    async def run_block(
        self, pc: PlayContext, block: Block, hosts: Sequence[HostState], rescuable: bool
    ) -> None:
        await self.run_items(pc, block.block, hosts, rescuable or bool(block.rescue))
        if self.stopping:
            return
        failed = [h for h in hosts if h.failed and not h.unreachable and not h.ended]
        if block.rescue and failed and not pc.aborted:
            for h in failed:
                self._revive(pc, h)
            await self.run_items(pc, block.rescue, failed, rescuable)
        if block.always and not self.stopping:
            targets = [h for h in hosts if not h.unreachable and not h.ended]
            still = [h for h in targets if h.failed]
            for h in still:
                h.failed = False
            try:
                await self.run_items(pc, block.always, targets, rescuable)
            finally:
                for h in still:
                    h.failed = True

    # --- handlers and meta -------------------------------------------------------------------

    async def flush_handlers(self, pc: PlayContext, hosts: Sequence[HostState]) -> None:
        """Run notified handlers once each, in definition order, until none is pending."""
        force = self.force_handlers(pc)
        for _ in range(len(pc.play.handlers) + 1):
            ran = False
            for handler in pc.play.handlers:
                if self.stopping or ((pc.aborted or pc.ended) and not force):
                    return
                targets = [
                    h
                    for h in hosts
                    if handler.id in h.notified
                    and (h.active or (force and h.failed and not h.unreachable))
                ]
                if not targets:
                    continue
                for h in targets:
                    h.notified.discard(handler.id)
                ran = True
                if handler.action == "meta":
                    continue
                pc.started_tasks.discard(handler.id)
                revived = [h for h in targets if h.failed]
                for h in revived:
                    h.failed = False
                try:
                    await self.executor.run_task(pc, handler, targets, False)
                finally:
                    for h in revived:
                        h.failed = True
                self.after_task(pc)
            if not ran:
                return

    async def meta(self, pc: PlayContext, task: Task, hosts: Sequence[HostState]) -> None:
        action = task.args.get("action")
        if action == "noop":
            return
        if action == "flush_handlers":
            await self.flush_handlers(pc, hosts)
            return
        matching: list[HostState] = []
        for h in hosts:
            try:
                if not task.when or self.templar.conditions(
                    task.when, self.scope.vars_for(h, task)
                ):
                    matching.append(h)
            except TemplateFailure as exc:
                self.warn(f"meta {action}: {exc.message}")
        if action == "end_host":
            for h in matching:
                h.ended = True
                pc.host_gone(h.name)
        elif action == "end_play" and matching:
            pc.ended = True
        elif action == "end_batch" and matching:
            pc.batch_ended = True
