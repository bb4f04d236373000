"""Facts of one host, through whichever transport reaches it.

Listener hosts answer a facts request over NATS; SSH hosts are read with plain
commands; ``transport: local`` hosts are read in-process, with the same code a
listener runs. Every path returns the listener's fact shape.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from hlplay.errors import HlplayError
from hlplay.inventory.model import Host, Inventory
from hlplay.transports.base import NotSupported, Transport, Unreachable


async def gather_facts(
    transport: Transport, host: Host, inventory: Inventory, *, timeout: float = 10.0
) -> dict[str, Any]:
    """The host's facts; raises :class:`Unreachable` when it does not answer in time."""
    try:
        facts = await asyncio.wait_for(transport.facts(host, timeout=timeout), timeout + 2)
    except TimeoutError:
        raise Unreachable(f"no facts within {timeout:g}s") from None
    except HlplayError as exc:  # a transport that cannot start (credentials, config)
        raise Unreachable(str(exc)) from None
    if facts.get("cpus") is None and host.transport != "nats":
        facts["cpus"] = await _nproc(transport, host, timeout)
    return facts


def disk_paths(host_vars: Mapping[str, Any]) -> list[str]:
    """``hlplay_disk_paths`` (a list), or the root file system."""
    paths = host_vars.get("hlplay_disk_paths")
    if isinstance(paths, Sequence) and not isinstance(paths, str | bytes) and paths:
        return [str(p) for p in paths]
    return ["/"]


async def _nproc(transport: Transport, host: Host, timeout: float) -> int | None:
    with contextlib.suppress(NotSupported, Unreachable, TimeoutError, OSError):
        res = await transport.run(host, ["nproc"], timeout=timeout)
        if res.rc == 0 and res.stdout.strip().isdigit():
            return int(res.stdout.strip())
    return None
