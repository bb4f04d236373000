"""Click options shared by every command that reads the inventory.

The flag names are Ansible's (``-i/--inventory``, ``-l/--limit``,
``-e/--extra-vars``), so muscle memory carries over. The options hand the raw
strings to the command; turn them into data with::

    from hlplay.inventory.loader import load_inventory
    from hlplay.inventory.patterns import apply_limit, select_hosts
    from hlplay.inventory.variables import parse_extra_vars

    inv = load_inventory(inventory)            # tuple[str, ...] from inventory_option
    extra = parse_extra_vars(extra_vars)       # tuple[str, ...] from extra_vars_option
    hosts = apply_limit(inv, select_hosts(inv, "all"), limit)

This module imports click only, so importing it keeps ``hlplay --help`` fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_INVENTORY = "./inventory"
INVENTORY_ENVVAR = "HLPLAY_INVENTORY"


def inventory_option(func: F) -> F:
    """``-i/--inventory PATH`` (repeatable) -> parameter ``inventory: tuple[str, ...]``.

    Defaults to ``./inventory``; ``HLPLAY_INVENTORY`` may hold several paths
    separated by ``:``.
    """
    return click.option(
        "-i",
        "--inventory",
        "inventory",
        multiple=True,
        type=click.Path(path_type=str),
        default=(DEFAULT_INVENTORY,),
        envvar=INVENTORY_ENVVAR,
        show_default=True,
        help="Inventory file or directory (repeatable).",
    )(func)


def limit_option(func: F) -> F:
    """``-l/--limit PATTERN`` -> parameter ``limit: str | None``."""
    return click.option(
        "-l",
        "--limit",
        "limit",
        default=None,
        metavar="PATTERN",
        help="Further limit the selected hosts: 'web*,&tier=test', '!db1', '@file'.",
    )(func)


def extra_vars_option(func: F) -> F:
    """``-e/--extra-vars VARS`` (repeatable) -> parameter ``extra_vars: tuple[str, ...]``."""
    return click.option(
        "-e",
        "--extra-vars",
        "extra_vars",
        multiple=True,
        metavar="VARS",
        help="Extra variables: key=value pairs, a JSON/YAML object, or @file (repeatable).",
    )(func)


def json_option(func: F) -> F:
    """``--json`` -> parameter ``as_json: bool``."""
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        default=False,
        help="Print machine-readable JSON.",
    )(func)


def inventory_options(func: F) -> F:
    """``-i``, ``-l`` and ``-e`` together."""
    return inventory_option(limit_option(extra_vars_option(func)))
