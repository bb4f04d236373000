"""A host's deploy settings (``hlplay_*`` variables), read once and typed.

They are ordinary variables: set on a host, a group or ``all``, merged with
Ansible's precedence like every other variable, so that group_vars apply to
every transport alike (SSH, local, and what the controller tells a listener).
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hlplay.errors import InventoryError, Location, did_you_mean
from hlplay.inventory.model import Host, Inventory

#: ``hlplay_build_on`` values besides the name of a build host.
BUILD_PLACES = ("host", "controller")


class BuildOnError(InventoryError, ValueError):
    """A host's ``hlplay_build_on``/``hlplay_copy_to`` cannot be used.

    A ValueError too: transports turn those into the host's failed outcome
    instead of ending the whole run.
    """


@dataclass(frozen=True)
class BuildPlace:
    """Where a host's system is built and how its closure reaches it."""

    build_on: str = "host"  # "host", "controller", or a build host's name
    #: ``nix copy --to`` destination: the host's store, from its SSH settings
    copy_to: str | None = None
    nix_sshopts: str | None = None
    substitute_on_destination: bool = False
    #: a build host's store (``ssh-ng://…``) and the SSH options to reach it
    build_store: str | None = None
    build_sshopts: str | None = None


@dataclass(frozen=True)
class HostSettings:
    """Where a host's system lives and how its pipeline runs."""

    flake: str
    profile: str
    toplevel_attr: str
    state_dir: str | None = None
    executor: str | None = None  # None: the default pipeline
    units_dir: str | None = None
    #: host-set context options of the pipeline (``activation_env``…)
    executor_options: dict[str, Any] = field(default_factory=dict)
    build: BuildPlace = field(default_factory=BuildPlace)
    #: the host is the controller itself (``transport: local``): it reads
    #: whatever the controller reads, checkouts included
    is_controller: bool = False
    #: generations the profile keeps (``hlplay_keep_generations``); None: the
    #: pipeline's default
    keep_generations: int | None = None

    def context_options(self) -> dict[str, Any]:
        """The pipeline's context options: the host's own, never a request's."""
        options = dict(self.executor_options)
        if self.units_dir:
            options.setdefault("units_dir", self.units_dir)
        b = self.build
        if b.build_on != "host":
            options["build_on"] = "controller"
            extra = {
                "copy_to": b.copy_to,
                "nix_sshopts": b.nix_sshopts,
                "build_store": b.build_store,
                "build_sshopts": b.build_sshopts,
            }
            options.update({k: v for k, v in extra.items() if v})
            if b.substitute_on_destination:
                options["substitute_on_destination"] = True
        options.setdefault("host_is_controller", self.is_controller)
        if self.keep_generations is not None:
            options["keep_generations"] = self.keep_generations
        return options


def merged_vars(inventory: Inventory, host: Host) -> dict[str, Any]:
    """The host's variables with its groups' (a host made up by a caller: its own)."""
    from hlplay.inventory.variables import host_variables

    if host.name not in inventory.hosts:
        return dict(host.vars)
    return host_variables(inventory, host.name)


def host_settings(
    inventory: Inventory, host: Host, hvars: Mapping[str, Any] | None = None
) -> HostSettings:
    """``host``'s settings from its merged variables, with the inventory's defaults."""
    v = merged_vars(inventory, host) if hvars is None else hvars
    nix = inventory.settings.nix
    raw = v.get("hlplay_executor_options") or {}
    options = dict(raw) if isinstance(raw, Mapping) else {}
    state_dir = v.get("hlplay_state_dir")
    units_dir = v.get("hlplay_units_dir")
    executor = v.get("hlplay_executor")
    return HostSettings(
        flake=str(v.get("hlplay_flake") or nix.flake),
        profile=str(v.get("hlplay_profile") or nix.profile),
        toplevel_attr=str(v.get("hlplay_toplevel_attr") or nix.toplevel_attr),
        state_dir=str(state_dir) if state_dir else None,
        executor=str(executor) if executor else None,
        units_dir=str(units_dir) if units_dir else None,
        executor_options=options,
        build=build_place(inventory, host, v),
        is_controller=is_controller(host),
        keep_generations=keep_generations(inventory, host, v),
    )


class KeepGenerationsError(InventoryError, ValueError):
    """A host's ``hlplay_keep_generations`` is not a number of at least 2."""


def keep_generations(inventory: Inventory, host: Host, hvars: Mapping[str, Any]) -> int | None:
    """``hlplay_keep_generations``, checked: at least 2, so a rollback always has its target."""
    raw = hvars.get("hlplay_keep_generations")
    if raw is None:
        return None
    value = int(raw) if isinstance(raw, str) and raw.strip().isdigit() else raw
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise KeepGenerationsError(
            f"'hlplay_keep_generations' of host '{host.name}' must be a whole number of at "
            f"least 2 (the current generation and the one a rollback returns to), got {raw!r}",
            _where(inventory, host, "hlplay_keep_generations"),
        )
    return value


def is_controller(host: Host) -> bool:
    """Whether ``host`` is the controller's own machine, its files readable as they are.

    A local host is; so is an SSH host at a loopback address (the lab, the
    tests). Anything else, NATS hosts included, is another machine.
    """
    if host.transport == "local":
        return True
    if host.transport != "ssh":
        return False
    import ipaddress

    if host.reach == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.reach.strip("[]")).is_loopback
    except ValueError:
        return False


