"""The MCP tools as plain async functions: arguments in, JSON-ready dicts out.

Bad input and refusals raise :class:`hlplay.errors.HlplayError` with one
line; the server turns them into tool errors. A host that fails or does not
answer is a row of the result, never an exception. The inventory is read
again on every call, so an assistant sees the fleet as committed now.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hlplay.errors import HlplayError, OptionsError
from hlplay.inventory.model import Inventory
from hlplay.mcpserver.access import AccessPolicy, AccessRefused, check_pattern
from hlplay.mcpserver.config import ServerConfig, find_playbook

MAX_FINDINGS = 200


class DeployBusy(HlplayError):
    """Another deploy of this server is still running."""


def check_revision(revision: str | None) -> str | None:
    """A safe branch, tag or commit name, or None (the configuration's HEAD)."""
    if revision is None:
        return None
    from hlplay.protocol.messages import ProtocolError, validate_revision

    try:
        return validate_revision(revision)
    except ProtocolError as exc:
        raise OptionsError(f"revision {revision[:80]!r}: {exc.message}") from None


def host_row(inventory: Inventory, name: str) -> dict[str, Any]:
    host = inventory.hosts[name]
    row: dict[str, Any] = {
        "name": name,
        "tier": host.tier,
        "roles": list(host.roles),
        "transport": host.transport,
        "groups": inventory.group_names(name),
    }
    if host.transport == "ssh":
        row["address"] = host.reach
        row["port"] = host.ssh.port
    return row


def _stats(result: Any) -> dict[str, dict[str, int]]:
    return {h: s.to_dict() for h, s in result.stats.items()}


def summarize_run(result: Any) -> dict[str, Any]:
    """What a deploy did, from a :class:`RunResult`: recap, report rows, failures."""
    doc = result.document
    report: list[dict[str, Any]] | None = None
    plans: dict[str, dict[str, Any]] = {}
    failures: list[dict[str, Any]] = []
    for play in doc.get("plays", []):
        for task in play.get("tasks", []):
            info = task.get("task", {})
            for host, res in task.get("hosts", {}).items():
                if not isinstance(res, dict):
                    continue
                action = res.get("action")
                if action == "deploy_report" and isinstance(res.get("report"), dict):
                    report = list(res["report"].get("hosts") or [])
                elif action == "nixos_rebuild" and res.get("diff_summary") is not None:
                    plans.setdefault(host, {"diff": res.get("diff_summary")})
                if res.get("status") in ("failed", "unreachable"):
                    failures.append(
                        {
                            "host": host,
                            "task": info.get("name"),
                            "status": res.get("status"),
                            "msg": _one_line(res.get("msg")),
                        }
                    )
    return {
        "exit_code": result.exit_code,
        "ok": result.ok,
        "interrupted": result.interrupted,
        "recap": _stats(result),
        "failed_hosts": result.failed_hosts,
        "unreachable_hosts": result.unreachable_hosts,
        "report": report,
        # the report has each host's diff; without one (a run cut short) say it here
        "diffs": plans if report is None else None,
        "failures": failures,
        "warnings": list(doc.get("warnings") or []),
    }


def _one_line(value: object, limit: int = 500) -> str:
    text = " ".join(str(value or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class FleetTools:
    """The tools, sharing a configuration and an access policy."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.policy = AccessPolicy(config)
        self._deploying = asyncio.Lock()

    def inventory(self) -> Inventory:
        from hlplay.inventory.loader import load_inventory

        return load_inventory(list(self.config.inventory))

    def select(self, inventory: Inventory, pattern: str, what: str = "pattern") -> list[str]:
        from hlplay.inventory.patterns import select_hosts

        return select_hosts(inventory, check_pattern(pattern, what))

    # -- read-only --------------------------------------------------------------------

    async def list_hosts(self, pattern: str | None = None) -> dict[str, Any]:
        inv = self.inventory()
        names = list(inv.hosts) if pattern is None else self.select(inv, pattern)
        return {
            "pattern": pattern or "all",
            "count": len(names),
            "hosts": [host_row(inv, n) for n in names],
            "deploy_tiers": list(self.policy.tiers),
            "admin": self.policy.has_admin,
        }

    async def targets(self, pattern: str) -> dict[str, Any]:
        from hlplay.inventory.targets import compile_targets

        inv = self.inventory()
        hosts = self.select(inv, pattern)
        plan = compile_targets(inv, hosts)
        order = {h: i for i, h in enumerate(inv.hosts)}
        out = plan.to_dict(order)
        return {
            "pattern": pattern,
            "hosts": hosts,
            "nats": out["nats"],
            "direct": out["direct"],
            "deploy_allowed": not self.policy.outside(inv, hosts),
        }

    async def discover(self, timeout: float = 2.0) -> dict[str, Any]:
        from hlplay.transports.nats import NatsTransport

        inv = self.inventory()
        listeners = [h for h, host in inv.hosts.items() if host.has_listener]
        transport = NatsTransport(self.policy.for_reading(inv, listeners))
        try:
            found = await transport.discover(timeout=timeout)
        finally:
            await transport.close()
        rows = []
        for doc in found:
            running = doc.get("running")
            rows.append(
                {
                    "hostname": doc.get("hostname"),
                    "tier": doc.get("tier"),
                    "roles": doc.get("roles"),
                    "generation": doc.get("generation"),
                    "revision": doc.get("revision"),
                    "store_path": doc.get("store_path"),
                    "busy": bool(doc.get("busy")),
                    "running": running if isinstance(running, dict) else None,
                    "version": doc.get("version"),
                }
            )
        seen = {str(r["hostname"]) for r in rows}
        return {
            "hosts": rows,
            "missing": [h for h in listeners if h not in seen],
            "unknown": sorted(s for s in seen if s not in inv.hosts),
        }

    async def diff(self, pattern: str, revision: str | None = None) -> dict[str, Any]:
        from hlplay.fleetops import diff_hosts

        rev = check_revision(revision)
        inv = self.inventory()
        hosts = self.select(inv, pattern)
        doc, outcomes = await diff_hosts(
            self.policy.for_reading(inv, hosts), hosts, rev, self.config.timeout
        )
        for name, entry in doc["hosts"].items():
            data = getattr(outcomes.get(name), "data", None)
            if isinstance(data, dict) and data.get("diff_text"):
                # nvd's text, what a person would read; "diff" is the same as data
                entry["text"] = data["diff_text"]
        return {"pattern": pattern, **doc}

    async def generations(self, pattern: str = "all", timeout: float = 10.0) -> dict[str, Any]:
        from hlplay.fleetops import host_generations
        from hlplay.transports.factory import TransportPool

        inv = self.inventory()
        hosts = self.select(inv, pattern)
        reading = self.policy.for_reading(inv, hosts)
        pool = TransportPool(reading)
        try:
            rows = await asyncio.gather(
                *(host_generations(reading, h, pool, timeout) for h in hosts)
            )
        finally:
            await pool.close()
        return {"pattern": pattern, "hosts": dict(zip(hosts, rows, strict=True))}

    async def health(
        self, pattern: str = "all", strict: bool = False, timeout: float = 10.0
    ) -> dict[str, Any]:
        from hlplay.health.fleet import FleetOptions, check_fleet

        inv = self.inventory()
        hosts = self.select(inv, pattern)
        # monitoring URLs come from the inventory only: a caller names no URL to fetch
        options = FleetOptions(timeout=timeout, strict=strict)
        report = await check_fleet(self.policy.for_reading(inv, hosts), hosts, options)
        _, doc = report.render()
        for key in ("markdown", "sections", "summary"):  # text, or "fleet" and "verdict" again
            doc.pop(key, None)
        return {"pattern": pattern, "verdict": report.verdict_line().replace("**", ""), **doc}

    async def audit(
        self,
        path: str | None = None,
        rules: Sequence[str] = (),
        exclude: Sequence[str] = (),
        severity: str = "medium",
        max_findings: int = MAX_FINDINGS,
    ) -> dict[str, Any]:
        from hlplay.audit import AuditOptions, Severity, audit, select_rules
        from hlplay.audit.repo import local_flake_dir

        inv = self.inventory()
        flake = local_flake_dir(inv.settings.nix.flake, list(inv.sources))
        if flake is None or not flake.is_dir():
            raise OptionsError(
                f"the configuration flake {inv.settings.nix.flake} is not a local directory"
            )
        root = flake.resolve()
        target = (root / (path or ".")).resolve()
        if target != root and root not in target.parents:
            raise AccessRefused(f"path {path!r} is outside the configuration repository")
        try:
            threshold = Severity.parse(severity)
        except ValueError as exc:
            raise OptionsError(str(exc)) from None
        options = AuditOptions(enabled=select_rules(rules, exclude), threshold=threshold)
        report = await asyncio.to_thread(audit, [target], options)
        doc = report.to_dict()
        doc["root"] = os.path.relpath(target, root)
        for finding in doc["findings"]:
            finding["file"] = os.path.relpath(finding["file"], root)
        total = len(doc["findings"])
        if total > max_findings:
            doc["findings"] = doc["findings"][:max_findings]
            doc["truncated"] = total - max_findings
        return doc

    # -- deploys ----------------------------------------------------------------------

    async def deploy(
        self,
        limit: str,
        revision: str | None = None,
        check: bool = False,
        serial: int | None = None,
        *,
        admin: bool = False,
        reporters: Sequence[Any] = (),
    ) -> dict[str, Any]:
        """Run the deploy playbook over ``limit``: test tiers with the test
        credentials, or any tier with the admin ones (``admin``)."""
        from hlplay.engine.api import plan, run_playbook

        rev = check_revision(revision)
        inv = self.inventory()
        limit = check_pattern(limit, "limit")
        selected = self.select(inv, limit, "limit")
        run_inv = self.policy.for_admin(inv) if admin else self.policy.for_deploy(inv, selected)
        playbook = find_playbook(self.config, inv.sources)
        extra: dict[str, Any] = {}
        if rev is not None:
            extra["revision"] = rev
        if serial is not None:
            extra["serial"] = serial
        book, planned_inv, prepared = plan(playbook, run_inv, limit=limit, extra_vars=extra)
        reached = list(dict.fromkeys(h.name for p in prepared for h in p.hosts))
        if not admin:
            # the limit decides, but what the plays select is what runs
            self.policy.for_deploy(inv, reached)
        if self._deploying.locked():
            raise DeployBusy("another deploy is running on this server; try again when it ends")
        async with self._deploying:
            result = await run_playbook(
                book,
                run_inv,
                limit=limit,
                extra_vars=extra,
                check=check,
                diff=check,
                reporters=reporters,
                planned=(book, planned_inv, prepared),
            )
        return {
            "playbook": str(Path(playbook).name),
            "limit": limit,
            "hosts": [h for h in reached if h in inv.hosts],
            "revision": rev,
            "check": check,
            "credentials": "admin" if admin else "test",
            **summarize_run(result),
        }
