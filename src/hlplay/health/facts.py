"""Facts of one host, through whichever transport reaches it.

Every transport returns the same shape (:data:`hlplay.deploy.facts.FACT_KEYS`):
listener hosts produce it themselves and answer over NATS, SSH and
``transport: local`` hosts are read by the same code through their commands.
What is left here is telling a host that does not answer from one that does.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hlplay.errors import HlplayError
from hlplay.inventory.model import Host, Inventory
from hlplay.transports.base import Transport, Unreachable


async def gather_facts(
    transport: Transport, host: Host, inventory: Inventory, *, timeout: float = 10.0
) -> dict[str, Any]:
    """The host's facts; raises :class:`Unreachable` when it does not answer in time."""
    try:
        return await asyncio.wait_for(transport.facts(host, timeout=timeout), timeout + 2)
    except TimeoutError:
        raise Unreachable(f"no facts within {timeout:g}s") from None
    except HlplayError as exc:  # a transport that cannot start (credentials, config)
        raise Unreachable(str(exc)) from None
