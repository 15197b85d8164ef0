"""The Copilot over stdio: it spawns `iqts mcp` exactly as an IDE assistant would, as the local user."""

from __future__ import annotations

from agent.events import FinalEvent, ToolEndEvent
from agent.mcp import McpStdio
from agent.models.scripted import ScriptedChatModel, tool_call
from agent.session import Copilot
from engine.settings import AgentSettings, Settings
from engine.store.database import Database
from tests.unit.agent.test_graph import price_answer


async def test_ask_over_stdio(settings: Settings, db: Database, sample_loaded: None) -> None:
    model = ScriptedChatModel(script=[tool_call("get_ticker", symbol="ETH/USD"), price_answer])
    async with Copilot.connect(
        settings, mcp=McpStdio(), checkpoint_url=db.url, model=model, agent_settings=AgentSettings()
    ) as c:
        assert c.connection.transport == "stdio" and c.connection.server_name == "iqts"
        events = await c.ask(Copilot.new_thread_id(), "What is the last ETH/USD price?")
    end = next(e for e in events if isinstance(e, ToolEndEvent))
    assert end.status == "ok" and end.result is not None and end.result["symbol"] == "ETH/USD"
    final = next(e for e in events if isinstance(e, FinalEvent))
    assert str(end.result["last"]) in final.text
