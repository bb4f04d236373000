"""Where the lab keeps its state, derived from the lab inventory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from hlplay.errors import HlplayError
from hlplay.inventory.model import Host, Inventory

LAB_DIR_VAR = "hlplay_lab_dir"


def inventory_dir(inventory: Inventory) -> Path:
    """The directory of the inventory's first source file (or the source itself)."""
    if not inventory.sources:
        return Path.cwd()
    first = Path(inventory.sources[0])
    return first if first.is_dir() else first.parent


@dataclass(frozen=True)
class LabLayout:
    root: Path
    nats_port: int

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def config(self) -> Path:
        """The configuration flake (a git repository)."""
        return self.root / "config"

    @property
    def nats_dir(self) -> Path:
        return self.root / "nats"

    @property
    def ssh_dir(self) -> Path:
        return self.root / "ssh"

    @property
    def nix_conf(self) -> Path:
        return self.root / "nix.conf"

    def host_dir(self, host: str) -> Path:
        return self.root / "hosts" / host

    def profile(self, host: str) -> Path:
        return self.host_dir(host) / "profile" / "system"

    def state_dir(self, host: str) -> Path:
        return self.host_dir(host) / "state"

    def units_dir(self, host: str) -> Path:
        return self.host_dir(host) / "units"

    def activation_log(self, host: str) -> Path:
        return self.host_dir(host) / "activations.log"

    def seed(self, name: str) -> Path:
        return self.keys / f"{name}.seed"

    def dirs(self) -> list[Path]:
        return [self.root, self.keys, self.pids, self.logs, self.nats_dir, self.ssh_dir]


def layout_for(inventory: Inventory) -> LabLayout:
    """Compute the lab layout; the inventory must name ``hlplay_lab_dir``."""
    all_group = inventory.groups.get("all")
    raw = os.environ.get("HLPLAY_LAB_DIR") or (
        all_group.vars.get(LAB_DIR_VAR) if all_group else None
    )
    if not raw:
        raise HlplayError(
            f"this inventory is not a lab inventory: it does not set '{LAB_DIR_VAR}' "
            "(use -i inventory/lab)"
        )
    root = Path(str(raw))
    if not root.is_absolute():
        root = inventory_dir(inventory) / root
    urls = inventory.settings.nats.urls
    port = urlparse(urls[0]).port if urls else None
    return LabLayout(root=root.resolve(), nats_port=port or 4222)


def nats_hosts(inventory: Inventory) -> list[Host]:
    return [h for h in inventory.hosts.values() if h.transport == "nats"]


def ssh_hosts(inventory: Inventory) -> list[Host]:
    return [h for h in inventory.hosts.values() if h.transport == "ssh"]


#: The ports ``inventory/lab`` gives the lab's nats-server and sshd.
LAB_NATS_PORT, LAB_SSH_PORT = 4322, 4323


def copy_inventory(source: Path, root: Path, nats_port: int, ssh_port: int) -> Path:
    """A copy of a lab inventory under ``root/inventory/lab`` using other ports.

    Its state directory (``hlplay_lab_dir``, relative) follows it, so the copy
    is a second lab that runs beside the first (tests and benchmarks use it).
    """
    import re
    import shutil

    dest = root / "inventory" / "lab"
    shutil.copytree(source, dest)
    for path in dest.rglob("*.yml"):
        text = re.sub(rf"\b{LAB_NATS_PORT}\b", str(nats_port), path.read_text())
        path.write_text(re.sub(rf"\b{LAB_SSH_PORT}\b", str(ssh_port), text))
    return dest
