"""``hlplay PLAYBOOK …``: run playbooks, with ansible-playbook's flags and exit codes.

Exit codes: 0 ok, 1 error, 2 a host failed, 4 a host was unreachable
(checked before failed), 5 bad options, 99 interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from hlplay.cli.options import (
    DEFAULT_INVENTORY,
    extra_vars_option,
    inventory_option,
    json_option,
    limit_option,
)

if TYPE_CHECKING:
    from hlplay.engine.api import RunResult
    from hlplay.engine.runner import PreparedPlay
    from hlplay.playbook.model import Playbook


def _split(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(t.strip() for v in values for t in v.split(",") if t.strip())


def find_playbook(name: str) -> str:
    """A playbook path as given; else, for a bare name, ``./playbooks/NAME`` or
    hlplay's own shipped playbooks — so ``hlplay deploy-all.yml`` works anywhere."""
    if Path(name).exists() or "/" in name:
        return name
    here = Path("playbooks") / name
    if here.exists():
        return str(here)
    shipped = Path(__file__).resolve().parents[3] / "playbooks" / name
    return str(shipped) if shipped.exists() else name


def _load(paths: tuple[str, ...], extra: dict[str, Any]) -> Playbook:
    from hlplay.playbook.loader import load_playbook
    from hlplay.playbook.model import Playbook

    paths = tuple(find_playbook(p) for p in paths)
    for p in paths:
        if not Path(p).exists():
            from hlplay.cli.main import COMMANDS
            from hlplay.errors import OptionsError, did_you_mean

            hint = did_you_mean(p, [c for c in COMMANDS if c != "playbook"])
            if hint:
                raise OptionsError(f"no playbook or command '{p}'{hint}")
    books = [load_playbook(p, extra_vars=extra) for p in paths]
    if len(books) == 1:
        return books[0]
    plays = [play for book in books for play in book.plays]
    for i, play in enumerate(plays, 1):
        play.index = i
    return Playbook(path=books[0].path, plays=plays, files=[f for b in books for f in b.files])


def _tag_list(tags: frozenset[str]) -> str:
    return "[" + ", ".join(sorted(tags)) + "]"


def _listing(
    book: Playbook,
    prepared: list[PreparedPlay],
    *,
    hosts: bool,
    tasks: bool,
    tags: tuple[str, ...],
    skip_tags: tuple[str, ...],
    as_json: bool,
) -> None:
    from hlplay.engine.runner import tags_selected
    from hlplay.playbook.model import iter_tasks

    doc: dict[str, Any] = {"playbook": str(book.path), "plays": []}
    lines = ["", f"playbook: {book.path}"]
    for p in prepared:
        play = p.play
        entry: dict[str, Any] = {"name": p.name, "pattern": play.hosts, "tags": sorted(play.tags)}
        lines.append("")
        lines.append(f"  play #{play.index} ({play.hosts}): {p.name}\tTAGS: {_tag_list(play.tags)}")
        if hosts:
            names = [h.name for h in p.hosts]
            entry["hosts"] = names
            lines.append(f"    pattern: ['{play.hosts}']")
            lines.append(f"    hosts ({len(names)}):")
            lines.extend(f"      {n}" for n in names)
        if tasks:
            listed = [
                t
                for items in (play.pre_tasks, play.tasks, play.post_tasks)
                for t in iter_tasks(items)
                if t.action != "meta" and tags_selected(t.tags, tags, skip_tags)
            ]
            entry["tasks"] = [
                {"name": t.display_name, "action": t.action, "tags": sorted(t.tags)} for t in listed
            ]
            lines.append("    tasks:")
            lines.extend(f"      {t.display_name}\tTAGS: {_tag_list(t.tags)}" for t in listed)
        doc["plays"].append(entry)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo("\n".join(lines))


_Handler = Callable[[int, FrameType | None], Any] | int | None


def _install(handler: _Handler, *sigs: int) -> dict[int, _Handler]:
    """``handler`` for ``sigs``; the handlers it replaced."""
    previous: dict[int, _Handler] = {}
    for sig in sigs:
        try:
            previous[sig] = signal.getsignal(sig)
            signal.signal(sig, handler)
        except (ValueError, OSError):  # not the main thread: the caller handles signals
            previous.pop(sig, None)
    return previous


def _restore(previous: dict[int, _Handler]) -> None:
    for sig, old in previous.items():
        signal.signal(sig, signal.SIG_DFL if old is None else old)


def _terminate(signum: int, frame: FrameType | None) -> None:
    # before the run starts (loading, planning), SIGTERM stops as Ctrl-C does
    raise KeyboardInterrupt


