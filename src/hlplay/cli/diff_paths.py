"""``hlplay diff A B [--json]``: the closure diff of two store paths, as ``nvd diff A B``.

A and B may be store paths, profiles (``/nix/var/nix/profiles/system``),
profile generations (``system-41-link``) or links such as ``./result``.
``hlplay diff PATTERN`` (build hosts and diff them) lives in ``nix_cmd``,
which hands two path arguments over to :func:`diff_two`.
"""

from __future__ import annotations

import os
import re
import sys

import click

_GENERATION_LINK = re.compile(r".+-[0-9]+-link$")


def looks_like_path(arg: str) -> bool:
    """Whether ``arg`` names a store path, profile or link rather than a host pattern."""
    # "~web.*" is a regex host pattern unless such a file exists.
    return (
        arg.startswith(("/", "./", "../"))
        or bool(_GENERATION_LINK.fullmatch(arg))
        or os.path.lexists(os.path.expanduser(arg))
    )


def want_colour(stream: object = None) -> bool:
    """Colour for a terminal, unless NO_COLOR or HLPLAY_NO_COLOR is set."""
    if os.environ.get("NO_COLOR") or os.environ.get("HLPLAY_NO_COLOR", "") not in ("", "0"):
        return False
    out = sys.stdout if stream is None else stream
    isatty = getattr(out, "isatty", None)
    return bool(isatty and isatty())


def diff_two(
    a: str,
    b: str,
    json_out: bool,
    *,
    color: bool | None = None,
    store: str | None = None,
) -> int:
    """Print the diff of ``a`` -> ``b`` (text, or JSON with ``json_out``); return the exit code.

    Errors (a path that does not exist, is not in the store, or is not valid)
    raise :class:`hlplay.errors.HlplayError` for the CLI to print on one line.
    """
    from hlplay.nix.closure import closure
    from hlplay.nix.diff import diff_closures

    before = closure(os.path.expanduser(a), store)
    after = closure(os.path.expanduser(b), store)
    # Labelled as typed, as nvd does.
    diff = diff_closures(before, after, before_label=a, after_label=b)
    if json_out:
        import json

        click.echo(json.dumps(diff.to_json(), indent=2))
    else:
        use = want_colour() if color is None else color
        # click would strip the escapes when stdout is not a terminal; --color always wins.
        click.echo(diff.render_text(color=use), nl=False, color=use)
    return 0


@click.command("diff")
@click.argument("before")
@click.argument("after")
@click.option("--json", "json_out", is_flag=True, help="Print the diff as JSON.")
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Colour the text output.",
)
@click.option("--store", default=None, help="Nix store URL to query (e.g. ssh-ng://root@host).")
def diff_paths_command(
    before: str, after: str, json_out: bool, color: str, store: str | None
) -> None:
    """Show what changes from BEFORE to AFTER: store paths, profiles or generations."""
    use_colour = None if color == "auto" else color == "always"
    code = diff_two(before, after, json_out, color=use_colour, store=store)
    if code:
        sys.exit(code)
