"""``hlplay lab up|down|status|bump``: the built-in lab fleet."""

from __future__ import annotations

import asyncio
import json

import click

LAB_INVENTORY = "inventory/lab"
#: ``hlplay lab status`` when nothing of the lab runs (as ``systemctl status`` says 3).
EXIT_NOT_RUNNING = 3

inventory_opt = click.option(
    "-i",
    "--inventory",
    "inventory_path",
    default=LAB_INVENTORY,
    show_default=True,
    envvar="HLPLAY_LAB_INVENTORY",
    help="The lab inventory.",
)


@click.group()
def lab() -> None:
    """The built-in lab: a NATS server, listener agents and an SSH host on this machine."""


@lab.command()
@inventory_opt
@click.option("--fresh", is_flag=True, help="Wipe the lab's state directory first.")
def up(inventory_path: str, fresh: bool) -> None:
    """Start the lab and provision every host."""
    from hlplay.lab.fleet import lab_for

    the_lab = lab_for(inventory_path, echo=click.echo)
    info = the_lab.up(fresh=fresh)
    click.echo(
        f"configuration repo: {the_lab.layout.config} "
        f"(provisioned {info['provisioned'][:12]}, HEAD {info['head'][:12]})"
    )
    click.echo("")
    click.echo("The lab is up. Deploy the configuration's HEAD to the test tier:")
    click.echo(f"  hlplay playbooks/deploy-all.yml -i {inventory_path} -l tier=test")
    click.echo(f"  hlplay lab status -i {inventory_path}")
    click.echo(f"  hlplay lab down -i {inventory_path}")


@lab.command()
@inventory_opt
def down(inventory_path: str) -> None:
    """Stop every lab process (by pid) and leave nothing running."""
    from hlplay.lab.fleet import lab_for

    stopped = lab_for(inventory_path).down()
    if not stopped:
        click.echo("the lab is not running")
        return
    for name, how in sorted(stopped.items()):
        click.echo(f"  {how:8} {name}")
    click.echo(f"lab down: {len(stopped)} processes stopped")


@lab.command()
@inventory_opt
@click.option("--json", "json_out", is_flag=True, help="One JSON document.")
def status(inventory_path: str, json_out: bool) -> None:
    """Each host's generation, revision and health; revision drift per tier."""
    from hlplay.lab.fleet import lab_for

    the_lab = lab_for(inventory_path)
    running = the_lab.processes()
    hosts = asyncio.run(the_lab.status()) if running else []
    drift: dict[str, list[str]] = {}
    by_tier: dict[str, set[str]] = {}
    for h in hosts:
        if h.revision:
            by_tier.setdefault(h.tier, set()).add(h.revision)
    for tier, revs in by_tier.items():
        if len(revs) > 1:
            drift[tier] = sorted(revs)
    if json_out:
        doc = {
            "processes": running,
            "hosts": [h.__dict__ | {"healthy": h.healthy} for h in hosts],
            "drift": drift,
        }
        click.echo(json.dumps(doc, indent=2, default=list))
    if not running:
        click.secho(
            f"ERROR: the lab is not running (start it with: hlplay lab up -i {inventory_path})",
            fg="red",
            err=True,
        )
        raise SystemExit(EXIT_NOT_RUNNING)
    if json_out:
        return
    click.echo(f"{'HOST':<11} {'TIER':<5} {'VIA':<5} {'GEN':>4}  {'REVISION':<12}  HEALTH")
    for h in hosts:
        health = (
            "ok"
            if h.healthy
            else (
                f"failed: {', '.join(h.failed_units)}"
                if h.reachable
                else f"unreachable ({h.error})"
            )
        )
        gen = str(h.generation) if h.generation is not None else "-"
        rev = (h.revision or "-")[:12]
        click.echo(f"{h.name:<11} {h.tier:<5} {h.transport:<5} {gen:>4}  {rev:<12}  {health}")
    for tier, drifted in sorted(drift.items()):
        click.echo(f"revision drift in tier {tier}: {', '.join(r[:12] for r in drifted)}")


@lab.command()
@inventory_opt
@click.argument("package")
@click.argument("version")
def bump(inventory_path: str, package: str, version: str) -> None:
    """Change a lab package's version in the configuration and commit it."""
    from hlplay.inventory.loader import load_inventory
    from hlplay.lab.configrepo import bump as do_bump
    from hlplay.lab.layout import layout_for

    layout = layout_for(load_inventory(inventory_path))
    sha = do_bump(layout.config, package, version)
    click.echo(f"{package} -> {version}: committed {sha[:12]} in {layout.config}")
