"""Nix daemon settings that weaken build isolation."""

from __future__ import annotations

import re
from collections.abc import Iterator

from hlplay.audit import nixast
from hlplay.audit.findings import Severity
from hlplay.audit.rules.base import LINE_START, SECURITY, FileContext, Hit, Rule, show_path, suffix

RULES = (
    Rule(
        "sandbox-disabled",
        Severity.HIGH,
        SECURITY,
        "the Nix build sandbox turned off (`nix.settings.sandbox = false`)",
        "leave nix.settings.sandbox at its default (true); for one build that needs the "
        "network, use a fixed-output derivation",
    ),
)

_EXTRA = re.compile(rb"(?im)" + LINE_START + rb"(sandbox[ \t]*=[ \t]*false)\b")


def check(f: FileContext) -> Iterator[Hit]:
    for b in f.data.bindings:
        path = b.path
        if not path:
            continue
        sandbox = (
            (suffix(path, "settings", "sandbox") and "nix" in path)
            or suffix(path, "nix", "useSandbox")
            or suffix(path, "nixConfig", "sandbox")
        )
        if sandbox:
            if nixast.literal(b.value) is False:
                yield f.hit(
                    "sandbox-disabled",
                    b.node,
                    f"{show_path(path)} = false: builds can read the host and reach the "
                    "network, so a build's result no longer depends only on its inputs",
                )
        elif path[-1] == "extraOptions" and "nix" in path:
            for byte, _ in f.string_lines(b.value, _EXTRA):
                yield f.hit_at(
                    "sandbox-disabled", byte, "`sandbox = false` in nix.extraOptions"
                )
