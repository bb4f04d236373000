"""The MCP server: hlplay's fleet tools for AI assistants (``hlplay mcp``, stdio).

Arguments are JSON-schema'd (pydantic) and validated before a tool runs;
unknown arguments are refused with a did-you-mean. Every failure comes back
as a tool error of one line — a bad pattern, a refused deploy, an internal
fault — never a traceback. Results are structured JSON content.

This module imports ``mcp``; only ``hlplay mcp`` and tests import it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp_types import CallToolResult, InputRequiredResult, ToolAnnotations
from pydantic import Field, ValidationError

from hlplay import __version__
from hlplay.errors import HlplayError, did_you_mean
from hlplay.mcpserver.config import ServerConfig
from hlplay.mcpserver.tools import FleetTools

log = logging.getLogger(__name__)

INSTRUCTIONS = """\
hlplay manages a fleet of NixOS hosts described by an inventory (tiers such as
test and prod, roles such as web or db). Hosts are selected with patterns:
host or group names, globs (web*), tier=test, role=web, and combinations
('tier=test,&role=web', 'all,!db1'). Look before acting: list_hosts and
targets show what a pattern selects, diff shows what a deploy would change
(nothing is activated), discover, generations and health show what runs now
and how it is doing. deploy
rolls out the configuration to the test tier only; deploy_admin reaches any
tier and is available only when the operator enabled it. audit lints the Nix
configuration."""

Pattern = Annotated[
    str,
    Field(
        min_length=1,
        max_length=1000,
        description=(
            "Host pattern: names, groups, globs (web*), ~regex, tier=test, role=web, "
            "combined with ',' and '&' (and) / '!' (not), e.g. 'tier=test,&role=web'."
        ),
    ),
]
Revision = Annotated[
    str | None,
    Field(
        max_length=255,
        description="Branch, tag or commit of the configuration (default: its HEAD).",
    ),
]

OptionalPattern = Annotated[
    str | None, Field(max_length=1000, description="Host pattern (default: every host).")
]
AllPattern = Annotated[str, Field(min_length=1, max_length=1000, description="Host pattern.")]
Limit = Annotated[
    str,
    Field(
        min_length=1,
        max_length=1000,
        description="Hosts to deploy, as a host pattern (e.g. 'tier=test', 'test-web1').",
    ),
]
Check = Annotated[bool, Field(description="Dry run: build and diff only, activate nothing.")]
Serial = Annotated[
    int | None, Field(ge=1, le=1000, description="Hosts per batch (default: all at once).")
]
Seconds = Annotated[float, Field(gt=0, le=30, description="Seconds to wait for answers.")]
Strict = Annotated[bool, Field(description="Warnings (load, drift) count as unhealthy too.")]
FactsSeconds = Annotated[
    float, Field(gt=0, le=120, description="Seconds to wait for each host's facts.")
]
AuditPath = Annotated[
    str | None,
    Field(
        max_length=1000,
        description="File or directory inside the configuration repository (default: all).",
    ),
]
RuleIds = Annotated[list[str] | None, Field(max_length=100, description="Audit rule ids.")]
SeverityName = Annotated[
    Literal["info", "low", "medium", "high", "critical"],
    Field(description="Findings at or above this severity fail the audit."),
]

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=True)
LOCAL_READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)
DEPLOYS = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True)


def one_line(text: str) -> str:
    return " ".join(text.split())


def validation_message(tool: str, exc: ValidationError) -> str:
    """pydantic's many-line report as one line: ``deploy: limit: Field required``."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ())) or "arguments"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return f"{tool}: invalid arguments: " + "; ".join(parts)


class HlplayMCPServer(MCPServer[Any]):
    """An MCPServer whose argument errors are one line and name the closest argument."""

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        tool = self._tool_manager.get_tool(name)
        if tool is None:
            names = [t.name for t in self._tool_manager.list_tools()]
            raise ToolError(f"unknown tool '{name}'{did_you_mean(name, names)}")
        known = list(tool.parameters.get("properties", {}))
        for key in arguments:
            if key not in known:
                hint = did_you_mean(key, known) or (
                    f" (arguments: {', '.join(known)})" if known else " (it takes no arguments)"
                )
                raise ToolError(f"{name}: unknown argument '{key}'{hint}")
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError:
            raise
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError):
                raise ToolError(validation_message(name, exc.__cause__)) from None
            # "Error executing tool deploy: …" -> "deploy: …", as our own refusals read
            text = str(exc).removeprefix(f"Error executing tool {name}: ")
            raise ToolError(f"{name}: {text}") from None


