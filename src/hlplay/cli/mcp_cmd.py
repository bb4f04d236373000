"""``hlplay mcp``: serve hlplay's fleet tools to AI assistants over MCP (stdio).

    hlplay mcp -i inventory --test-credentials keys/deployer-test.seed \\
        [--admin-credentials keys/admin.seed] [--allow-tier test ...]

stdout carries the protocol; messages go to stderr. The ``mcp`` package is
imported only here, when the server starts.
"""

from __future__ import annotations

from pathlib import Path

import click

from hlplay.cli.nix_cmd import FiniteFloatRange
from hlplay.cli.options import inventory_option


@click.command("mcp")
@inventory_option
@click.option(
    "--test-credentials",
    envvar="HLPLAY_MCP_TEST_CREDENTIALS",
    metavar="SEED",
    help="NKey seed of the test-tier deployer: what the deploy tool uses.",
)
@click.option(
    "--admin-credentials",
    envvar="HLPLAY_MCP_ADMIN_CREDENTIALS",
    metavar="SEED",
    help="NKey seed of the admin deployer: enables deploy_admin (any tier).",
)
@click.option(
    "--allow-tier",
    "allow_tiers",
    multiple=True,
    metavar="TIER",
    help="A tier the deploy tool may reach (repeatable; default: test).",
)
@click.option(
    "--playbook",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The deploy playbook (default: playbooks/deploy-all.yml near the inventory).",
)
@click.option(
    "--timeout",
    type=FiniteFloatRange(min=1),
    default=900.0,
    show_default=True,
    help="Seconds to wait for each host's build in diff.",
)
def mcp(
    inventory: tuple[str, ...],
    test_credentials: str | None,
    admin_credentials: str | None,
    allow_tiers: tuple[str, ...],
    playbook: Path | None,
    timeout: float,
) -> None:
    """Serve hlplay to AI assistants over MCP (stdio).

    Tools: list_hosts, targets, discover, diff, generations, audit, deploy
    (test tier only, with the test credentials) and deploy_admin (any tier,
    only with --admin-credentials).
    """
    from hlplay.errors import OptionsError
    from hlplay.inventory.loader import load_inventory
    from hlplay.mcpserver.config import (
        DEFAULT_DEPLOY_TIERS,
        ServerConfig,
        check_tiers,
        seed_path,
    )

    if playbook is not None and not playbook.is_file():
        raise OptionsError(f"--playbook {playbook}: no such playbook file")
    inv = load_inventory(list(inventory))  # a broken inventory stops us here, on one line
    known = list(dict.fromkeys(h.tier for h in inv.hosts.values()))
    config = ServerConfig(
        inventory=tuple(str(Path(p).resolve()) for p in inventory),
        test_credentials=seed_path(test_credentials, "--test-credentials"),
        admin_credentials=seed_path(admin_credentials, "--admin-credentials"),
        deploy_tiers=check_tiers(allow_tiers, known) if allow_tiers else DEFAULT_DEPLOY_TIERS,
        playbook=playbook.resolve() if playbook is not None else None,
        timeout=timeout,
    )
    from hlplay.mcpserver.server import serve_stdio

    serve_stdio(config)
