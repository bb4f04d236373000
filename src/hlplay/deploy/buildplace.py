"""Where the Nix executor builds a host's system, and how the closure gets there.

The context options come from the host's settings (``hlplay_build_on``, see
:mod:`hlplay.inventory.hostsettings`), never from a request:

``build_on``
    ``host`` (the default): ``nix build`` runs on the host itself.
    ``controller``: it runs where the executor runs, and ``nix copy --to
    <copy_to>`` sends the closure to the host.
``build_store``
    with ``build_on: controller``, a build host's store (``ssh-ng://…``):
    the controller evaluates, Nix builds there (``nix build --eval-store auto
    --store <build_store>``), and the closure comes back to the controller
    before it goes to the host, as nixos-rebuild's ``--build-host`` does. Nix
    2.8 takes one ``NIX_SSHOPTS`` per command, so one ``nix copy`` from the
    build host to the target could not reach two hosts with different ports
    or keys.
``host_is_controller``
    false where the executor runs on the controller for another machine (an
    SSH host): a flake that is a checkout on the controller cannot be built
    there. A listener leaves it unset: its flake is the host's own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hlplay.nix import flakeref, system
from hlplay.proc import CommandResult, CommandRunner


def option(options: Mapping[str, Any], key: str) -> str | None:
    value = options.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise system.NixOpError(f"{key} must be a string")
    return value


def unreadable_flake(flake: str, hostname: str, options: Mapping[str, Any]) -> str | None:
    """Why the host cannot build ``flake`` itself, or None when it can.

    Only the host's own build is at stake: with ``build_on: controller`` (a
    build host included) the controller evaluates, so its checkouts serve.
    """
    if options.get("build_on", "host") != "host" or options.get("host_is_controller") is not False:
        return None
    if flakeref.controller_checkout(flake) is None:
        return None
    return (
        f"the flake {flake} is a checkout on the controller; host {hostname} cannot read it: "
        "set hlplay_build_on: controller or give a flake URL the host can fetch"
    )


def runner_with_sshopts(sshopts: str | None) -> CommandRunner:
    """The controller's own commands, with ``NIX_SSHOPTS`` for Nix's SSH stores."""

    async def run(argv: Sequence[str], timeout: float | None) -> CommandResult:
        from hlplay.proc import run_argv

        env = {"NIX_SSHOPTS": sshopts} if sshopts else None
        return await run_argv(argv, timeout=timeout, env=env)

    return run


async def build_on_store(
    runner: CommandRunner, installable: str, store: str, *, timeout: float | None
) -> str:
    """Build ``installable`` in another store (a build host), evaluating here."""
    if store.startswith("-") or any(c.isspace() for c in store):
        raise system.NixOpError(f"invalid store URI {store!r}")
    argv = [
        *system.NIX,
        "build",
        "--json",
        "--no-link",
        # the drvs go there and are built there; evaluation stays here
        "--eval-store",
        "auto",
        "--store",
        store,
        installable,
    ]
    res = await runner(argv, timeout)
    if res.rc != 0:
        raise system.NixOpError(
            system.tail_message(f"nix build {installable} on {store}", res), res
        )
    return system.parse_build_json(res.stdout)