def build_place(inventory: Inventory, host: Host, hvars: Mapping[str, Any]) -> BuildPlace:
    """``host``'s ``hlplay_build_on`` and friends, checked; errors name the host."""
    raw = hvars.get("hlplay_build_on", "host")
    if raw is None:
        raw = "host"
    if (
        raw == "host"
        and "hlplay_copy_to" not in hvars
        and not hvars.get("hlplay_substitute_on_destination")
    ):
        return BuildPlace()  # the common case, without looking for where it is set
    where = _where(inventory, host, "hlplay_build_on")
    if not isinstance(raw, str) or not raw:
        raise BuildOnError(
            f"'hlplay_build_on' of host '{host.name}' must be host, controller or the "
            f"name of a build host, got {raw!r}",
            where,
        )
    sub = _flag(inventory, host, hvars, "hlplay_substitute_on_destination")
    copy_to = hvars.get("hlplay_copy_to")
    if copy_to is not None and (
        not isinstance(copy_to, str)
        or not copy_to
        or copy_to.startswith("-")
        or any(c.isspace() for c in copy_to)
    ):
        raise BuildOnError(
            f"'hlplay_copy_to' of host '{host.name}' must be a store URI such as "
            f"ssh-ng://root@{host.reach}, got {copy_to!r}",
            _where(inventory, host, "hlplay_copy_to"),
        )
    if raw == "host" or (raw == "controller" and host.transport == "local"):
        # a local host is the controller: building "there" is building here
        return BuildPlace()
    if host.transport == "nats":
        raise BuildOnError(
            f"'hlplay_build_on' of host '{host.name}' is '{raw}', but a NATS host's "
            "listener builds for itself: leave hlplay_build_on at host, or deploy it over SSH",
            where,
        )
    if raw != "controller":
        builder = inventory.hosts.get(raw)
        if builder is None or raw == host.name:
            why = "itself" if raw == host.name else "no host of the inventory"
            raise BuildOnError(
                f"'hlplay_build_on' of host '{host.name}' is '{raw}', {why}: use host, "
                "controller or the name of another host that builds"
                + (did_you_mean(raw, [*BUILD_PLACES, *inventory.hosts]) if builder is None else ""),
                where,
            )
        if builder.transport != "ssh":
            local = builder.transport == "local"
            hint = "; for the controller itself, say controller" if local else ""
            raise BuildOnError(
                f"'hlplay_build_on' of host '{host.name}': build host '{raw}' must be an SSH "
                f"host (its transport is {builder.transport}{hint})",
                where,
            )
    if host.transport == "local":
        # The build host's closure comes back to the controller's store, which
        # is this host's: the copy after it has nothing left to do.
        copy_to = copy_to or "auto"
    return BuildPlace(
        build_on=raw,
        copy_to=copy_to or store_uri(host),
        nix_sshopts=nix_sshopts(host) if host.transport == "ssh" else None,
        substitute_on_destination=sub,
        build_store=None if raw == "controller" else store_uri(inventory.hosts[raw]),
        build_sshopts=None if raw == "controller" else nix_sshopts(inventory.hosts[raw]),
    )


def store_uri(host: Host) -> str:
    """The host's Nix store as ``nix copy`` reaches it over SSH: ``ssh-ng://user@address``."""
    user = host.ssh.user or getpass.getuser()
    return f"ssh-ng://{user}@{host.reach}"


def nix_sshopts(host: Host) -> str:
    """``NIX_SSHOPTS`` that reach ``host`` as the SSH transport does.

    Nix 2.8's store URIs carry no port, so the port goes here, with the key
    and known_hosts the transport uses; BatchMode keeps a missing key from
    prompting a controller that has no terminal.
    """
    ssh = host.ssh
    opts = ["-p", str(ssh.port), "-o", "BatchMode=yes"]
    opts += ["-o", f"ConnectTimeout={max(1, round(ssh.connect_timeout))}"]
    if ssh.key:
        opts += ["-i", ssh.key, "-o", "IdentitiesOnly=yes"]
    if not ssh.host_key_checking:
        opts += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
    elif ssh.known_hosts:
        opts += ["-o", f"UserKnownHostsFile={ssh.known_hosts}"]
    if any(any(c.isspace() for c in o) for o in opts):
        # NIX_SSHOPTS is split at white space: such a path cannot be passed.
        raise BuildOnError(
            f"host '{host.name}': the SSH key or known_hosts path has white space, "
            "which NIX_SSHOPTS cannot carry; set hlplay_copy_to and use an SSH config",
            host.location,
        )
    return " ".join(opts)


def _flag(inventory: Inventory, host: Host, hvars: Mapping[str, Any], key: str) -> bool:
    value = hvars.get(key, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "false", "no"):
        return value.lower() in ("true", "yes")
    raise BuildOnError(
        f"'{key}' of host '{host.name}' must be true or false, got {value!r}",
        _where(inventory, host, key),
    )


def _where(inventory: Inventory, host: Host, key: str) -> Location | None:
    """Where ``key`` of ``host`` is set, most specific first (None: not known)."""
    from hlplay.yamlsrc import YMap

    layers: list[Any] = [inventory.host_vars_files.get(host.name), host.vars]
    for group in reversed(inventory.group_chain.get(host.name, [])):
        layers.append(inventory.group_vars_files.get(group))
        g = inventory.groups.get(group)
        layers.append(g.vars if g is not None else None)
    for layer in layers:
        if isinstance(layer, Mapping) and key in layer:
            return layer.loc_of(key) if isinstance(layer, YMap) else host.location
    return host.location
