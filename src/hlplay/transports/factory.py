"""One transport instance per kind, picked by each host's ``transport``.

The SSH and NATS transports are imported only when a host needs them, so a
run over local hosts (or controller-side modules only) never loads asyncssh
or nats-py.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from hlplay.errors import HlplayError
from hlplay.inventory.model import Host, Inventory
from hlplay.transports.base import Transport

_CLASSES: dict[str, tuple[str, str]] = {
    "local": ("hlplay.transports.local", "LocalTransport"),
    "ssh": ("hlplay.transports.ssh", "SshTransport"),
    "nats": ("hlplay.transports.nats", "NatsTransport"),
}


class TransportUnavailable(HlplayError):
    """A host's transport cannot be loaded (missing dependency, broken module)."""


class TransportPool:
    """Transports for one run; ``close()`` releases their connections."""

    def __init__(
        self, inventory: Inventory, overrides: Mapping[str, Transport] | None = None
    ) -> None:
        self.inventory = inventory
        self._instances: dict[str, Transport] = dict(overrides or {})
        self._owned: list[Transport] = []  # created here, so closed here

    def for_kind(self, kind: str) -> Transport:
        found = self._instances.get(kind)
        if found is not None:
            return found
        entry = _CLASSES.get(kind)
        if entry is None:
            raise TransportUnavailable(f"unknown transport '{kind}'")
        module_name, attr = entry
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise TransportUnavailable(f"the {kind} transport is not available: {exc}") from None
        transport: Transport = cls(self.inventory)
        self._instances[kind] = transport
        self._owned.append(transport)
        return transport

    def for_host(self, host: Host) -> Transport:
        """The transport that reaches ``host``."""
        return self.for_kind(host.transport)

    def local(self) -> Transport:
        """The controller's own transport (controller-side modules, delegate_to localhost)."""
        return self.for_kind("local")

    def forged_answers(self) -> list[dict[str, Any]]:
        """Answers the run's transports refused to believe (a reply that did not
        prove it came from the host it names), for the report."""
        out: list[dict[str, Any]] = []
        for transport in self._instances.values():
            found = getattr(transport, "forged", None)
            if isinstance(found, list):
                out.extend(dict(f) for f in found if isinstance(f, dict))
        return out

    async def close(self) -> None:
        owned, self._owned = self._owned, []
        self._instances = {k: t for k, t in self._instances.items() if t not in owned}
        for transport in owned:
            try:
                await transport.close()
            except Exception:  # noqa: S112 - closing one must not stop closing the others
                continue
