"""``hlplay health``: the fleet health check, direct and fast (no playbook).

Exit status: 0 healthy; 2 a host or the fleet is not healthy (failed units,
full disk, low memory, down targets, firing alerts; with ``--strict`` any
warning too); 4 a host is unreachable (checked first, as in playbooks);
1 the check could not run (bad inventory, bad threshold); 5 bad options.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from hlplay.cli.nix_cmd import FiniteFloatRange
from hlplay.cli.options import extra_vars_option, inventory_option, json_option, limit_option


def _write(path: str, text: str) -> None:
    from hlplay.errors import HlplayError

    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text if text.endswith("\n") else text + "\n")
    except OSError as exc:
        raise HlplayError(f"{path}: cannot write the report: {exc.strerror or exc}") from None


@click.command("health")
@inventory_option
@limit_option
@extra_vars_option
@json_option
@click.option(
    "--markdown", "markdown_out", metavar="FILE", help="Also write the Markdown report here."
)
@click.option("--json-out", "json_out", metavar="FILE", help="Also write the JSON report here.")
@click.option(
    "--disk-max",
    type=FiniteFloatRange(0, 100),
    default=None,
    metavar="PCT",
    help="A disk this full (percent used) or more is bad.  [default: 90]",
)
@click.option(
    "--mem-min",
    type=FiniteFloatRange(0, 100),
    default=None,
    metavar="PCT",
    help="Less memory available than this (percent) is bad.  [default: 10]",
)
@click.option(
    "--load-max",
    type=FiniteFloatRange(min=0),
    default=None,
    metavar="N",
    help="A 1-minute load above N per CPU is a warning.  [default: 2]",
)
@click.option(
    "--prometheus-url",
    default=None,
    metavar="URL",
    help="Prometheus to read targets from (default: hlplay.monitoring in the inventory).",
)
@click.option(
    "--alertmanager-url",
    default=None,
    metavar="URL",
    help="Alertmanager to read alerts from (default: hlplay.monitoring).",
)
@click.option(
    "--timeout",
    type=FiniteFloatRange(0.1, 600),
    default=10.0,
    metavar="SECONDS",
    show_default=True,
    help="Seconds to wait for each host's facts.",
)
@click.option("--strict", is_flag=True, help="Warnings (load, drift…) make the check fail too.")
@click.pass_context
def health(
    ctx: click.Context,
    inventory: tuple[str, ...],
    limit: str | None,
    extra_vars: tuple[str, ...],
    as_json: bool,
    markdown_out: str | None,
    json_out: str | None,
    disk_max: float | None,
    mem_min: float | None,
    load_max: float | None,
    prometheus_url: str | None,
    alertmanager_url: str | None,
    timeout: float,
    strict: bool,
) -> None:
    """Check the health of every selected host and of the fleet, read-only.

    Per host: reachability (NATS listener or SSH), failed units, disk, memory
    and load against thresholds, the current generation, its age and revision.
    Fleet: revision drift within a tier, listener discovery, and when the
    inventory names them, Prometheus targets and Alertmanager alerts.
    Thresholds also come from inventory variables (health_disk_max_percent,
    health_mem_min_percent, health_load_max_per_cpu) and -e.

    Exit 0 when healthy, 2 when not, 4 when a host is unreachable.
    """
    from hlplay.health.fleet import FleetOptions, check_fleet
    from hlplay.health.http import check_url
    from hlplay.inventory.loader import load_inventory
    from hlplay.inventory.patterns import apply_limit, select_hosts
    from hlplay.inventory.variables import parse_extra_vars

    for url, what in (
        (prometheus_url, "--prometheus-url"),
        (alertmanager_url, "--alertmanager-url"),
    ):
        if url:
            check_url(url, what)
    inv = load_inventory(list(inventory))
    hosts = apply_limit(inv, select_hosts(inv, "all"), limit)
    options = FleetOptions(
        flags={"disk_max": disk_max, "mem_min": mem_min, "load_max": load_max},
        extra_vars=parse_extra_vars(extra_vars),
        timeout=timeout,
        prometheus_url=prometheus_url,
        alertmanager_url=alertmanager_url,
        strict=strict,
    )
    report = asyncio.run(check_fleet(inv, hosts, options))
    md, doc = report.render()
    text = json.dumps(doc, indent=2, default=str)
    if markdown_out:
        _write(markdown_out, md)
    if json_out:
        _write(json_out, text)
    click.echo(text if as_json else md.rstrip("\n"))
    ctx.exit(report.exit_code)
