"""``hlplay listen``, ``hlplay keys new`` and ``hlplay nats config``.

Every ``listen`` option can also come from the environment as
``HLPLAY_LISTEN_<NAME>`` (``HLPLAY_LISTEN_NATS_URL``, ``HLPLAY_LISTEN_ROLE``…;
repeatable options take several values separated by spaces). The NixOS module
maps its options onto these flags.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import click

from hlplay.deploy.contract import DEFAULT_EXECUTOR, EXECUTORS
from hlplay.inventory.model import DEFAULT_PROFILE, DEFAULT_TOPLEVEL_ATTR, SubjectTemplates

ENV = "HLPLAY_LISTEN_"
DEFAULTS = SubjectTemplates()


def _env(name: str) -> str:
    return ENV + name.upper().replace("-", "_")


F = TypeVar("F", bound=Callable[..., Any])


def _opt(name: str, *dest: str, **kwargs: Any) -> Callable[[F], F]:
    return click.option(f"--{name}", *dest, envvar=_env(name), show_envvar=True, **kwargs)


@click.command(context_settings={"show_default": True})
@_opt("hostname", default=None, help="This host's name. [default: the system host name]")
@_opt("tier", required=True, help="This host's tier (e.g. test, prod).")
@_opt("role", "roles", multiple=True, help="A role of this host (repeatable).")
@_opt(
    "nats-url",
    "nats_urls",
    multiple=True,
    default=("nats://127.0.0.1:4222",),
    help="NATS server URL (repeatable).",
)
@_opt("nkey-file", default=None, help="NKey seed file of this listener's NATS user.")
@_opt(
    "trusted-keys",
    default=None,
    help="File of the deployer public keys (one per line) whose signed requests this "
    "host accepts (hlplay nats config --trust-dir writes one per tier).",
)
@_opt(
    "signing-seed",
    default=None,
    help="NKey seed file this listener signs its answers with. [default: --nkey-file]",
)
@click.option(
    "--accept-unsigned",
    is_flag=True,
    envvar=_env("accept-unsigned"),
    help="Also take requests without a signature (homelab-deploy controllers). "
    "Signed requests are still checked.",
)
@_opt("flake", default=".", help="Flake URL of the configuration (without ?ref and #host).")
@_opt("profile", default=DEFAULT_PROFILE, help="System profile.")
@_opt("toplevel-attr", default=DEFAULT_TOPLEVEL_ATTR, help="Flake attribute of the system.")
@_opt(
    "executor",
    default=DEFAULT_EXECUTOR,
    type=click.Choice(list(EXECUTORS)),
    help="What performs a deploy: nix (build, diff, activate, health gate, roll back) "
    "or noop (changes nothing).",
)
@_opt("timeout", default=3600.0, type=float, help="Seconds a run may take before it is ended.")
@_opt("subject-host", default=DEFAULTS.host, help="Subject template for this host.")
@_opt("subject-tier", default=DEFAULTS.tier, help="Subject template for the whole tier.")
@_opt("subject-role", default=DEFAULTS.role, help="Subject template for each role.")
@_opt("discover-subject", default=DEFAULTS.discover, help="Discovery subject.")
@_opt("facts-subject", default=DEFAULTS.facts, help="Fact query subject template.")
@_opt("confirm-subject", default=DEFAULTS.confirm, help="Confirmation subject template.")
@_opt("state-dir", default=None, help="Directory for the listener's state (revision…).")
@_opt(
    "units-dir",
    default=None,
    help="Directory of <unit> files holding 'active' or 'failed' (instead of systemctl).",
)
@_opt(
    "keep-generations",
    default=10,
    type=click.IntRange(min=2),
    help="Generations the system profile keeps after a switch (never the booted or "
    "running one).",
)
@_opt("disk-path", "disk_paths", multiple=True, default=("/",), help="Disk to report (repeatable).")
@_opt("progress-interval", default=0.5, type=float, help="Seconds between two progress messages.")
@_opt(
    "log-level",
    default="info",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    help="Logging verbosity.",
)
def listen(**opts: Any) -> None:
    """Run the listener agent: serve deploy requests, discovery and facts over NATS."""
    from hlplay.agent.listener import ListenerConfig, run_listener

    logging.basicConfig(
        level=getattr(logging, opts["log_level"].upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("nats").setLevel(logging.CRITICAL)
    hostname = opts["hostname"] or socket.gethostname().split(".")[0]
    config = ListenerConfig(
        hostname=hostname,
        tier=opts["tier"],
        roles=tuple(opts["roles"]),
        nats_urls=tuple(opts["nats_urls"]),
        nkey_file=opts["nkey_file"],
        flake=opts["flake"],
        profile=opts["profile"],
        toplevel_attr=opts["toplevel_attr"],
        executor=opts["executor"],
        timeout=opts["timeout"],
        subjects=SubjectTemplates(
            host=opts["subject_host"],
            tier=opts["subject_tier"],
            role=opts["subject_role"],
            discover=opts["discover_subject"],
            facts=opts["facts_subject"],
            confirm=opts["confirm_subject"],
        ),
        state_dir=opts["state_dir"],
        units_dir=opts["units_dir"],
        keep_generations=opts["keep_generations"],
        disk_paths=tuple(opts["disk_paths"]),
        progress_interval=opts["progress_interval"],
    )
    config.check()
    if config.state_dir:
        _usable_dir("--state-dir", config.state_dir)
    if config.nkey_file:
        from hlplay.agent.listener import read_nkey_file

        read_nkey_file(config.nkey_file)  # a bad seed is said before anything else
    trusted, signing_seed = _trust_options(opts)
    config = replace(
        config,
        trusted_keys=trusted,
        accept_unsigned=opts["accept_unsigned"],
        signing_seed=signing_seed,
    )
    asyncio.run(run_listener(config))


def _trust_options(opts: dict[str, Any]) -> tuple[frozenset[str] | None, str | None]:
    """``--trusted-keys`` read, ``--signing-seed`` read; one of trust or unsigned is required."""
    from hlplay.auth.keys import read_seed
    from hlplay.auth.trust import load_allowed_keys
    from hlplay.errors import HlplayError

    trusted = None
    if opts["trusted_keys"]:
        trusted = load_allowed_keys(opts["trusted_keys"])
    elif not opts["accept_unsigned"]:
        raise HlplayError(
            "hlplay listen: give --trusted-keys FILE (the deployer keys this host takes "
            "requests from; hlplay nats config --trust-dir writes them), or "
            "--accept-unsigned to take unsigned requests"
        )
    seed = read_seed(opts["signing_seed"]) if opts["signing_seed"] else None
    return trusted, seed


def _usable_dir(flag: str, path: str) -> None:
    """Fail at start, not on every deploy, when the listener cannot keep its state."""
    import os

    from hlplay.errors import HlplayError

    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HlplayError(f"{flag} {path}: cannot create: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise HlplayError(f"{flag} {path}: not writable")


@click.group()
def keys() -> None:
    """Create and rotate NKey credentials for listeners and deployers."""


@keys.command("new")
@click.argument("name")
@click.option("--dir", "directory", default=".", show_default=True, help="Where to write.")
@click.option("--force", is_flag=True, help="Replace an existing key.")
def keys_new(name: str, directory: str, force: bool) -> None:
    """Write NAME.seed (mode 0600) and NAME.pub; print the public key."""
    from hlplay.auth.keys import new_named

    click.echo(new_named(name, directory, force=force))


@keys.command("rotate")
@click.argument("name")
@click.option("--dir", "directory", default=".", show_default=True, help="Where NAME.seed is.")
@click.option(
    "--grace",
    default="7d",
    show_default=True,
    help="How long the old key stays valid (e.g. 7d, 12h, 30m; 0s: not at all).",
)
def keys_rotate(name: str, directory: str, grace: str) -> None:
    """Replace NAME's key with a new one; print the new public key.

    The old seed is kept as NAME.old-<time>.seed and its public key recorded in
    NAME.retired: `hlplay nats config` (the server's users, --trust-dir) keeps
    letting it in until the grace period ends.
    """
    from hlplay.auth.keys import parse_duration, rotate, utc_text
    from hlplay.errors import HlplayError

    try:
        seconds = parse_duration(grace)
    except HlplayError as exc:
        raise HlplayError(f"--grace: {exc}") from None
    done = rotate(name, directory, grace=seconds)
    click.echo(done.public_key)
    old = done.retired
    valid = f"valid until {utc_text(old.until)}" if seconds else "no longer valid"
    click.echo(f"retired {old.key} (kept as {done.old_seed}); {valid}", err=True)
    click.echo(
        "regenerate the server config and trust files (hlplay nats config --keys-dir "
        f"{directory} …) and give the new seed to its holders before then",
        err=True,
    )


@keys.command("prune")
@click.argument("names", nargs=-1)
@click.option("--dir", "directory", default=".", show_default=True, help="The keys directory.")
def keys_prune(names: tuple[str, ...], directory: str) -> None:
    """Delete retired keys whose grace period has ended (all names, or NAMES)."""
    from hlplay.auth.keys import prune

    for path in prune(directory, list(names) or None):
        click.echo(f"removed {path}", err=True)


@click.group()
def nats() -> None:
    """Generate nats-server configuration for the fleet."""


@nats.command("config")
@click.option(
    "-i",
    "--inventory",
    "inventory",
    multiple=True,
    default=("./inventory",),
    envvar="HLPLAY_INVENTORY",
    show_default=True,
    help="Inventory file or directory (repeatable).",
)
@click.option(
    "--keys-dir",
    default=None,
    help="Directory of <name>.pub / <name>.seed keys (hosts, admin, deployer-<tier>).",
)
@click.option(
    "--new-keys",
    is_flag=True,
    help="Create the missing keys (every listener host, admin, deployer-<tier>) in --keys-dir.",
)
@click.option("--out", default=None, help="Write the config to FILE instead of stdout.")
@click.option(
    "--trust-dir",
    default=None,
    help="Also write DIR/<tier>.deployers: the deployer keys each tier's listeners "
    "accept signed requests from (their --trusted-keys file).",
)
@click.option("--cluster-name", default=None, help="Join a NATS cluster of this name.")
@click.option("--cluster-listen", default=None, help="HOST:PORT where this server takes routes.")
@click.option(
    "--route", "routes", multiple=True, help="nats-route://HOST:PORT of a peer (repeatable)."
)
@click.option("--leaf-listen", default=None, help="HOST:PORT where this hub takes leaf nodes.")
@click.option(
    "--leaf-remote", "leaf_remotes", multiple=True, help="nats-leaf://HUB:PORT to connect to."
)
@click.option("--leaf-nkey", default=None, help="Hub: public NKey leaf nodes must sign with.")
@click.option("--leaf-seed-file", default=None, help="Site: NKey seed file to sign with.")
@click.option("--jetstream-dir", default=None, help="Enable JetStream, storing here.")
def nats_config(
    inventory: tuple[str, ...],
    keys_dir: str | None,
    new_keys: bool,
    out: str | None,
    trust_dir: str | None,
    cluster_name: str | None,
    cluster_listen: str | None,
    routes: tuple[str, ...],
    leaf_listen: str | None,
    leaf_remotes: tuple[str, ...],
    leaf_nkey: str | None,
    leaf_seed_file: str | None,
    jetstream_dir: str | None,
) -> None:
    """Write a nats-server config from the inventory: authorization, and optionally
    clustering, leaf nodes and JetStream for fleets beyond one server."""
    from hlplay.auth.keys import find_public_key, new_named
    from hlplay.auth.natsconfig import ADMIN, DEPLOYER_PREFIX, render_config, tiers_of
    from hlplay.errors import HlplayError, Location, OptionsError
    from hlplay.inventory.loader import load_inventory

    if keys_dir and not new_keys and not Path(keys_dir).is_dir():
        raise HlplayError("no such keys directory (--keys-dir)", Location(keys_dir))
    if out and (Path(out).is_dir() or not Path(out).parent.is_dir()):
        # before any key is created: a failed run leaves nothing behind
        what = "is a directory" if Path(out).is_dir() else "no such directory"
        raise HlplayError(f"cannot write: {what}", Location(out))
    inv = load_inventory(list(inventory))
    if new_keys:
        if not keys_dir:
            raise OptionsError("--new-keys needs --keys-dir")
        names = [h.name for h in inv.hosts.values() if h.has_listener and "nkey" not in h.vars]
        names += [DEPLOYER_PREFIX + t for t in tiers_of(inv)] + [ADMIN]
        for name in names:
            if find_public_key(name, keys_dir) is None:
                new_named(name, keys_dir)
                click.echo(f"created {Path(keys_dir) / name}.seed", err=True)
    from hlplay.auth.topology import render_topology, topology_from_options

    topo = topology_from_options(
        cluster_name,
        cluster_listen,
        routes,
        leaf_listen,
        leaf_remotes,
        jetstream_dir,
        leaf_nkey=leaf_nkey,
        leaf_seed_file=leaf_seed_file,
    )
    text = render_config(inv, keys_dir=keys_dir, extra=render_topology(topo))
    if out:
        try:
            Path(out).write_text(text)
        except OSError as exc:
            raise HlplayError(f"cannot write: {exc.strerror or exc}", Location(out)) from None
        click.echo(f"wrote {out}", err=True)
    else:
        click.echo(text, nl=False)
    if trust_dir:
        from hlplay.auth.trust import tier_deployers, write_trust_files

        for path in write_trust_files(trust_dir, tier_deployers(inv, keys_dir=keys_dir)):
            click.echo(f"wrote {path}", err=True)
