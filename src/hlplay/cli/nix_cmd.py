"""``hlplay diff`` and ``hlplay generations``: what a deploy would change, and what ran.

``hlplay diff PATTERN [--revision R] [--json]`` builds the selected hosts'
systems (each where it would be deployed from: its listener, over SSH, or here
for local hosts) and diffs each against the system it runs, nvd style. Nothing
is activated. ``hlplay diff A B`` with two store paths, profiles or generation
links diffs them directly (``nvd diff A B``).

``hlplay generations PATTERN`` lists each host's system generations with the
revision that made them (local hosts: every generation; others: what their
facts report).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import click

from hlplay.cli.options import inventory_option, json_option, limit_option
from hlplay.errors import EXIT_FAILED, EXIT_UNREACHABLE, OptionsError, SelectionError

DEFAULT_TIMEOUT = 3600.0


class FiniteFloatRange(click.FloatRange):
    """A FloatRange that also refuses ``nan`` (which compares false to every bound)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        import math

        number = super().convert(value, param, ctx)
        if isinstance(number, float) and math.isnan(number):
            self.fail(f"{value!r} is not a number", param, ctx)
        return number


def _load(paths: tuple[str, ...], pattern: str, limit: str | None) -> tuple[Any, list[str]]:
    from hlplay.inventory.loader import load_inventory
    from hlplay.inventory.patterns import apply_limit, select_hosts

    inv = load_inventory(list(paths))
    hosts = apply_limit(inv, select_hosts(inv, pattern), limit)
    if not hosts:
        raise SelectionError(f"limit '{limit}' leaves none of the hosts matching '{pattern}'")
    return inv, hosts


def _short(rev: object) -> str:
    text = str(rev or "?")
    return text[:12] if len(text) == 40 else text


# -- hlplay diff -------------------------------------------------------------------


@click.command("diff")
@click.argument("targets", nargs=-1, required=True, metavar="PATTERN | A B")
@click.option("-r", "--revision", default=None, help="Branch, tag or commit (default: HEAD).")
@inventory_option
@limit_option
@json_option
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Colour the text output.",
)
@click.option("--timeout", type=FiniteFloatRange(min=0, min_open=True),
              default=DEFAULT_TIMEOUT, show_default=True,
              help="Seconds to wait for each host's build.")  # fmt: skip
@click.option("--store", default=None,
              help="With A B: the Nix store to read (ssh-ng://root@host).")  # fmt: skip
def diff(
    targets: tuple[str, ...],
    revision: str | None,
    inventory: tuple[str, ...],
    limit: str | None,
    as_json: bool,
    color: str,
    timeout: float,
    store: str | None,
) -> None:
    """Build hosts and diff each against what it runs (deploys nothing).

    With two store paths, profiles or generation links (A B), diff those.
    """
    from hlplay.cli.diff_paths import diff_two, looks_like_path, want_colour

    use_colour = want_colour() if color == "auto" else color == "always"
    if len(targets) == 2 and all(looks_like_path(t) for t in targets):
        if revision is not None:
            raise OptionsError("--revision applies to a host PATTERN, not to two paths")
        code = diff_two(targets[0], targets[1], as_json, color=use_colour, store=store)
        if code:
            sys.exit(code)
        return
    if store is not None:
        raise OptionsError("--store applies to two paths (A B), not to a host PATTERN")
    if len(targets) != 1:
        raise OptionsError(
            "expected a host PATTERN, or two store paths / profiles to compare "
            f"(got {len(targets)} arguments: {' '.join(targets)})"
        )
    inv, hosts = _load(inventory, targets[0], limit)
    import asyncio

    code = asyncio.run(_diff_hosts(inv, hosts, revision, as_json, use_colour, timeout))
    if code:
        sys.exit(code)


async def _diff_hosts(
    inv: Any,
    hosts: Sequence[str],
    revision: str | None,
    as_json: bool,
    colour: bool,
    timeout: float,
) -> int:
    from hlplay.fleetops import diff_hosts

    doc, outcomes = await diff_hosts(inv, hosts, revision, timeout)
    summary = doc["summary"]
    failed, unreachable = summary["failed"], summary["unreachable"]
    if as_json:
        click.echo(json.dumps(doc, indent=2, default=str))
    else:
        for name in hosts:
            _print_host_diff(name, doc, outcomes, colour)
        click.echo(
            f"{summary['hosts']} host(s): {summary['changed']} would change, "
            f"{summary['unchanged']} unchanged"
            + (f", {failed} failed" if failed else "")
            + (f", {unreachable} unreachable" if unreachable else "")
        )
    if unreachable:
        return EXIT_UNREACHABLE
    return EXIT_FAILED if failed else 0


def _print_host_diff(
    name: str, doc: dict[str, Any], outcomes: dict[str, Any], colour: bool
) -> None:
    from hlplay.nix.diff import ClosureDiff

    entry = doc["hosts"][name]
    if entry["status"] not in ("changed", "unchanged"):
        label = "UNREACHABLE" if entry["status"] == "unreachable" else "FAILED"
        click.secho(f"== {name}: {label}: {entry['message']}", fg="red", err=False)
        return
    data = outcomes[name].data
    gen = data.get("old_generation")
    head = f"== {name}: generation {gen}" if gen is not None else f"== {name}: no system yet"
    click.secho(f"{head} -> {_short(doc['revision'])}", bold=True, color=colour or None)
    text = data.get("diff_text") or ""
    if colour and isinstance(data.get("diff"), dict):
        try:
            text = ClosureDiff.from_json(data["diff"]).render_text(color=True)
        except Exception:  # the plain text is there all the same
            text = data.get("diff_text") or ""
    click.echo(text.rstrip("\n"), color=colour or None)
    if data.get("diff_error"):
        click.secho(f"   (no diff: {data['diff_error']})", fg="yellow")


