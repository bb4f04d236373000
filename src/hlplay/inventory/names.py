"""Which names the inventory accepts, and host name ranges (``web[01:03]``).

Host, tier and role names end up inside NATS subjects (``deploy.<tier>.<host>``),
so each must be a single subject token; host names also name machines, so they
must be valid host name labels (no dots: put a FQDN in ``address``). Group and
variable names must be plain words so that host patterns and templates can
refer to them unambiguously.
"""

from __future__ import annotations

import re
import string

from hlplay.errors import InventoryError, Location
from hlplay.subjectrules import is_subject_token

HOST_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
GROUP_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# names that patterns or the implicit groups give a meaning of their own
RESERVED_HOSTS = frozenset({"all", "ungrouped"})
IMPLICIT_PREFIXES = ("tier_", "role_")
SPECIAL_GROUPS = ("all", "ungrouped")

_RANGE_RE = re.compile(r"\[([^\]]*)\]")


def check_host_name(name: str, loc: Location) -> None:
    if not HOST_RE.fullmatch(name):  # stricter than a subject token
        hint = ""
        if "." in name:
            hint = f"; use the short name and set address: {name}"
        elif "_" in name:
            hint = "; underscores are not allowed in host names, use '-'"
        raise InventoryError(
            f"invalid host name '{name}': use letters, digits and '-' "
            f"(at most 63, not starting or ending with '-'){hint}",
            loc,
        )
    if name in RESERVED_HOSTS:
        raise InventoryError(f"'{name}' is reserved and cannot name a host", loc)


def check_token(kind: str, name: object, loc: Location) -> str:
    """A tier or role name: one NATS subject token."""
    if not isinstance(name, str):
        raise InventoryError(f"{kind} must be a string, got {type_name(name)}", loc)
    if not is_subject_token(name):
        raise InventoryError(
            f"invalid {kind} name '{name}': use letters, digits, '_' and '-' "
            "(it becomes a NATS subject token)",
            loc,
        )
    return name


def check_group_name(name: str, loc: Location) -> None:
    if not GROUP_RE.fullmatch(name):
        raise InventoryError(f"invalid group name '{name}': use letters, digits, '_' and '-'", loc)
    if name.startswith(IMPLICIT_PREFIXES):
        raise InventoryError(
            f"group name '{name}' is reserved: tier_* and role_* groups are made "
            "from the hosts' tier and roles",
            loc,
        )


def check_var_name(name: str, loc: Location) -> None:
    if not VAR_RE.fullmatch(name):
        raise InventoryError(
            f"invalid variable name '{name}': use letters, digits and '_', "
            "not starting with a digit",
            loc,
        )


def type_name(value: object) -> str:
    """How a YAML user would call the type of ``value``."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "a number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def expand_host_range(name: str, loc: Location) -> list[str]:
    """Expand Ansible's host ranges: ``web[01:03]``, ``db[a:c]``, ``n[0:10:5]``."""
    match = _RANGE_RE.search(name)
    if match is None:
        return [name]
    head, tail = name[: match.start()], name[match.end() :]
    parts = match.group(1).split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise InventoryError(
            f"invalid host range '[{match.group(1)}]' in '{name}': expected [start:end] "
            "or [start:end:step]",
            loc,
        )
    start, end = parts[0], parts[1]
    step_text = parts[2] if len(parts) == 3 else "1"
    if not step_text.isdigit() or int(step_text) < 1:
        raise InventoryError(f"invalid step '{step_text}' in host range of '{name}'", loc)
    step = int(step_text)
    items: list[str]
    if start.isdigit() and end.isdigit():
        width = len(start) if start.startswith("0") and len(start) > 1 else 0
        lo, hi = int(start), int(end)
        if lo > hi:
            raise InventoryError(f"host range in '{name}' goes backwards", loc)
        items = [str(i).zfill(width) for i in range(lo, hi + 1, step)]
    elif (
        len(start) == 1
        and len(end) == 1
        and start in string.ascii_letters
        and end in string.ascii_letters
    ):
        if start > end:
            raise InventoryError(f"host range in '{name}' goes backwards", loc)
        items = [chr(c) for c in range(ord(start), ord(end) + 1, step)]
    else:
        raise InventoryError(
            f"invalid host range '[{match.group(1)}]' in '{name}': use numbers or single letters",
            loc,
        )
    out: list[str] = []
    for item in items:
        out.extend(expand_host_range(head + item + tail, loc))
    return out
