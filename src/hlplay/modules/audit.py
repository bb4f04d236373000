"""``audit``: lint the Nix configuration for anti-patterns and security problems.

Runs on the controller and only reads files, so it runs under ``--check``
too. Fails when a finding is at or above ``severity``; the registered result
carries every finding (file, line, column, rule, severity, message, hint) and
the counts per severity, ready for a report.

    - name: Audit the configuration
      audit:
        path: "{{ config_repo }}"     # default: the inventory's nix.flake
        severity: high
        exclude: [rec-attrset]
      register: audit
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from hlplay.modules.base import Arg, Module, ModuleResult, TaskContext

SEVERITIES = ("info", "low", "medium", "high", "critical")


class Audit(Module):
    name = "audit"
    summary = "Audit a Nix configuration: anti-patterns and security, file:line:col findings."
    controller_side = True
    supports_check = True
    args: ClassVar[dict[str, Arg]] = {
        "path": Arg("path", help="file or directory (default: the inventory's nix.flake)"),
        "severity": Arg("str", default="medium", choices=SEVERITIES,
                        help="fail when a finding is at or above this severity"),
        "rules": Arg("list", elements="str", default=[], help="run only these rule ids"),
        "exclude": Arg("list", elements="str", default=[], help="skip these rule ids"),
        "max_mkforce": Arg("int", default=5, help="mkForce uses per file before mkforce-pileup"),
    }

    async def run(self, ctx: TaskContext, args: dict[str, Any]) -> ModuleResult:
        from hlplay.audit import AuditOptions, Severity, audit, select_rules
        from hlplay.audit.report import summary
        from hlplay.errors import HlplayError

        try:
            path = args.get("path") or _config_repo(ctx)
            options = AuditOptions(
                enabled=select_rules(args.get("rules") or (), args.get("exclude") or ()),
                threshold=Severity.parse(args.get("severity") or "medium"),
                mkforce_limit=_int(args.get("max_mkforce"), 5),
            )
            # parsing is CPU work: keep the event loop free for the other hosts' tasks
            report = await asyncio.to_thread(audit, [path], options)
        except (HlplayError, ValueError) as exc:
            return ModuleResult(failed=True, msg=str(exc))
        data = report.to_dict()
        data["path"] = str(path)
        return ModuleResult(failed=report.failed, msg=summary(report), data=data)


def _int(value: Any, default: int) -> int:
    return default if value is None else int(value)


def _config_repo(ctx: TaskContext) -> str:
    from hlplay.audit.repo import local_flake_dir

    flake = ctx.inventory.settings.nix.flake
    found = local_flake_dir(flake, list(ctx.inventory.sources))
    if found is None:
        raise ValueError(
            f"the configuration flake '{flake}' is not a local directory; give the audit a path"
        )
    return str(found)
