"""Variable scopes: which layers a template sees for a host and a task.

Precedence, highest first: magic variables (``inventory_hostname`` …), extra
vars (``-e``), facts and registered results, the task's and its blocks' vars,
``vars_files``, the play's ``vars``, the inventory's variables for the host.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hlplay import __version__
from hlplay.inventory.model import Host, Inventory
from hlplay.inventory.variables import host_variables
from hlplay.playbook.model import Play, Task
from hlplay.playbook.templating import NO_TEMPLATES, Layer, Templar, Vars, template_keys
from hlplay.playbook.validation import OMIT

if TYPE_CHECKING:
    from hlplay.engine.state import HostState, PlayContext


def controller_host(tier: str = "local") -> Host:
    """The controller itself, for ``hosts: localhost`` and ``delegate_to: localhost``."""
    return Host(name="localhost", tier=tier, transport="local", address="127.0.0.1")


def inventory_vars(inventory: Inventory, host: Host) -> dict[str, Any]:
    if host.name in inventory.hosts:
        return host_variables(inventory, host.name)
    return {
        "tier": host.tier,
        "roles": list(host.roles),
        "transport": host.transport,
        "address": host.reach,
        "ansible_host": host.reach,
        "inventory_hostname": host.name,
        "inventory_hostname_short": host.name.split(".", 1)[0],
    }


class HostVars(Mapping[str, Any]):
    """``hostvars``: every inventory host's variables, resolved on access."""

    def __init__(self, scope: PlayScope) -> None:
        self._scope = scope

    def __getitem__(self, name: str) -> Vars:
        return self._scope.host_scope(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._scope.knows(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._scope.host_names())

    def __len__(self) -> int:
        return len(self._scope.host_names())


class PlayScope:
    """Layers for one play; a host's constant layers are built once per play."""

    def __init__(
        self,
        *,
        templar: Templar,
        inventory: Inventory,
        play: Play,
        pc: PlayContext,
        states: Mapping[str, HostState],
        extra_vars: Mapping[str, Any],
        vars_files: list[dict[str, Any]],
        groups: Mapping[str, list[str]],
        playbook_dir: Path,
    ) -> None:
        self.templar = templar
        self.inventory = inventory
        self.play = play
        self.pc = pc
        self.states = states
        self._extra: Layer = (extra_vars, template_keys(extra_vars))
        # later vars_files override earlier ones: highest first
        self._vf: list[Layer] = [(d, template_keys(d)) for d in reversed(vars_files)]
        self._play: Layer = (play.vars, template_keys(play.vars))
        self._hostvars = HostVars(self)
        self._common: dict[str, Any] = {
            "groups": groups,
            "hostvars": self._hostvars,
            "play_hosts": pc.batch_names,
            "ansible_play_batch": pc.batch_names,
            "ansible_play_hosts": pc.active_names,
            "ansible_play_hosts_all": [s.name for s in pc.states],
            "ansible_play_name": play.name,
            "playbook_dir": str(playbook_dir),
            "hlplay_check_mode": pc.check_mode,
            "ansible_check_mode": pc.check_mode,
            "ansible_diff_mode": pc.diff_mode,
            "hlplay_version": __version__,
            "omit": OMIT,
        }
        self._cache: dict[str, tuple[list[Layer], list[Layer]]] = {}
        self.play_vars = Vars(
            [
                self._extra,
                *self._vf,
                self._play,
                templar.globals_layer,
                (self._common, NO_TEMPLATES),
            ],
            templar,
        )

    def _layers(self, name: str) -> tuple[list[Layer], list[Layer]]:
        got = self._cache.get(name)
        if got is not None:
            return got
        hs = self.states.get(name)
        host = hs.host if hs is not None else self.inventory.hosts[name]
        facts = hs.facts if hs is not None else {}
        inv = inventory_vars(self.inventory, host)
        magic = dict(self._common)
        magic["inventory_hostname"] = host.name
        magic["inventory_hostname_short"] = host.name.split(".", 1)[0]
        magic["group_names"] = (
            self.inventory.group_names(host.name) if host.name in self.inventory.hosts else []
        )
        magic["tier"] = host.tier
        magic["roles"] = list(host.roles)
        head: list[Layer] = [(magic, NO_TEMPLATES), self._extra, (facts, NO_TEMPLATES)]
        tail: list[Layer] = [
            *self._vf,
            self._play,
            (inv, template_keys(inv)),
            self.templar.globals_layer,
        ]
        got = (head, tail)
        self._cache[name] = got
        return got

    def vars_for(self, hs: HostState, task: Task | None = None) -> Vars:
        head, tail = self._layers(hs.name)
        if task is None or not task.vars_layers:
            return Vars([*head, *tail], self.templar)
        return Vars([*head, *task.vars_layers, *tail], self.templar)

    def host_scope(self, name: str) -> Vars:
        if not self.knows(name):
            raise KeyError(name)
        head, tail = self._layers(name)
        return Vars([*head, *tail], self.templar)

    def knows(self, name: str) -> bool:
        return name in self.states or name in self.inventory.hosts

    def host_names(self) -> list[str]:
        names = list(self.inventory.hosts)
        names.extend(n for n in self.states if n not in self.inventory.hosts)
        return names
