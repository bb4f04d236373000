"""The ``local`` transport: the controller's own subprocesses, as argument vectors.

Deploy actions for ``transport: local`` hosts run the host-side pipeline
here (:class:`~hlplay.transports.direct.DirectTransport`), each host with the
profile, state directory and flake of its own settings (``hlplay_profile``,
``hlplay_state_dir``, ``hlplay_flake``… on the host, a group or ``all``): the
lab and the tests keep several such hosts on one machine.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from hlplay.inventory.model import Host, Inventory
from hlplay.proc import run_argv
from hlplay.transports.base import CommandResult
from hlplay.transports.direct import DirectTransport


class LocalTransport(DirectTransport):
    """Runs commands on the controller; ``become`` uses ``sudo -n`` unless already root."""

    name = "local"

    def __init__(self, inventory: Inventory | None = None, *, flake: str | None = None) -> None:
        super().__init__(inventory)
        self.flake = flake

    async def run(
        self,
        host: Host,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        become: bool = False,
    ) -> CommandResult:
        args = [str(a) for a in argv]
        if become and os.geteuid() != 0:
            args = ["sudo", "-n", "--", *args]
        return await run_argv(args, timeout=timeout, stdin=stdin, env=env)

    async def facts(self, host: Host, *, timeout: float | None = None) -> dict[str, Any]:
        import asyncio

        from hlplay.deploy.facts import collect_facts, disk_paths_of

        settings = self.settings(host)
        facts = await asyncio.wait_for(
            collect_facts(
                self.context(host),
                self.executor_of(host),
                units_dir=settings.units_dir,
                disk_paths=disk_paths_of(self.inventory_vars(host)),
            ),
            timeout,
        )
        facts["transport"] = self.name
        return facts

    def inventory_vars(self, host: Host) -> dict[str, Any]:
        from hlplay.inventory.hostsettings import merged_vars

        if self.inventory is None:
            return dict(host.vars)
        return merged_vars(self.inventory, host)
