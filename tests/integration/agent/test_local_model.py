"""The real default model (Qwen2.5-Coder-1.5B-Instruct Q4_K_M, in-process) on a handful of prompts, end to end:
prompt -> constrained tool call over MCP -> answer with the figure, and an order proposal that waits for a person.
Latency per prompt is measured and written to ``<state_dir>/reports/agent-local-model.json``."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from pydantic import SecretStr

from agent.events import ApprovalPendingEvent, Event, FinalEvent, TokenEvent, ToolEndEvent, ToolStartEvent
from agent.mcp import McpHttp
from agent.models import describe_model, make_chat_model
from agent.session import Copilot
from engine.runtime import Runtime
from engine.settings import AgentSettings, Settings
from engine.store.database import Database

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # the first prompt pays a cold prefill

MEASURED: list[dict[str, Any]] = []
CopilotFactory = Callable[[], AbstractAsyncContextManager[Copilot]]


@pytest.fixture(scope="module", autouse=True)
def latency_report(settings: Settings) -> Iterator[None]:
    yield
    report = settings.state_dir / "reports" / "agent-local-model.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps({"model": describe_model("local").label, "prompts": MEASURED}, indent=2))


@pytest.fixture
def copilot(
    settings: Settings, db: Database, mcp_api: tuple[str, Runtime], trader_token: str
) -> Callable[[], AbstractAsyncContextManager[Copilot]]:
    """``async with copilot() as c:`` (entered and left in the test's own task, as anyio requires)."""
    with db.connection() as conn:
        conn.execute("DELETE FROM system_state WHERE key IN ('kill_switch', 'breakers')")
    url, _ = mcp_api

    @asynccontextmanager
    async def make() -> AsyncIterator[Copilot]:
        agent_settings = AgentSettings()
        started = time.monotonic()
        model = make_chat_model("local", settings, agent_settings)  # fetches and verifies the weights when missing
        async with Copilot.connect(
            settings,
            mcp=McpHttp(url=url, token=SecretStr(trader_token)),
            checkpoint_url=db.url,
            model=model,
            model_info=describe_model("local"),
            agent_settings=agent_settings,
        ) as c:
            connected = time.monotonic() - started
            warm = await c.ready()  # load + prefill of the system prompt and tool catalogue
            MEASURED.append(
                {
                    "prompt": "(connect, then warm-up)",
                    "seconds": round(connected, 2),
                    "warm_up_s": None if warm is None else round(warm, 2),
                    "threads": getattr(model, "threads", None),
                }
            )
            yield c

    return make


async def timed(c: Copilot, prompt: str) -> list[Event]:
    started = time.monotonic()
    first_tool: float | None = None
    first_token: float | None = None
    events: list[Event] = []
    async for event in c.ask(Copilot.new_thread_id(), prompt):
        now = time.monotonic() - started
        if isinstance(event, ToolStartEvent) and first_tool is None:
            first_tool = now
        if isinstance(event, TokenEvent) and first_token is None:
            first_token = now
        events.append(event)
    MEASURED.append(
        {
            "prompt": prompt,
            "seconds": round(time.monotonic() - started, 2),
            "first_tool_call_s": None if first_tool is None else round(first_tool, 2),
            "first_answer_token_s": None if first_token is None else round(first_token, 2),
            "tools": [e.tool for e in events if isinstance(e, ToolStartEvent)],
            "answer": next((e.text for e in events if isinstance(e, FinalEvent)), None),
        }
    )
    return events


def calls(events: list[Event]) -> list[tuple[str, dict[str, Any]]]:
    return [(e.tool, e.arguments) for e in events if isinstance(e, ToolStartEvent)]


async def test_last_price_comes_from_the_tool(copilot: CopilotFactory) -> None:
    async with copilot() as c:
        events = await timed(c, "What is the last BTC/USD price?")
    assert calls(events)[0] == ("get_ticker", {"symbol": "BTC/USD"})
    result = next(e for e in events if isinstance(e, ToolEndEvent)).result
    assert result is not None
    final = next(e for e in events if isinstance(e, FinalEvent))
    figure = f"{result['last']}"
    assert figure in final.text.replace(",", "") or f"{result['last']:,}" in final.text
    assert "Qwen2.5-Coder-1.5B-Instruct" in final.model_label


async def test_buy_proposes_the_exact_order_and_waits_for_a_person(copilot: CopilotFactory) -> None:
    async with copilot() as c:
        events = await timed(c, "buy 0.01 BTC/USD")
    tool, args = calls(events)[0]
    assert tool == "propose_order"
    order = args["order"]
    assert (order["symbol"], order["side"], float(order["quantity"])) == ("BTC/USD", "buy", 0.01)
    assert set(order) <= {"symbol", "side", "quantity", "type"} and order.get("type", "market") == "market"
    pending = [e for e in events if isinstance(e, ApprovalPendingEvent)]
    assert len(pending) == 1 and pending[0].inbox_url.endswith(pending[0].approval_id)


@pytest.mark.parametrize(
    ("prompt", "tool"),
    [
        ("Which market data series are stored?", "list_markets"),
        ("Show me my portfolio.", "get_portfolio"),
        ("List the pending approval requests.", "list_approvals"),
    ],
)
async def test_research_questions_pick_the_right_tool(copilot: CopilotFactory, prompt: str, tool: str) -> None:
    async with copilot() as c:
        events = await timed(c, prompt)
    assert calls(events) and calls(events)[0][0] == tool
    final = next(e for e in events if isinstance(e, FinalEvent))
    assert final.text.strip() and not final.blocked
