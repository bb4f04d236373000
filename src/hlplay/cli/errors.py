"""Turn exceptions into one-line messages and ansible-playbook exit codes."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import click

from hlplay.errors import EXIT_BAD_OPTIONS, EXIT_ERROR, EXIT_INTERRUPTED, HlplayError


def _debug(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("HLPLAY_DEBUG", "") not in ("", "0")


def run_cli(cli: click.Group, argv: list[str] | None = None) -> Any:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        # without standalone mode, ctx.exit(n) comes back as the return value
        rv = cli.main(args=args, prog_name="hlplay", standalone_mode=False)
    except HlplayError as exc:
        if _debug(args):
            traceback.print_exc()
        click.secho(f"ERROR: {exc}", fg="red", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_BAD_OPTIONS if isinstance(exc, click.UsageError) else EXIT_ERROR)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:
        if _debug(args):
            traceback.print_exc()
        click.secho(
            f"ERROR: internal error: {type(exc).__name__}: {exc} (run with --debug for details)",
            fg="red",
            err=True,
        )
        sys.exit(EXIT_ERROR)
    sys.exit(rv if isinstance(rv, int) else 0)
