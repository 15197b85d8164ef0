"""Recover after a tool error: the model gets further steps with the error in view, a corrected call succeeds, an
identical failed call is not sent again, and the number of corrections is bounded."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from agent.events import FinalEvent, ToolEndEvent
from agent.models.scripted import tool_call
from agent.session import Copilot
from engine.settings import AgentSettings
from tests.unit.agent.conftest import CopilotFactory
from tests.unit.agent.test_graph import final, price_answer


@pytest.fixture
def agent_settings() -> AgentSettings:
    return AgentSettings(agent_approval_wait_s=1.0, agent_approval_poll_s=0.2, agent_max_steps=8, agent_error_retries=2)


def _error_seen(messages: Sequence[BaseMessage]) -> str:
    """The last tool error as the model read it."""
    error = next(m for m in reversed(messages) if isinstance(m, ToolMessage) and m.status == "error")
    return str(error.content)


async def test_a_wrong_first_call_then_a_corrected_one_succeeds(copilot: CopilotFactory) -> None:
    script = [tool_call("get_ticker", symbol="DOGE/USD"), tool_call("get_ticker", symbol="BTC/USD"), price_answer]
    async with copilot(script) as (c, model):
        events = await c.ask(Copilot.new_thread_id(), "What is the last BTC/USD price?")
    ends = [e for e in events if isinstance(e, ToolEndEvent)]
    assert [e.status for e in ends] == ["error", "ok"]
    assert "BTC/USD" in ends[0].text  # the server's error lists the stored series
    second = model.prompts[1]
    assert "BTC/USD" in _error_seen(second)  # the error (and its valid choices) is in view of the next step
    assert isinstance(second[-1], HumanMessage) and "failed" in str(second[-1].content)
    answer = final(events)
    assert ends[1].result is not None and str(ends[1].result["last"]) in answer.text


async def test_the_same_failed_call_is_not_sent_twice_and_ends_the_turn(copilot: CopilotFactory) -> None:
    """A model that repeats a failed call would only repeat it again: the turn ends with the error, in the server's
    words and once, and the model is not asked again."""
    script = [
        tool_call("get_ticker", symbol="DOGE/USD"),
        tool_call("get_ticker", symbol="DOGE/USD"),
        tool_call("get_ticker", symbol="BTC/USD"),
        price_answer,
    ]
    async with copilot(script) as (c, model):
        events = await c.ask(Copilot.new_thread_id(), "What is the last bitcoin price?")
    ends = [e for e in events if isinstance(e, ToolEndEvent)]
    assert [e.status for e in ends] == ["error", "error"]
    assert "already failed" in ends[1].text and ends[1].duration_ms == 0.0  # not sent to the server
    assert model.position[0] == 2
    answer = final(events).text
    assert answer.startswith("I could not complete this") and answer.count("no stored data for DOGE/USD") == 1
    assert "this exact call" not in answer


async def test_a_call_already_answered_is_not_sent_again(copilot: CopilotFactory) -> None:
    script = [tool_call("get_ticker", symbol="BTC/USD"), tool_call("get_ticker", symbol="BTC/USD"), price_answer]
    async with copilot(script) as (c, model):
        events = await c.ask(Copilot.new_thread_id(), "What is the last bitcoin price?")
    ends = [e for e in events if isinstance(e, ToolEndEvent)]
    assert [e.status for e in ends] == ["ok", "error"]
    assert "already made this turn" in ends[1].text and ends[1].duration_ms == 0.0
    assert "already made this turn" in _error_seen(model.prompts[2])
    assert "price is" in final(events).text


async def test_corrections_are_bounded(copilot: CopilotFactory) -> None:
    wrong = [tool_call("get_ticker", symbol=s) for s in ("DOGE/USD", "XRP/USD", "SOL/USD", "ADA/USD", "DOT/USD")]
    async with copilot([*wrong, AIMessage(content="never reached")]) as (c, model):
        events = await c.ask(Copilot.new_thread_id(), "What is the last bitcoin price?")
    ends = [e for e in events if isinstance(e, ToolEndEvent)]
    assert len(ends) == 3 and all(e.status == "error" for e in ends)  # the first call and 2 corrections
    assert model.position[0] == 3  # the model was not asked again after the bound
    answer = final(events)
    assert answer.text.startswith("I could not complete this") and "get_ticker" in answer.text
    assert isinstance(answer, FinalEvent)
