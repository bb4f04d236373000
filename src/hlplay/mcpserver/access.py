"""The access model of the MCP server, as in homelab-deploy's MCP mode.

The server holds a **test-tier deployer** credential and, optionally, an
**admin** credential (NKey seed files). Every tool call works on a copy of
the inventory whose ``hlplay.nats.credentials`` is the one that call is
entitled to — the inventory's own credentials are never used:

* ``deploy`` uses the test credential and may reach only the allowed tiers
  (``test`` unless ``--allow-tier`` says otherwise). A selection reaching any
  other host is refused before anything runs; the NATS server enforces the
  same thing (``deployer-test`` may only publish ``deploy.test.>``).
* ``deploy_admin`` uses the admin credential, any tier; without one it is
  refused.
* Read-only tools (discover, diff, generations) use the test credential when
  every host they touch is in an allowed tier, else the admin credential when
  there is one.

Host patterns from a tool call are checked here too: no ``@file`` terms (a
caller must not make the server read files), bounded length, no control
characters.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from hlplay.errors import HlplayError, SelectionError
from hlplay.inventory.model import Inventory
from hlplay.mcpserver.config import ServerConfig

PATTERN_MAX = 1000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class AccessRefused(HlplayError):
    """A tool call the access model does not allow; nothing was run."""


def check_pattern(pattern: str, what: str = "pattern") -> str:
    """A host pattern fit to pass to the selection language, stripped."""
    text = pattern.strip()
    if not text:
        raise SelectionError(f"{what}: empty host pattern")
    if len(text) > PATTERN_MAX:
        raise SelectionError(f"{what}: longer than {PATTERN_MAX} characters")
    if _CONTROL.search(text):
        raise SelectionError(f"{what}: control characters are not allowed")
    from hlplay.inventory.patterns import split_pattern

    for term in split_pattern(text):
        if term.lstrip("&!").startswith("@"):
            raise SelectionError(f"{what}: '{term}': @file limits are not accepted here")
    return text


def with_credentials(inventory: Inventory, seed: Path | None) -> Inventory:
    """A copy of ``inventory`` that connects to NATS with ``seed`` (None: no credentials)."""
    settings = inventory.settings
    nats = dataclasses.replace(settings.nats, credentials=str(seed) if seed else None)
    return dataclasses.replace(
        inventory, settings=dataclasses.replace(settings, nats=nats), cache={}
    )


def outside_tiers(inventory: Inventory, hosts: Iterable[str], tiers: Sequence[str]) -> list[str]:
    """The hosts of ``hosts`` (inventory hosts only) whose tier is not in ``tiers``."""
    return [h for h in hosts if h in inventory.hosts and inventory.hosts[h].tier not in tiers]


def _describe(inventory: Inventory, hosts: Sequence[str]) -> str:
    shown = ", ".join(f"{h} ({inventory.hosts[h].tier})" for h in hosts[:5])
    more = f" and {len(hosts) - 5} more" if len(hosts) > 5 else ""
    return shown + more


class AccessPolicy:
    """Which credentials a call gets, and which calls are refused."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.tiers = config.deploy_tiers

    @property
    def has_admin(self) -> bool:
        return self.config.admin_credentials is not None

    def outside(self, inventory: Inventory, hosts: Iterable[str]) -> list[str]:
        """The hosts of ``hosts`` that ``deploy`` may not reach."""
        return outside_tiers(inventory, hosts, self.tiers)

    def tier_text(self) -> str:
        return "/".join(self.tiers) + (" tier" if len(self.tiers) == 1 else " tiers")

    def for_deploy(self, inventory: Inventory, hosts: Sequence[str]) -> Inventory:
        """The inventory ``deploy`` runs with; refuses hosts outside the allowed tiers."""
        outside = outside_tiers(inventory, hosts, self.tiers)
        if outside:
            hint = (
                "use deploy_admin"
                if self.has_admin
                else "deploy_admin needs the server started with --admin-credentials"
            )
            raise AccessRefused(
                f"the selection includes {_describe(inventory, outside)}, outside the "
                f"{self.tier_text()} this tool deploys: nothing was run ({hint})"
            )
        if self.config.test_credentials is None:
            raise AccessRefused(
                "no test-tier deployer credentials: start hlplay mcp with --test-credentials SEED"
            )
        return with_credentials(inventory, self.config.test_credentials)

    def for_admin(self, inventory: Inventory) -> Inventory:
        """The inventory ``deploy_admin`` runs with; refused without admin credentials."""
        if self.config.admin_credentials is None:
            raise AccessRefused(
                "not enabled: the server was started without --admin-credentials "
                f"(deploy reaches the {self.tier_text()})"
            )
        return with_credentials(inventory, self.config.admin_credentials)

    def for_reading(self, inventory: Inventory, hosts: Iterable[str]) -> Inventory:
        """The inventory a read-only tool touching ``hosts`` runs with."""
        seed = self.config.test_credentials
        if outside_tiers(inventory, hosts, self.tiers) and self.has_admin:
            seed = self.config.admin_credentials
        return with_credentials(inventory, seed or self.config.admin_credentials)
