"""Each MCP server carries its own runtime (the FastMCP lifespan context), and a backtest's journal entry is
written before the tool answers, so a stdio session that ends right after the call loses nothing."""

from __future__ import annotations

import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.memory import create_connected_server_and_client_session
from pydantic import AnyUrl

from engine.audit import entries
from engine.bus import InProcessBus
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database
from knowledge.service import list_documents
from tools.server import build_server


async def test_two_servers_in_one_process_keep_their_own_runtime(settings: Settings, db: Database) -> None:
    """Before, each build_server overwrote one process-wide runtime: the stdio server built first then answered
    as the HTTP one built after it ("unauthenticated")."""
    local = build_server(Runtime(settings=settings, db=db, bus=InProcessBus()), transport="stdio")
    remote = build_server(Runtime(settings=settings, db=db, bus=InProcessBus()), transport="http")
    async with create_connected_server_and_client_session(local) as on_local:
        listed = await on_local.call_tool("list_strategies", {})
        assert not listed.isError, listed.content
        policy = await on_local.read_resource(AnyUrl("iqts://risk-policy"))  # resources read the runtime too
        assert "max_order_notional" in policy.contents[0].text  # type: ignore[union-attr]
    async with create_connected_server_and_client_session(remote) as on_remote:
        refused = await on_remote.call_tool("list_strategies", {})
        assert refused.isError and "unauthenticated" in str(refused.content)
    async with create_connected_server_and_client_session(local) as on_local:
        again = await on_local.call_tool("list_strategies", {})
        assert not again.isError, again.content
    [latest] = entries(db, subject="tool:list_strategies", action="tool.call", limit=1)
    assert latest.actor == "local" and latest.payload["transport"] == "stdio"


async def test_a_backtest_is_journaled_when_the_stdio_session_ends_right_after(
    settings: Settings, db: Database, sample_loaded: None
) -> None:
    env = dict(os.environ) | {"IQTS_STATE_DIR": str(settings.state_dir), "IQTS_DB_NAME": settings.db_name}
    params = StdioServerParameters(command=sys.executable, args=["-m", "ui.cli.main", "mcp"], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        result = await session.call_tool("run_backtest", {"strategy": "sma_cross", "symbol": "BTC/USD"})
        assert not result.isError, result.content
        assert result.structuredContent is not None
        run_id = result.structuredContent["run_id"]
    # the session and the server process are gone: the note was written before the answer, or never
    journal = [d for d in list_documents(db, ["journal"]) if d.source == f"journal://backtest/{run_id}"]
    assert len(journal) == 1, f"no journal entry for {run_id}"
