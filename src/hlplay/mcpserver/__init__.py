"""hlplay for AI assistants: an MCP server over stdio (``hlplay mcp``).

* :mod:`hlplay.mcpserver.config` — what the server is started with;
* :mod:`hlplay.mcpserver.access` — the tiered access model (test-tier deployer
  and optional admin credentials, which tiers ``deploy`` may reach);
* :mod:`hlplay.mcpserver.tools` — the tools as plain async functions returning
  JSON-ready dicts (no MCP import: usable and testable on their own);
* :mod:`hlplay.mcpserver.server` — the MCP server wrapping them (imports ``mcp``).

Nothing here is imported by ``hlplay --help``: the CLI loads it on ``hlplay mcp``.
"""
