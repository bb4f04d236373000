"""The ``local`` transport: the controller's own subprocesses, as argument vectors."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from hlplay.inventory.model import Host, Inventory
from hlplay.proc import run_argv
from hlplay.transports.base import CommandResult, Transport


class LocalTransport(Transport):
    """Runs commands on the controller; ``become`` uses ``sudo -n`` unless already root."""

    name = "local"

    def __init__(self, inventory: Inventory | None = None) -> None:
        self.inventory = inventory

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
