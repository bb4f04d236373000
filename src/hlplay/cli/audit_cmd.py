"""``hlplay audit``: lint a Nix configuration, the way a linter runs in CI.

Exit status: 0 when no finding reaches ``--severity``, 2 when one does,
1 when the audit cannot run (bad option, missing path, unreadable file).
"""

from __future__ import annotations

import os
import sys

import click

from hlplay.errors import EXIT_FAILED, HlplayError

SEVERITIES = ("info", "low", "medium", "high", "critical")
FORMATS = ("text", "json", "github", "sarif")


class _AuditCommand(click.Command):
    """Usage errors become one-line errors with exit status 1, like the linters CI knows."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise HlplayError(f"hlplay audit: {exc.format_message()}") from None


@click.command("audit", cls=_AuditCommand)
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option(
    "--format", "fmt", default=None, metavar="|".join(FORMATS),
    help="Output: text (default), json, github (workflow annotations), sarif.",
)
@click.option(
    "--severity", "severity", default="medium", show_default=True, metavar="|".join(SEVERITIES),
    help="Exit 2 when a finding is at or above this severity.",
)
@click.option("-r", "--rule", "rules", multiple=True, metavar="RULE",
              help="Run only these rules (repeatable, or comma-separated).")
@click.option("-x", "--exclude", "exclude", multiple=True, metavar="RULE",
              help="Skip these rules (repeatable, or comma-separated).")
@click.option("--max-mkforce", "mkforce_limit", type=int, default=5, show_default=True,
              help="mkForce uses per file before mkforce-pileup fires.")
@click.option("-i", "--inventory", "inventory", multiple=True, envvar="HLPLAY_INVENTORY",
              metavar="PATH",
              help="Inventory whose hlplay.nix.flake is the default PATH.")
@click.option("--list-rules", is_flag=True, help="List the rules and exit.")
def audit(
    paths: tuple[str, ...],
    as_json: bool,
    fmt: str | None,
    severity: str,
    rules: tuple[str, ...],
    exclude: tuple[str, ...],
    mkforce_limit: int,
    inventory: tuple[str, ...],
    list_rules: bool,
) -> None:
    """Audit the .nix files under PATH (default: the configuration repository).

    Reports anti-patterns and security problems with file:line:column, rule,
    severity and a fix hint. Silence one with `# hlplay: ignore[RULE]` on the
    line or the line above, or `# hlplay: ignore-file[RULE]`.
    """
    from hlplay.audit import AuditError, AuditOptions, Severity, audit, select_rules
    from hlplay.audit import report as render

    if list_rules:
        click.echo(_rules_table())
        return
    fmt = "json" if as_json and fmt is None else (fmt or "text")
    if fmt not in FORMATS:
        raise AuditError(f"unknown format '{fmt}'; choose one of {', '.join(FORMATS)}")
    try:
        threshold = Severity.parse(severity)
    except ValueError as exc:
        raise AuditError(str(exc)) from None
    if mkforce_limit < 0:
        raise AuditError("--max-mkforce must be 0 or more")
    options = AuditOptions(
        enabled=select_rules(rules, exclude), threshold=threshold, mkforce_limit=mkforce_limit
    )
    targets = list(paths) or [_default_path(inventory)]
    report = audit(targets, options)
    click.echo(render.render(report, fmt, color=fmt == "text" and _color()))
    if report.failed:
        sys.exit(EXIT_FAILED)


def _default_path(inventory: tuple[str, ...]) -> str:
    """The inventory's configuration flake when it is local, else the current directory."""
    if not inventory:
        return "."
    from hlplay.audit.repo import local_flake_dir
    from hlplay.inventory.loader import load_inventory

    inv = load_inventory(list(inventory))
    flake = local_flake_dir(inv.settings.nix.flake, list(inv.sources) or list(inventory))
    return str(flake) if flake is not None else "."


def _color() -> bool:
    if os.environ.get("NO_COLOR") or os.environ.get("HLPLAY_NO_COLOR", "") not in ("", "0"):
        return False
    return sys.stdout.isatty()


def _rules_table() -> str:
    from hlplay.audit import RULES

    width = max(len(r) for r in RULES)
    lines = [f"{'RULE':<{width}}  {'SEVERITY':<8}  {'FAMILY':<12}  WHAT"]
    for rule in RULES.values():
        lines.append(
            f"{rule.id:<{width}}  {rule.severity.label:<8}  {rule.family:<12}  {rule.summary}"
        )
    return "\n".join(lines)
