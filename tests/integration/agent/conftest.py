"""The agent with the real embedded model against the live API's MCP endpoint."""

from __future__ import annotations

from tests.integration.mcp.conftest import mcp_api, trader_token  # noqa: F401  (fixtures)