async def _run_with_signals(**kwargs: Any) -> RunResult:
    """Run; the first Ctrl-C or SIGTERM stops dispatching and the render in
    progress, a second one cancels running tasks.

    The handlers are Python's own (``signal.signal``), not the event loop's:
    a CPU-bound template or a loop that never awaits keeps the event loop
    from running the loop's handlers, while Python runs its own between two
    bytecodes of whatever the main thread does. A handler hands the signal
    to the loop with ``call_soon_threadsafe`` (it may have interrupted the
    loop's own code, which must not be re-entered) and then stops the render
    it interrupted, if any (``interrupt_render``): that task fails with
    "interrupted", and the run ends with its recap and exit code 99.
    """
    from hlplay.engine.api import run_playbook
    from hlplay.templating.templar import interrupt_render

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    presses = 0

    def on_signal() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            stop.set()
            sys.stderr.write(
                "\n[interrupted] no new tasks start; waiting for running ones "
                "(Ctrl-C again to abort them)\n"
            )
            sys.stderr.flush()
        elif main is not None:
            main.cancel()

    def handler(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(on_signal)
        interrupt_render(frame)

    previous = _install(handler, signal.SIGINT, signal.SIGTERM)
    try:
        return await run_playbook(stop=stop, **kwargs)
    finally:
        _restore(previous)


@click.command(
    "playbook",
    context_settings={"help_option_names": ["-h", "--help"]},
    short_help="Run a playbook (the default command).",
)
@click.argument("playbooks", nargs=-1, required=True, metavar="PLAYBOOK...")
@inventory_option
@limit_option
@extra_vars_option
@click.option(
    "-f",
    "--forks",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Hosts worked on at once.",
)
@click.option("-C", "--check", is_flag=True, help="Dry run: change nothing.")
@click.option("-D", "--diff", is_flag=True, help="Show what changes (or would).")
@click.option("-t", "--tags", multiple=True, metavar="TAGS", help="Run only tasks with these tags.")
@click.option("--skip-tags", multiple=True, metavar="TAGS", help="Skip tasks with these tags.")
@click.option("--list-hosts", is_flag=True, help="List each play's hosts; run nothing.")
@click.option("--list-tasks", is_flag=True, help="List each play's tasks; run nothing.")
@click.option("--syntax-check", is_flag=True, help="Load and validate; run nothing.")
@click.option("--force-handlers", is_flag=True, help="Run notified handlers even on failure.")
@click.option("--start-at-task", metavar="NAME", help="Start at the task with this name.")
@click.option("-v", "--verbose", "verbosity", count=True, help="More output (repeatable).")
@click.option("--junit-xml", type=click.Path(dir_okay=False), help="Also write a JUnit XML report.")
@json_option
@click.pass_context
def playbook(
    ctx: click.Context,
    playbooks: tuple[str, ...],
    inventory: tuple[str, ...],
    limit: str | None,
    extra_vars: tuple[str, ...],
    forks: int,
    check: bool,
    diff: bool,
    tags: tuple[str, ...],
    skip_tags: tuple[str, ...],
    list_hosts: bool,
    list_tasks: bool,
    syntax_check: bool,
    force_handlers: bool,
    start_at_task: str | None,
    verbosity: int,
    junit_xml: str | None,
    as_json: bool,
) -> None:
    """Run PLAYBOOK(s) over the inventory: hlplay site.yml -l tier=test --check"""
    from hlplay.engine.api import plan
    from hlplay.inventory.variables import parse_extra_vars

    previous = _install(_terminate, signal.SIGTERM)
    ctx.call_on_close(lambda: _restore(previous))
    extra = parse_extra_vars(extra_vars)
    book = _load(playbooks, extra)
    if syntax_check:
        if as_json:
            click.echo(json.dumps({"playbook": str(book.path), "ok": True}))
        else:
            click.echo(f"\nplaybook: {book.path}")
        return
    inv_source: Any = list(inventory)
    source = ctx.get_parameter_source("inventory")
    if (
        source == click.core.ParameterSource.DEFAULT
        and tuple(inventory) == (DEFAULT_INVENTORY,)
        and not Path(DEFAULT_INVENTORY).exists()
    ):
        inv_source = None  # no inventory: only the controller (localhost) is available
    tag_list, skip_list = _split(tags), _split(skip_tags)
    book, inv, prepared = plan(book, inv_source, limit=limit, extra_vars=extra)
    if list_hosts or list_tasks:
        _listing(
            book,
            prepared,
            hosts=list_hosts,
            tasks=list_tasks,
            tags=tag_list,
            skip_tags=skip_list,
            as_json=as_json,
        )
        return
    reporters: list[Any] = []
    if not as_json:
        from hlplay.report.console import ConsoleReporter

        reporters.append(ConsoleReporter(verbosity=verbosity))
    else:
        from hlplay.report.console import WarningsReporter

        reporters.append(WarningsReporter())
    if junit_xml:
        from hlplay.report.junit import JUnitReporter

        reporters.append(JUnitReporter(junit_xml))
    from hlplay.report.github import GitHubAnnotations, in_github_actions

    if in_github_actions():
        reporters.append(GitHubAnnotations(sys.stderr if as_json else sys.stdout))
    if inv_source is None and any(
        p.play.hosts.strip() not in ("localhost", "127.0.0.1") for p in prepared
    ):
        click.echo(
            f"[WARNING]: no inventory at {DEFAULT_INVENTORY} (use -i): only localhost is available",
            err=True,
        )
    result = asyncio.run(
        _run_with_signals(
            playbook=book,
            inventory=inv,
            limit=limit,
            extra_vars=extra,
            forks=forks,
            check=check,
            diff=diff,
            tags=tag_list,
            skip_tags=skip_list,
            force_handlers=force_handlers,
            start_at_task=start_at_task,
            verbosity=verbosity,
            reporters=reporters,
            planned=(book, inv, prepared),
        )
    )
    if as_json:
        click.echo(json.dumps(result.document, indent=2, default=str))
    # SystemExit, not ctx.exit: click returns (and drops) Exit codes outside standalone mode
    sys.exit(result.exit_code)
