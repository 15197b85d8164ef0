"""The real embedded runtime (llama.cpp in-process through xllamacpp) with the tiny SmolLM2-135M: its answers are
nonsense, so these tests check only the plumbing: constrained output always parses and validates, streaming works,
and a whole turn over the real MCP server ends in a well-formed final event."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.tools import StructuredTool
from pydantic import SecretStr

from agent.events import FinalEvent, ToolEndEvent, ToolStartEvent
from agent.mcp import McpHttp
from agent.models import describe_model, make_chat_model
from agent.models.constrained import tool_specs
from agent.models.local import LocalChatModel
from agent.session import Copilot
from engine.runtime import Runtime
from engine.settings import AgentSettings, Settings

TICKER_SCHEMA = {
    "type": "object",
    "properties": {"symbol": {"type": "string", "description": "unified symbol, e.g. BTC/USD"}},
    "required": ["symbol"],
}


@pytest.fixture(scope="module")
def plumbing_settings() -> AgentSettings:
    return AgentSettings(llm_max_tokens=96, llm_context=4096, llm_threads=1, agent_max_steps=2)


@pytest.fixture(scope="module")
def smol(settings: Settings, plumbing_settings: AgentSettings) -> LocalChatModel:
    model = make_chat_model("local:smollm2", settings, plumbing_settings)
    assert isinstance(model, LocalChatModel)
    return model


def test_the_factory_builds_the_local_runtime(smol: LocalChatModel) -> None:
    assert "SmolLM2" in smol.label and smol.threads == 1
    assert describe_model("local:smollm2").label == smol.label


async def test_constrained_output_is_always_a_valid_decision(smol: LocalChatModel) -> None:
    tool = StructuredTool(
        name="get_ticker", description="The last price of a symbol.", args_schema=TICKER_SCHEMA, func=lambda **kw: kw
    )
    bound = smol.bind_tools([tool])
    assert isinstance(bound, LocalChatModel) and [s.name for s in bound.specs] == ["get_ticker"]
    for question in ("What is the last BTC/USD price?", "Say hello.", "Price of ETH/USD please"):
        reply = await bound.ainvoke([SystemMessage("You are a trading assistant."), HumanMessage(question)])
        if reply.tool_calls:
            assert reply.tool_calls[0]["name"] == "get_ticker"
            assert set(reply.tool_calls[0]["args"]) == {"symbol"} and isinstance(
                reply.tool_calls[0]["args"]["symbol"], str
            )
        else:
            assert isinstance(reply.content, str) and reply.content.strip()
        assert reply.response_metadata["model_name"] == smol.label
    chunks = [c async for c in bound.astream([HumanMessage("Say hello.")])]
    assert chunks and chunks[-1].chunk_position == "last"
    text = "".join(str(c.content) for c in chunks)
    assert "{" not in text[:1]  # the user sees the answer, not the JSON around it
    assert json.dumps(tool_specs([{"name": "x", "parameters": TICKER_SCHEMA}])[0].parameters)


async def test_a_whole_turn_over_mcp_with_the_real_runtime(
    settings: Settings,
    db: object,
    mcp_api: tuple[str, Runtime],
    trader_token: str,
    smol: LocalChatModel,
    plumbing_settings: AgentSettings,
) -> None:
    url, _ = mcp_api
    info = describe_model("local:smollm2")
    async with Copilot.connect(
        settings,
        mcp=McpHttp(url=url, token=SecretStr(trader_token)),
        model=smol,
        model_info=info,
        agent_settings=plumbing_settings,
    ) as c:
        events = await c.ask(Copilot.new_thread_id(), "What is the last BTC/USD price?")
        tools = set(c.tool_names)
    finals = [e for e in events if isinstance(e, FinalEvent)]
    assert len(finals) == 1 and finals[0].text.strip()
    assert finals[0].model_label == info.label and "SmolLM2" in finals[0].model_label
    for start in (e for e in events if isinstance(e, ToolStartEvent)):
        assert start.tool in tools  # constrained decoding cannot name a tool that does not exist
    for end in (e for e in events if isinstance(e, ToolEndEvent)):
        assert end.status in ("ok", "error", "blocked")
