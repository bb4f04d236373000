"""The inventory's data model: hosts, groups and inventory-wide settings.

The loader (``loader.py``) builds these from YAML; everything downstream
(selection, target compilation, the engine, transports) reads them and never
mutates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from hlplay.errors import Location

TransportName = Literal["nats", "ssh", "local"]
TRANSPORTS: tuple[TransportName, ...] = ("nats", "ssh", "local")
#: The deploy protocol a host's listener speaks: hlplay's, or homelab-deploy's
#: (the seed's four actions, no hlplay-only request fields).
ProtocolName = Literal["hlplay", "homelab-deploy"]
PROTOCOLS: tuple[ProtocolName, ...] = ("hlplay", "homelab-deploy")

DEFAULT_PROFILE = "/nix/var/nix/profiles/system"
DEFAULT_TOPLEVEL_ATTR = "nixosConfigurations.{host}.config.system.build.toplevel"


@dataclass(frozen=True)
class SubjectTemplates:
    """NATS subject templates, as in homelab-deploy (``<tier>``, ``<hostname>``, ``<role>``)."""

    host: str = "deploy.<tier>.<hostname>"
    tier: str = "deploy.<tier>.all"
    role: str = "deploy.<tier>.role.<role>"
    discover: str = "deploy.discover"
    facts: str = "hlplay.facts.<tier>.<hostname>"
    confirm: str = "hlplay.confirm.<tier>.<hostname>"


@dataclass(frozen=True)
class NatsSettings:
    """How the controller reaches the NATS server."""

    urls: tuple[str, ...] = ("nats://127.0.0.1:4222",)
    credentials: str | None = None  # path to an NKey seed file
    subjects: SubjectTemplates = field(default_factory=SubjectTemplates)
    timeout: float = 900.0  # seconds to wait for final statuses of a deploy
    connect_timeout: float = 5.0
    # prefix of the controller's reply subjects (``<prefix>.<uuid>[.<index>]``);
    # None: the client's own inbox (``_INBOX.…``). homelab-deploy's server
    # permissions expect ``deploy.responses``.
    reply_prefix: str | None = None
    # directory of the listeners' public keys (``<host>.pub`` or ``.seed``), which
    # their answers must verify against; None: the directory of ``credentials``
    keys: str | None = None
    # seconds a host may stay silent after a request before it is asked for its
    # facts; one that has started is asked after five times that of silence
    liveness: float = 3.0


@dataclass(frozen=True)
class NixSettings:
    """Where host configurations come from and where systems are installed."""

    flake: str = "."  # the configuration flake (a git repository)
    toplevel_attr: str = DEFAULT_TOPLEVEL_ATTR  # ``{host}`` is replaced by the host name
    profile: str = DEFAULT_PROFILE


@dataclass(frozen=True)
class MonitoringSettings:
    prometheus_url: str | None = None
    alertmanager_url: str | None = None


@dataclass(frozen=True)
class HostDefaults:
    """Defaults for hosts that do not say otherwise (``hlplay: defaults:``)."""

    tier: str = "default"
    # None: ``nats`` for hosts of the native layout, ``ssh`` for Ansible's layout
    transport: TransportName | None = None
    # the lowest layer of every host's SSH settings; vars and ``ssh:`` blocks override
    ssh: SshSettings = field(default_factory=lambda: SshSettings())


@dataclass(frozen=True)
class Settings:
    """Inventory-wide settings (the ``hlplay:`` section of an inventory)."""

    nats: NatsSettings = field(default_factory=NatsSettings)
    nix: NixSettings = field(default_factory=NixSettings)
    monitoring: MonitoringSettings = field(default_factory=MonitoringSettings)
    defaults: HostDefaults = field(default_factory=HostDefaults)


@dataclass(frozen=True)
class SshSettings:
    user: str | None = None
    port: int = 22
    key: str | None = None  # private key file; None = keys from the agent / defaults
    known_hosts: str | None = None  # None = ~/.ssh/known_hosts
    host_key_checking: bool = True
    become: bool = False
    become_user: str = "root"
    connect_timeout: float = 10.0


@dataclass(frozen=True)
class Host:
    """One machine of the fleet."""

    name: str
    tier: str
    roles: tuple[str, ...] = ()
    address: str | None = None  # defaults to ``name`` where needed
    transport: TransportName = "nats"
    protocol: ProtocolName = "hlplay"
    ssh: SshSettings = field(default_factory=SshSettings)
    vars: dict[str, Any] = field(default_factory=dict)  # the host's own vars only
    location: Location | None = None

    @property
    def reach(self) -> str:
        """The address to connect to."""
        return self.address or self.name

    @property
    def has_listener(self) -> bool:
        return self.transport == "nats"

    @property
    def homelab_deploy(self) -> bool:
        """The host's listener is homelab-deploy's: base actions only, no hlplay fields."""
        return self.protocol == "homelab-deploy"


@dataclass
class Group:
    """A named set of hosts; ``children`` are other groups' names."""

    name: str
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)
    location: Location | None = None
    implicit: bool = False  # tier_* / role_* / all / ungrouped


@dataclass
class Inventory:
    """A loaded inventory. ``hosts`` keeps file order, which selections preserve."""

    hosts: dict[str, Host]
    groups: dict[str, Group]
    settings: Settings = field(default_factory=Settings)
    sources: tuple[str, ...] = ()
    # per host: group names from the most general to the most specific,
    # the order in which their vars merge (filled in by the loader)
    group_chain: dict[str, list[str]] = field(default_factory=dict)
    # variables from group_vars/ and host_vars/ files, by group or host name
    group_vars_files: dict[str, dict[str, Any]] = field(default_factory=dict)
    host_vars_files: dict[str, dict[str, Any]] = field(default_factory=dict)
    # every group's hosts, descendants' included, in inventory order (filled by the loader)
    members: dict[str, list[str]] = field(default_factory=dict)
    # indexes derived from the above, built on first use (selection, target compilation)
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def host(self, name: str) -> Host:
        return self.hosts[name]

    def group_names(self, host: str) -> list[str]:
        """Groups a host belongs to, Ansible's ``group_names`` (without ``all``)."""
        return sorted(g for g in self.group_chain.get(host, []) if g != "all")

    def groups_map(self) -> dict[str, list[str]]:
        """Ansible's ``groups`` magic variable: every group to its hosts."""
        if self.members:
            return {name: list(hosts) for name, hosts in self.members.items()}
        out: dict[str, list[str]] = {name: [] for name in self.groups}
        for host in self.hosts:
            for g in self.group_chain.get(host, []):
                out.setdefault(g, []).append(host)
        return out