async def guarded(tool: str, work: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """Run a tool body; every failure becomes a one-line :class:`ToolError`."""
    try:
        return await work
    except ToolError:
        raise
    except HlplayError as exc:
        raise ToolError(one_line(str(exc))) from None
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise
    except Exception as exc:  # the last line of defence: one line, no traceback
        log.debug("%s failed", tool, exc_info=True)
        text = str(exc) or type(exc).__name__
        raise ToolError(one_line(f"internal error: {type(exc).__name__}: {text}")) from None


class ProgressReporter:
    """Engine events as MCP progress notifications (plays and tasks started)."""

    def __init__(self, ctx: Context[Any, Any]) -> None:
        self.ctx = ctx
        self.step = 0
        self.pending: set[asyncio.Task[None]] = set()

    def handle(self, event: Any) -> None:
        from hlplay.engine.events import PlayStarted, TaskStarted

        if isinstance(event, PlayStarted):
            message = f"play: {event.name} ({len(event.hosts)} hosts)"
        elif isinstance(event, TaskStarted):
            message = f"task: {event.task.name}"
        else:
            return
        self.step += 1
        task = asyncio.ensure_future(self._send(self.step, message))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _send(self, step: int, message: str) -> None:
        with contextlib.suppress(Exception):  # progress is a courtesy, never a failure
            await self.ctx.report_progress(step, None, message)

    async def drain(self) -> None:
        if self.pending:
            await asyncio.gather(*self.pending, return_exceptions=True)


def build_server(config: ServerConfig) -> HlplayMCPServer:
    """The MCP server with every tool registered, over ``config``."""
    fleet = FleetTools(config)
    server = HlplayMCPServer(
        name="hlplay",
        version=__version__,
        instructions=INSTRUCTIONS,
        log_level="WARNING",
    )

    @server.tool(annotations=LOCAL_READ)
    async def list_hosts(pattern: OptionalPattern = None) -> dict[str, Any]:
        """List inventory hosts with tier, roles, transport (nats, ssh, local) and groups.

        Also says which tiers `deploy` may reach and whether `deploy_admin` is enabled."""
        return await guarded("list_hosts", fleet.list_hosts(pattern))

    @server.tool(annotations=LOCAL_READ)
    async def targets(pattern: Pattern) -> dict[str, Any]:
        """What a host pattern compiles to: the fewest NATS subjects that reach exactly
        the selected hosts, and the hosts reached directly (SSH, local)."""
        return await guarded("targets", fleet.targets(pattern))

    @server.tool(annotations=READ_ONLY)
    async def discover(timeout: Seconds = 2.0) -> dict[str, Any]:
        """Ask every listener over NATS what it runs: generation, revision, store path,
        and whether it is busy deploying. Lists inventory listeners that did not answer."""
        return await guarded("discover", fleet.discover(timeout))

    @server.tool(annotations=READ_ONLY)
    async def diff(pattern: Pattern, revision: Revision = None) -> dict[str, Any]:
        """Build the selected hosts' new systems and diff each against the system it runs
        (package upgrades, additions, removals, closure size), nvd style. Nothing is
        activated. Use it before deploy."""
        return await guarded("diff", fleet.diff(pattern, revision))

    @server.tool(annotations=READ_ONLY)
    async def generations(pattern: AllPattern = "all") -> dict[str, Any]:
        """The system generations of the selected hosts: current generation, revision, age."""
        return await guarded("generations", fleet.generations(pattern))

    @server.tool(annotations=READ_ONLY)
    async def health(
        pattern: AllPattern = "all", strict: Strict = False, timeout: FactsSeconds = 10.0
    ) -> dict[str, Any]:
        """Health of the selected hosts and the fleet, read-only: reachability, failed
        units, disk, memory, load, generation age, revision drift within a tier, and
        Prometheus targets / Alertmanager alerts when the inventory names them."""
        return await guarded("health", fleet.health(pattern, strict, timeout))

    @server.tool(annotations=LOCAL_READ)
    async def audit(
        path: AuditPath = None,
        rules: RuleIds = None,
        exclude: RuleIds = None,
        severity: SeverityName = "medium",
    ) -> dict[str, Any]:
        """Audit the Nix configuration: anti-patterns and security problems with
        file:line:column, rule, severity and a fix hint."""
        return await guarded("audit", fleet.audit(path, rules or (), exclude or (), severity))

    @server.tool(annotations=DEPLOYS)
    async def deploy(
        limit: Limit,
        ctx: Context[Any, Any],
        revision: Revision = None,
        check: Check = False,
        serial: Serial = None,
    ) -> dict[str, Any]:
        """Deploy the configuration to TEST-tier hosts (playbook deploy-all.yml): build,
        diff, activate with a health gate and automatic rollback, report. A selection that
        reaches any host outside the test tier (or the tiers the operator allowed, see
        list_hosts' deploy_tiers) is refused before anything runs."""
        reporter = ProgressReporter(ctx)
        try:
            return await guarded(
                "deploy", fleet.deploy(limit, revision, check, serial, reporters=[reporter])
            )
        finally:
            await reporter.drain()

    @server.tool(annotations=DEPLOYS)
    async def deploy_admin(
        limit: Limit,
        ctx: Context[Any, Any],
        revision: Revision = None,
        check: Check = False,
        serial: Serial = None,
    ) -> dict[str, Any]:
        """Deploy to hosts of ANY tier, prod included, with the admin credentials (only
        when the operator started the server with them). Test tier first; a test failure
        leaves prod untouched."""
        reporter = ProgressReporter(ctx)
        try:
            return await guarded(
                "deploy_admin",
                fleet.deploy(limit, revision, check, serial, admin=True, reporters=[reporter]),
            )
        finally:
            await reporter.drain()

    for tool in server._tool_manager.list_tools():
        # unknown arguments are refused (call_tool); say so in the schema
        tool.parameters["additionalProperties"] = False
    return server


def serve_stdio(config: ServerConfig) -> None:
    """Serve over stdin/stdout until the client goes away."""
    build_server(config).run("stdio")
