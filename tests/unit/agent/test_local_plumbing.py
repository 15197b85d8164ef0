"""The real embedded runtime (llama.cpp in-process through xllamacpp) with the tiny SmolLM2-135M: its answers are
nonsense, so these tests check only the plumbing: constrained output always parses and validates, streaming works,
and a whole turn over the real MCP server ends in a well-formed final event."""

from __future__ import annotations

import json
from pathlib import Path

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


async def test_the_prefix_cache_survives_a_restart(settings: Settings, plumbing_settings: AgentSettings) -> None:
    """Prefill once: the first warm-up reads the prefix and saves the slot; after the engine is dropped (a restart),
    the warm-up restores the file instead of reading the prefix again, and the next turn reuses it."""
    from agent.models import prefill
    from agent.models.local import unload_engine

    model = make_chat_model("local:smollm2", settings, plumbing_settings)
    assert isinstance(model, LocalChatModel) and model.cache_dir is not None
    system = f"You are a test assistant for the prefix cache ({settings.db_name}). " * 12
    unload_engine(model.model_path, model.threads, model.context, model.cache_dir)
    first = await model.awarm_detail(system)
    assert first.source == "prefilled" and first.cache_file is not None
    assert (await model.awarm_detail(system)).source == "held"
    unload_engine(model.model_path, model.threads, model.context, model.cache_dir)  # as after a restart
    restored = await model.awarm_detail(system)
    assert restored.source == "restored" and restored.cache_file == first.cache_file
    assert restored.prefix_tokens is not None and restored.prefix_tokens >= 100
    reply = await model.ainvoke([SystemMessage(system), HumanMessage("Say hello.")])
    timings = reply.response_metadata["timings"]
    assert timings["cache_n"] >= restored.prefix_tokens - 8  # the prefix was not read again
    other = await model.awarm_detail(system + " A different prefix.")
    assert other.source == "prefilled" and other.cache_file != first.cache_file
    assert len(list(Path(model.cache_dir).glob("prefix-*.bin"))) <= prefill.KEEP


def test_threads_come_from_a_fresh_measurement(tmp_path: Path) -> None:
    from agent.models import prefill

    directory = tmp_path
    assert prefill.choose_threads(directory, 3) == 3  # nothing measured: the fallback
    samples = [
        prefill.ThreadSample(threads=1, prompt_tokens_per_s=30, generation_tokens_per_s=9, turn_estimate_s=0),
        prefill.ThreadSample(threads=2, prompt_tokens_per_s=8, generation_tokens_per_s=2, turn_estimate_s=0),
    ]
    samples = [
        s.model_copy(
            update={"turn_estimate_s": prefill.turn_estimate(s.prompt_tokens_per_s, s.generation_tokens_per_s)}
        )
        for s in samples
    ]
    assert prefill.save_choice(directory, samples).threads == 1  # two threads collapsed under load: one wins
    assert prefill.choose_threads(directory, 2) == 1
    assert prefill.load_choice(directory, fresh_s=-1) is None  # stale: the warm-up measures again
    assert prefill.choose_threads(directory, 2) == 1  # until then every model of the process picks the same


def test_the_warm_up_notice_counts_seconds_then_says_ready(settings: Settings) -> None:
    from agent import warmup

    assert warmup.notice(12.4, ready=False).startswith("warming up the local model (12 s)")
    assert warmup.notice(40, ready=True) == "The local model is ready (warm-up took 40 s)."
    assert warmup.uses_local_model(settings.model_copy(update={"llm": "local"}))
    assert not warmup.uses_local_model(settings.model_copy(update={"llm": "ollama:qwen2.5"}))


def test_the_warm_up_never_downloads_the_model(settings: Settings, tmp_path: Path) -> None:
    from agent import warmup

    fresh = settings.model_copy(update={"state_dir": tmp_path, "llm": "local"})
    assert not warmup.weights_present(fresh)  # a fresh install: the warm-up is skipped, nothing is fetched
    assert warmup.weights_present(settings.model_copy(update={"llm": "local:smollm2"}))  # fetched for these tests
