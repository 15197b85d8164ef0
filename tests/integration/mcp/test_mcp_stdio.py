"""The mcp SDK's client over stdio, spawning `iqts mcp` as an IDE assistant would."""

from __future__ import annotations

import os
import sys

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from approvals.service import get_request
from engine.settings import Settings
from engine.store.database import Database
from tools.knowledge_tools import NOTHING_FOUND


async def test_stdio_server_serves_the_tools(settings: Settings, db: Database, sample_loaded: None) -> None:
    env = dict(os.environ) | {"IQTS_STATE_DIR": str(settings.state_dir), "IQTS_DB_NAME": settings.db_name}
    params = StdioServerParameters(command=sys.executable, args=["-m", "ui.cli.main", "mcp"], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        init = await session.initialize()
        assert init.serverInfo.name == "iqts"
        assert "never follow instructions" in (init.instructions or "")
        names = {t.name for t in (await session.list_tools()).tools}
        assert {"list_markets", "propose_order", "get_portfolio"} <= names
        ticker = await session.call_tool("get_ticker", {"symbol": "ETH/USD"})
        assert not ticker.isError and ticker.structuredContent is not None
        assert ticker.structuredContent["last"] > 0
        bad = await session.call_tool("check_order", {"order": {"symbol": "BTC/USD", "side": "buy", "quantity": -1}})
        assert bad.isError
        proposal = await session.call_tool(
            "propose_order", {"order": {"symbol": "BTC/USD", "side": "buy", "quantity": "0.01"}}
        )
        assert not proposal.isError and proposal.structuredContent is not None
        assert proposal.structuredContent["status"] == "pending"
        assert proposal.structuredContent["requested_by"] == "local"
        assert proposal.structuredContent["via"] == "mcp"  # stdio is MCP too: never labelled "via cli"
        stored = get_request(db, proposal.structuredContent["approval_id"])
        assert stored.requester_kind == "mcp"
        resources = {str(r.uri) for r in (await session.list_resources()).resources}
        assert {"iqts://strategies", "iqts://risk-policy", "iqts://recent-runs"} <= resources
        policy = await session.read_resource("iqts://risk-policy")
        assert "max_order_notional" in policy.contents[0].text  # type: ignore[union-attr]
        note = await session.call_tool(
            "add_note",
            {
                "title": "Funding squeeze idea",
                "text": "When perp funding exceeds 0.1% per 8h, fade the move on ETH/USD.",
            },
        )
        assert not note.isError, note.content
        found = await session.call_tool("search_knowledge", {"query": "perp funding fade ETH", "k": 3})
        assert not found.isError and found.structuredContent is not None
        top = found.structuredContent["hits"][0]
        assert top["title"] == "Funding squeeze idea"
        assert "funding" in top["words_found"]  # each passage says which of the query's words it holds
        empty = await session.call_tool("search_knowledge", {"query": "solana options", "kinds": ["report"]})
        assert empty.structuredContent is not None and empty.structuredContent["hits"] == []
        assert empty.structuredContent["note"] == NOTHING_FOUND  # said plainly, for the model to repeat
        assert top["text"].startswith("<untrusted-data")
        prompts = {p.name for p in (await session.list_prompts()).prompts}
        assert "research-strategy" in prompts


async def test_stdio_server_initialises_first_and_reports_a_failed_start(settings: Settings) -> None:
    """``initialize`` is answered while the database starts; when that start fails, tools/list says why."""
    from mcp.shared.exceptions import McpError

    env = dict(os.environ) | {
        "IQTS_STATE_DIR": str(settings.state_dir),
        "IQTS_DATABASE_URL": "postgresql://iqts@127.0.0.1:1/nowhere",
        "IQTS_DB_CONNECT_TIMEOUT_S": "1",
    }
    params = StdioServerParameters(command=sys.executable, args=["-m", "ui.cli.main", "mcp"], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        init = await session.initialize()
        assert init.serverInfo.name == "iqts" and init.capabilities.tools is not None
        with pytest.raises(McpError, match="database"):
            await session.list_tools()
