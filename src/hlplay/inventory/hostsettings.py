"""A host's deploy settings (``hlplay_*`` variables), read once and typed.

They are ordinary variables: set on a host, a group or ``all``, merged with
Ansible's precedence like every other variable, so that group_vars apply to
every transport alike (SSH, local, and what the controller tells a listener).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hlplay.inventory.model import Host, Inventory


@dataclass(frozen=True)
class HostSettings:
    """Where a host's system lives and how its pipeline runs."""

    flake: str
    profile: str
    toplevel_attr: str
    state_dir: str | None = None
    executor: str | None = None  # None: the default pipeline
    units_dir: str | None = None
    #: host-set context options of the pipeline (``activation_env``, ``build_on``…)
    executor_options: dict[str, Any] = field(default_factory=dict)

    def context_options(self) -> dict[str, Any]:
        """The pipeline's context options: the host's own, never a request's."""
        options = dict(self.executor_options)
        if self.units_dir:
            options.setdefault("units_dir", self.units_dir)
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
    )