# -- hlplay generations ------------------------------------------------------------


@click.command("generations")
@click.argument("pattern", required=False, default="all", metavar="[PATTERN]")
@inventory_option
@limit_option
@json_option
@click.option("--timeout", type=FiniteFloatRange(min=0, min_open=True),
              default=10.0, show_default=True,
              help="Seconds to wait for each host's answer.")  # fmt: skip
def generations(
    pattern: str, inventory: tuple[str, ...], limit: str | None, as_json: bool, timeout: float
) -> None:
    """List the system generations of the selected hosts."""
    inv, hosts = _load(inventory, pattern, limit)
    import asyncio

    code = asyncio.run(_generations(inv, hosts, as_json, timeout))
    if code:
        sys.exit(code)


async def _generations(inv: Any, hosts: Sequence[str], as_json: bool, timeout: float) -> int:
    import asyncio

    from hlplay import fleetops
    from hlplay.transports.factory import TransportPool

    pool = TransportPool(inv)
    try:
        rows = await asyncio.gather(
            *(fleetops.host_generations(inv, h, pool, timeout) for h in hosts)
        )
    finally:
        await pool.close()
    result = dict(zip(hosts, rows, strict=True))
    if as_json:
        click.echo(json.dumps({"hosts": result}, indent=2, default=str))
    else:
        for name, row in result.items():
            _print_generations(name, row)
    if any(r.get("unreachable") for r in rows):
        return EXIT_UNREACHABLE
    return EXIT_FAILED if any(r.get("error") for r in rows) else 0


def _print_generations(name: str, row: dict[str, Any]) -> None:
    if row.get("error"):
        label = "UNREACHABLE" if row.get("unreachable") else "FAILED"
        click.secho(f"{name}: {label}: {row['error']}", fg="red")
        return
    gens = row.get("generations")
    if isinstance(gens, list):
        click.secho(f"{name} ({len(gens)} generation(s))", bold=True)
        if not gens:
            click.echo("   no system deployed")
        for g in gens:
            mark = "*" if g.get("current") else " "
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(g.get("time") or 0)))
            rev = _short(g.get("revision")) if g.get("revision") else "-"
            click.echo(f" {mark} {g.get('number'):>4}  {when}  {rev:<12}  {g.get('path')}")
        return
    cur = row.get("current") or {}
    if cur.get("generation") is None:
        click.echo(f"{name}: no generation reported")
        return
    age = cur.get("age")
    age_text = f", {_age(float(age))} old" if isinstance(age, int | float) else ""
    rev = _short(cur.get("revision")) if cur.get("revision") else "-"
    count = f" of {cur['generations']}" if cur.get("generations") else ""
    click.echo(
        f"{name}: generation {cur['generation']}{count} (current), revision {rev}{age_text}, "
        f"{cur.get('path') or cur.get('store_path') or '?'}"
    )


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


# -- hlplay rollback ---------------------------------------------------------------


@click.command("rollback")
@click.argument("pattern", required=False, default=None, metavar="[PATTERN]")
@inventory_option
@limit_option
@json_option
@click.option("--to", "to", type=int, default=None, metavar="GENERATION",
              help="Generation to return to (default: the previous one).")  # fmt: skip
@click.option("--timeout", type=FiniteFloatRange(min=0, min_open=True),
              default=DEFAULT_TIMEOUT, show_default=True,
              help="Seconds to wait for each host's rollback.")  # fmt: skip
def rollback(
    pattern: str | None,
    inventory: tuple[str, ...],
    limit: str | None,
    as_json: bool,
    to: int | None,
    timeout: float,
) -> None:
    """Return the selected hosts to their previous generation (or --to GENERATION)."""
    if pattern is None and limit is None:
        raise OptionsError("name the hosts to roll back: a PATTERN or -l PATTERN")
    if to is not None and to < 1:
        raise OptionsError(f"--to {to}: a generation number is 1 or more")
    inv, hosts = _load(inventory, pattern or "all", limit)
    if not as_json:
        # a rollback switches running systems: say which before it happens
        target = f"generation {to}" if to is not None else "their previous generation"
        click.echo(f"rolling back {len(hosts)} host(s) to {target}: {', '.join(hosts)}")
    import asyncio

    code = asyncio.run(_rollback(inv, hosts, to, as_json, timeout))
    if code:
        sys.exit(code)


async def _rollback(
    inv: Any, hosts: Sequence[str], to: int | None, as_json: bool, timeout: float
) -> int:
    from hlplay.fleetops import rollback_hosts

    doc = await rollback_hosts(inv, hosts, to, timeout)
    summary = doc["summary"]
    if as_json:
        click.echo(json.dumps(doc, indent=2, default=str))
    else:
        for name in hosts:
            entry = doc["hosts"][name]
            if entry["status"] != "rolled_back":
                label = "UNREACHABLE" if entry["status"] == "unreachable" else "FAILED"
                click.secho(f"{name}: {label}: {entry['message']}", fg="red")
                continue
            rev = _short(entry["revision"]) if entry["revision"] else "-"
            click.echo(
                f"{name}: generation {entry['from_generation']} -> "
                f"{entry['to_generation']} (revision {rev})"
            )
        click.echo(
            f"{summary['hosts']} host(s): {summary['rolled_back']} rolled back"
            + (f", {summary['failed']} failed" if summary["failed"] else "")
            + (f", {summary['unreachable']} unreachable" if summary["unreachable"] else "")
        )
    if summary["unreachable"]:
        return EXIT_UNREACHABLE
    return EXIT_FAILED if summary["failed"] else 0
