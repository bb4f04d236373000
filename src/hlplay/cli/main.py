"""The ``hlplay`` command: a click group whose default is running a playbook.

``hlplay deploy-all.yml -l tier=test`` runs a playbook; ``hlplay inventory …``,
``hlplay listen``, ``hlplay lab up`` … are subcommands. Subcommands live in
their own modules and are imported only when used, so ``--help`` stays fast.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from hlplay import __version__

# name -> (module, attribute, one-line help). Each module is imported lazily.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "playbook": ("hlplay.cli.playbook_cmd", "playbook", "Run a playbook (the default command)."),
    "inventory": ("hlplay.cli.inventory_cmd", "inventory", "Show the inventory and targets."),
    "listen": ("hlplay.cli.agent_cmd", "listen", "Run the listener agent on a host."),
    "keys": ("hlplay.cli.agent_cmd", "keys", "Create NKey credentials."),
    "nats": ("hlplay.cli.agent_cmd", "nats", "Generate nats-server configuration."),
    "diff": ("hlplay.cli.nix_cmd", "diff", "Closure diff, nvd style."),
    "generations": ("hlplay.cli.nix_cmd", "generations", "List system generations."),
    "rollback": ("hlplay.cli.nix_cmd", "rollback", "Roll hosts back a generation."),
    "lab": ("hlplay.cli.lab_cmd", "lab", "The built-in lab: a local fleet."),
    "health": ("hlplay.cli.ops_cmd", "health", "Fleet health check."),
    "audit": ("hlplay.cli.audit_cmd", "audit", "Audit a Nix configuration."),
    "mcp": ("hlplay.cli.mcp_cmd", "mcp", "Serve hlplay to AI assistants over MCP."),
}

DEFAULT_COMMAND = "playbook"


class DefaultGroup(click.Group):
    """A group that runs ``playbook`` when the first word is not a subcommand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if name != DEFAULT_COMMAND]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attr, _ = entry
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None
            raise
        cmd = getattr(module, attr, None)
        return cmd if isinstance(cmd, click.Command) else None

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] in COMMANDS:
            return super().resolve_command(ctx, args)
        cmd = self.get_command(ctx, DEFAULT_COMMAND)
        if cmd is None:
            raise click.UsageError("the playbook runner is not available")
        return DEFAULT_COMMAND, cmd, args

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # `hlplay` alone shows help; `hlplay site.yml …` falls through to the default.
        if not args:
            click.echo(ctx.get_help())
            ctx.exit(0)
        return super().parse_args(ctx, args)


@click.group(
    cls=DefaultGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    invoke_without_command=False,
    epilog="Run a playbook:  hlplay PLAYBOOK [-i INVENTORY] [-l PATTERN] [-e VARS] [--check]",
)
@click.version_option(__version__, "--version", prog_name="hlplay")
@click.option("--debug", is_flag=True, envvar="HLPLAY_DEBUG", help="Show tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """hlplay: inventory and playbooks for NixOS fleets, over NATS and SSH."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main(argv: list[str] | None = None) -> Any:
    """Console entry point: user errors print one line, never a traceback."""
    from hlplay.cli.errors import run_cli

    return run_cli(cli, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
