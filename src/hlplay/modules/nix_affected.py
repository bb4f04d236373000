"""``nix_affected``: which hosts a change reaches, found by evaluation, not by building.

::

    - nix_affected:
        revision: "{{ edit.candidate }}"   # the change
        # base: main                       # default: the revision's parent
      run_once: true
      register: affected
    - nixos_rebuild: …
      when: inventory_hostname in affected.hosts

Evaluates each host's system derivation (``<toplevel>.drvPath``, the
inventory's ``hlplay.nix.toplevel_attr``) at both revisions — one ``nix eval``
per revision for every host — and lists the hosts whose derivation differs. A
derivation's path is a hash of everything it is built from, so it differs
exactly when something in the host's closure changed: for a package bump,
exactly the hosts whose closure contains the package. Nothing is built, and
the hosts are not asked anything.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any, ClassVar

from hlplay.errors import HlplayError
from hlplay.modules.base import Arg, Module, ModuleResult, TaskContext
from hlplay.modules.flake_update import NIX_FLAGS, repo_dir


def nix_string(value: str) -> str:
    """A Nix string literal for ``value``."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    return f'"{escaped}"'


def drv_expression(flake_url: str, attrs: dict[str, str]) -> str:
    """``{ host = (getFlake URL).<attr>.drvPath; … }`` for ``nix eval --expr``."""
    lines = [f"let f = builtins.getFlake {nix_string(flake_url)}; in {{"]
    for host, attr in attrs.items():
        lines.append(f"  {nix_string(host)} = f.{attr}.drvPath;")
    lines.append("}")
    return "\n".join(lines)


async def eval_drv_paths(
    repo: str, revision: str, attrs: dict[str, str], timeout: float = 600
) -> dict[str, str]:
    """Each host's system derivation path at ``revision`` (a commit id)."""
    from hlplay.nix.flakeref import flake_ref
    from hlplay.proc import run_argv

    expr = drv_expression(flake_ref(repo, revision), attrs)
    res = await run_argv(["nix", *NIX_FLAGS, "eval", "--json", "--expr", expr], timeout=timeout)
    if res.rc != 0:
        lines = (res.stderr or res.stdout).strip().splitlines()
        errors = [ln.strip() for ln in lines if ln.strip().startswith("error")] or lines
        detail = errors[-1] if errors else f"exit {res.rc}"
        raise HlplayError(f"evaluating the hosts at {revision[:12]} failed: {detail}")
    doc = json.loads(res.stdout)
    return {str(k): str(v) for k, v in doc.items()}


class NixAffected(Module):
    name = "nix_affected"
    summary = "Hosts whose system changes between two revisions, by evaluation (nothing built)."
    controller_side = True
    supports_check = True
    args: ClassVar[dict[str, Arg]] = {
        "revision": Arg("str", required=True, help="the revision with the change"),
        "base": Arg("str", help="the revision to compare with (default: revision's parent)"),
        "hosts": Arg("list", elements="str", help="hosts to look at (default: the play's)"),
        "repo": Arg("path", help="the configuration (default: the inventory's nix.flake)"),
        "timeout": Arg("float", default=600.0),
    }

    async def run(self, ctx: TaskContext, args: dict[str, Any]) -> ModuleResult:
        from hlplay import gitrepo
        from hlplay.nix.flakeref import FlakeRefError, attr_path

        names: Sequence[str] = args.get("hosts") or ctx.vars.get("ansible_play_hosts_all") or list(
            ctx.inventory.hosts
        )
        try:
            repo = str(repo_dir(ctx, args.get("repo")))
            revision = await gitrepo.resolve(repo, str(args["revision"]))
            base = await gitrepo.resolve(repo, str(args.get("base") or f"{revision}^"))
            attrs: dict[str, str] = {}
            for name in names:
                host = ctx.inventory.hosts.get(name)
                if host is None:
                    return ModuleResult(failed=True, msg=f"unknown host '{name}'")
                template = host.vars.get("hlplay_toplevel_attr") or (
                    ctx.inventory.settings.nix.toplevel_attr
                )
                attrs[name] = attr_path(str(template), name)
            timeout = float(args.get("timeout") or 600)
            before, after = await asyncio.gather(
                eval_drv_paths(repo, base, attrs, timeout),
                eval_drv_paths(repo, revision, attrs, timeout),
            )
        except (HlplayError, FlakeRefError) as exc:
            return ModuleResult(failed=True, msg=str(exc))
        changed = [n for n in names if before.get(n) != after.get(n)]
        unchanged = [n for n in names if n not in changed]
        data: dict[str, Any] = {
            "hosts": changed,
            "unchanged": unchanged,
            "base": base,
            "revision": revision,
            "drv_paths": {n: {"before": before.get(n), "after": after.get(n)} for n in names},
        }
        msg = f"{len(changed)} of {len(names)} hosts change: {', '.join(changed) or 'none'}"
        return ModuleResult(msg=msg, data=data)
