"""Network exposure: the firewall switched off, services on every interface
behind an opened port."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from hlplay.audit import nixast
from hlplay.audit.findings import Severity
from hlplay.audit.model import Binding
from hlplay.audit.rules.base import SECURITY, FileContext, Hit, Rule, show_path, suffix

RULES = (
    Rule(
        "firewall-disabled",
        Severity.HIGH,
        SECURITY,
        "`networking.firewall.enable = false`",
        "keep the firewall on and open only the ports a service needs "
        "(networking.firewall.allowedTCPPorts or the service's openFirewall)",
    ),
    Rule(
        "listen-all-open-port",
        Severity.MEDIUM,
        SECURITY,
        "a service listening on 0.0.0.0 in a file that also opens firewall ports",
        "bind the service to 127.0.0.1 or a private interface address, or open the port "
        "only on a trusted interface (networking.firewall.interfaces.<if>.allowedTCPPorts)",
    ),
)

_PORT_LISTS = frozenset(
    {"allowedTCPPorts", "allowedUDPPorts", "allowedTCPPortRanges", "allowedUDPPortRanges"}
)
_LISTEN_NAME = re.compile(r"(?i)(address|addresses|addr|host|bind|listen)$")
_ANY = re.compile(r"^(0\.0\.0\.0|::|\[::\]|\*)(:\d+)?$")


def check(f: FileContext) -> Iterator[Hit]:
    opener: Binding | None = None
    listeners: list[tuple[Binding, str]] = []
    for b in f.data.bindings:
        if not b.path:
            continue
        last = b.path[-1]
        if suffix(b.path, "networking", "firewall", "enable"):
            if nixast.literal(b.value) is False:
                yield f.hit(
                    "firewall-disabled",
                    b.node,
                    f"{show_path(b.path)} = false: every listening service is reachable",
                )
        elif last in _PORT_LISTS:
            if opener is None and _opens(nixast.literal(b.value)):
                opener = b
        elif last == "openFirewall":
            if opener is None and nixast.literal(b.value) is True:
                opener = b
        elif _LISTEN_NAME.search(last):
            address = _any_address(nixast.literal(b.value))
            if address:
                listeners.append((b, address))
    if opener is None:
        return
    line = opener.node.start_point[0] + 1
    for b, address in listeners:
        yield f.hit(
            "listen-all-open-port",
            b.node,
            f"{show_path(b.path)} = \"{address}\" listens on every interface, and this file "
            f"opens the firewall ({show_path(opener.path)}, line {line})",
        )


def _opens(value: Any) -> bool:
    # an empty list opens nothing; a computed list may open anything
    return not (isinstance(value, list) and not value)


def _any_address(value: Any) -> str:
    values = value if isinstance(value, list) else [value]
    for v in values:
        if isinstance(v, str) and _ANY.match(v.strip()):
            return v
    return ""
