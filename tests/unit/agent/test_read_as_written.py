"""Arguments read as the user wrote them (periods attached to indicators, ``10/50`` for a strategy's parameters,
values the conversation already gave), the knowledge recalled for a question about the user's own records, and the
brief answer asked for after figures that the final answer renders."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from agent.events import FinalEvent, ToolEndEvent, ToolStartEvent
from agent.graph.nodes import ANSWERED_ALREADY, FailedCall, gave_up
from agent.graph.recall import SEARCH_TOOL, on_topic, recall_query
from agent.guards.answers import NO_CANCEL, claims_cancelled, describe_cancel_requests
from agent.guards.parameters import attached_periods, complete_indicators, complete_strategy_params
from agent.models.constrained import (
    ANSWER_LIMIT,
    ANSWER_LIMIT_KEY,
    BRIEF_ANSWER_LIMIT,
    SHORT_ANSWER_LIMIT,
    answer_limit,
    cut_at_a_bound,
    decision_schema,
    parse_decision,
    tool_specs,
    whole_clauses,
)
from agent.models.scripted import tool_call
from agent.session import Copilot
from tests.unit.agent.conftest import CopilotFactory

STRATEGY_PARAMETERS = {"sma_cross": ["fast", "slow"], "macd": ["fast", "slow", "signal"], "buy_and_hold": []}


@pytest.mark.parametrize(
    ("text", "given", "sent"),
    [
        ("What is the current 14-period RSI of bitcoin?", {"indicators": ["rsi"], "window": 14}, ["rsi:14"]),
        ("ETH 50 day moving average?", {"indicators": ["sma"], "window": 50}, ["sma:50"]),
        ("20 EMA on litecoin please", {"indicators": ["ema"]}, ["ema:20"]),
        ("the 20-day exponential moving average of BTC", {"indicators": ["ema"]}, ["ema:20"]),
        ("Give me the 14 period ATR.", {"indicators": ["atr:20"]}, ["atr:14"]),
        ("Where are the Bollinger bands (20, 2) for ETH?", {"indicators": ["bollinger"]}, ["bollinger:20,2"]),
        ("MACD 12/26/9 on BTC", {"indicators": ["macd"]}, ["macd:12,26,9"]),
        ("30-day realised volatility of bitcoin?", {"indicators": ["volatility"]}, ["volatility:30"]),
        ("rsi(14) and sma50 on eth", {"indicators": ["rsi", "sma"]}, ["rsi:14", "sma:50"]),
    ],
)
def test_a_period_written_beside_its_indicator_goes_into_the_spec(
    text: str, given: dict[str, Any], sent: list[str]
) -> None:
    args, notes = complete_indicators({"symbol": "BTC/USD", **given}, text)
    assert args["indicators"] == sent and args["symbol"] == "BTC/USD"
    assert "window" not in args  # the period was never a number of rows
    assert notes and all("as written" in n or "dropped" in n for n in notes)


@pytest.mark.parametrize(
    ("text", "given"),
    [
        ("Show the RSI of BTC over the last 5 bars.", {"indicators": ["rsi"], "window": 5}),
        ("hourly RSI for btc", {"indicators": ["rsi"]}),
        ("what is the 4h rsi of eth", {"indicators": ["rsi"]}),  # a timeframe, not a period
        ("4-hour RSI of BTC", {"indicators": ["rsi"]}),
        ("compute RSI and MACD for BTC/USD", {"indicators": ["rsi", "macd"]}),
        ("rsi 14 on btc", {"indicators": ["rsi:14"]}),  # already as written
    ],
)
def test_nothing_is_changed_when_the_words_attach_no_period(text: str, given: dict[str, Any]) -> None:
    assert complete_indicators(given, text) == (given, [])


def test_rows_asked_for_in_words_stay_beside_the_period() -> None:
    args, _ = complete_indicators({"indicators": ["rsi"], "window": 14}, "rsi(14) over the last 14 bars")
    assert args == {"indicators": ["rsi:14"], "window": 14}
    periods, spans = attached_periods("the 50 day moving average and RSI 7")
    assert periods == {"rsi": ["7"], "sma": ["50"]} and len(spans) == 2


@pytest.mark.parametrize(
    ("text", "strategy", "params"),
    [
        ("Backtest an SMA crossover 10/50 on BTC/USD daily.", "sma_cross", {"fast": 10, "slow": 50}),
        ("macd 12/26/9 backtest on eth", "macd", {"fast": 12, "slow": 26, "signal": 9}),
        ("backtest SMA cross 20 / 100 on ETH/USD", "SMA cross", {"fast": 20, "slow": 100}),
    ],
)
def test_a_parameter_group_fills_an_empty_params_in_the_strategys_order(
    text: str, strategy: str, params: dict[str, int]
) -> None:
    args, notes = complete_strategy_params({"strategy": strategy, "symbol": "BTC/USD"}, text, STRATEGY_PARAMETERS)
    assert args["params"] == params and len(notes) == 1


@pytest.mark.parametrize(
    ("text", "args"),
    [
        ("backtest macd on BTC/USD from 2019/01/01", {"strategy": "macd"}),  # a date
        ("sma_cross 10/50 vs 20/100", {"strategy": "sma_cross"}),  # which one is meant?
        ("sma_cross 10/50/200", {"strategy": "sma_cross"}),  # more numbers than parameters
        ("sma_cross 10/50", {"strategy": "sma_cross", "params": {"fast": 12}}),  # the model gave some
        ("unknown 10/50", {"strategy": "moon_shot"}),
    ],
)
def test_no_params_are_guessed_from_an_unclear_group(text: str, args: dict[str, Any]) -> None:
    assert complete_strategy_params(args, text, STRATEGY_PARAMETERS) == (args, [])


@pytest.mark.parametrize(
    "text",
    [
        "What does my stop-loss rule say for BTC swing trades?",
        "Why am I long ETH according to my notes?",
        "how much do I risk per trade by my own sizing rule?",
        "What lesson did I write down after the failed LTC breakout?",
        "When am I not supposed to open positions on FOMC days?",
        "What are my preferred sma_cross parameters?",
    ],
)
def test_questions_about_the_users_own_records_are_recalled(text: str) -> None:
    assert recall_query(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "What do I hold?",
        "Give me the current risk status.",
        "what are my risk limits?",
        "Do I have any open positions?",
        "What is bitcoin trading at right now?",
        "Save a note titled 'BTC halving' saying: the reward halves.",
        "What is a Sharpe ratio?",
    ],
)
def test_other_questions_are_not(text: str) -> None:
    assert recall_query(text) is None


def test_an_answer_stopped_at_its_bound_is_cut_back_to_its_last_sentence() -> None:
    whole = "The run returned 393.39 %. It beat buy and hold."
    assert not cut_at_a_bound(whole)
    stopped = ("The run returned 393.39 %. " * 10)[: BRIEF_ANSWER_LIMIT - 4] + " and"
    assert len(stopped) == BRIEF_ANSWER_LIMIT and cut_at_a_bound(stopped)
    assert not cut_at_a_bound(stopped[:150])  # short of every bound: the model ended there itself
    recital = "The backtest has a total return of 2,748.63%, a sharpe of 1.45, a max drawdown of 73.98%, a max of"
    assert (
        whole_clauses(recital)
        == "The backtest has a total return of 2,748.63%, a sharpe of 1.45, a max drawdown of 73.98%."
    )
    assert whole_clauses("Done.") == "Done."


def test_the_answer_bound_follows_the_last_message_and_reaches_the_grammar() -> None:
    assert answer_limit([]) == ANSWER_LIMIT
    assert answer_limit([HumanMessage(content="hi")]) == ANSWER_LIMIT
    brief = HumanMessage(content="be brief", additional_kwargs={ANSWER_LIMIT_KEY: BRIEF_ANSWER_LIMIT})
    assert answer_limit([brief]) == BRIEF_ANSWER_LIMIT
    assert answer_limit([brief, HumanMessage(content="later")]) == ANSWER_LIMIT
    assert answer_limit([HumanMessage(content="x", additional_kwargs={ANSWER_LIMIT_KEY: 10**6})]) == ANSWER_LIMIT
    schema = decision_schema(tool_specs([]), BRIEF_ANSWER_LIMIT)
    assert schema["anyOf"][-1]["properties"]["answer"]["maxLength"] == BRIEF_ANSWER_LIMIT
    long = "The return was 393.39 %. " + "It beat buy and hold by a wide margin. " * 12
    reply = json.dumps({"tool": "final_answer", "answer": long[:BRIEF_ANSWER_LIMIT]})
    cut = parse_decision(reply, [], BRIEF_ANSWER_LIMIT)
    assert cut.answer is not None and cut.answer.endswith(".") and len(cut.answer) <= BRIEF_ANSWER_LIMIT


async def test_a_period_written_with_the_indicator_reaches_the_tool_as_written(copilot: CopilotFactory) -> None:
    script = [
        tool_call("compute_indicators", symbol="BTC/USD", indicators=["rsi"], window=14),
        AIMessage(content="The latest RSI is in the figures below."),
    ]
    async with copilot(script) as (c, _model):
        events = await c.ask(Copilot.new_thread_id(), "What is the current 14-period RSI of BTC/USD?")
    start = next(e for e in events if isinstance(e, ToolStartEvent))
    assert start.arguments == {"symbol": "BTC/USD", "indicators": ["rsi:14"]}
    assert any("rsi:14" in note for note in start.read_as)
    end = next(e for e in events if isinstance(e, ToolEndEvent))
    assert end.status == "ok" and end.result is not None and len(end.result["rows"]) == 1  # the latest only
    answer = next(e for e in events if isinstance(e, FinalEvent)).text
    latest = end.result["rows"][-1]["values"]["rsi(14)"]
    assert f"rsi(14): {latest:.2f}" in answer  # rendered from the tool result under the model's words


async def test_a_parameter_group_reaches_the_backtest_in_the_catalogues_order(copilot: CopilotFactory) -> None:
    script = [tool_call("run_backtest", strategy="sma_cross", symbol="BTC/USD"), AIMessage(content="Done.")]
    async with copilot(script) as (c, model):
        assert c._deps.strategy_parameters["sma_cross"] == ["fast", "slow"]  # read from list_strategies over MCP
        events = await c.ask(Copilot.new_thread_id(), "Backtest an SMA crossover 12/40 on BTC/USD.")
    start = next(e for e in events if isinstance(e, ToolStartEvent))
    assert start.arguments["params"] == {"fast": 12, "slow": 40}
    end = next(e for e in events if isinstance(e, ToolEndEvent))
    assert end.status == "ok" and end.result is not None and end.result["params"] == {"fast": 12, "slow": 40}
    hint = model.prompts[1][-1]  # after a result whose figures the answer renders: be brief
    assert isinstance(hint, HumanMessage) and hint.additional_kwargs[ANSWER_LIMIT_KEY] == BRIEF_ANSWER_LIMIT


async def test_a_question_about_the_users_notes_starts_from_the_knowledge_base(copilot: CopilotFactory) -> None:
    script = [AIMessage(content="Your stop rule: a hard stop 4% below the entry (Stop rules).")]
    async with copilot(script) as (c, model):
        note = await c.connection.session.call_tool(
            "add_note", {"title": "Stop rules", "text": "Every BTC swing trade gets a hard stop 4% below the entry."}
        )
        assert not note.isError, note.content
        events = await c.ask(Copilot.new_thread_id(), "What does my stop-loss rule say for BTC swing trades?")
    start = next(e for e in events if isinstance(e, ToolStartEvent))
    assert start.tool == SEARCH_TOOL and "stop-loss" in start.arguments["query"]
    first_prompt = model.prompts[0]  # the model's first step already has the passages in view
    result = next(m for m in first_prompt if isinstance(m, ToolMessage))
    assert result.name == SEARCH_TOOL and "hard stop 4%" in str(result.content)
    assert first_prompt[-1].additional_kwargs[ANSWER_LIMIT_KEY] == SHORT_ANSWER_LIMIT  # passages: a short answer
    answer = next(e for e in events if isinstance(e, FinalEvent))
    assert "Stop rules" in answer.text and answer.evidence.tools == [SEARCH_TOOL]


@pytest.mark.parametrize(
    ("text", "claimed"),
    [
        ("Order o_1 has been cancelled.", True),
        ("I've cancelled it.", True),
        ("It will be cancelled once a person approves the request.", False),
        ("Nothing is cancelled until it is approved.", False),
        ("The cancel request waits in the inbox.", False),
    ],
)
def test_a_cancellation_claim_is_told_from_a_conditional_one(text: str, claimed: bool) -> None:
    assert claims_cancelled(text) is claimed


def test_a_false_cancellation_claim_is_replaced_by_what_the_requests_are() -> None:
    pending = {"approval_id": "apr_1", "status": "pending", "intent": {"order_id": "o_9"}, "inbox_url": "http://x/i"}
    text = describe_cancel_requests([pending])
    assert "order o_9" in text and "apr_1 is pending" in text and "Nothing is cancelled" in text
    assert describe_cancel_requests([]) == NO_CANCEL
    assert not claims_cancelled(text) and not claims_cancelled(NO_CANCEL)  # the replacement claims nothing


async def test_an_answer_that_claims_a_cancel_nobody_asked_the_tool_for_is_replaced(copilot: CopilotFactory) -> None:
    script = [AIMessage(content="Order o_123 has been cancelled.")]
    async with copilot(script) as (c, _model):
        events = await c.ask(Copilot.new_thread_id(), "cancel order o_123")
    answer = next(e for e in events if isinstance(e, FinalEvent))
    assert answer.text.startswith(NO_CANCEL) and answer.answer_check is not None and answer.answer_check.replaced


def test_the_recall_keeps_the_passages_on_the_questions_subject() -> None:
    fomc = {"title": "Trading hours", "text": "No new positions on FOMC days.", "words_found": ["positions", "fomc"]}
    coffee = {"title": "Coffee", "text": "Buy the dark roast beans.", "words_found": []}
    result = {"query": "When am I not supposed to open positions on FOMC days?", "hits": [fomc, coffee]}
    assert on_topic(result)["hits"] == [fomc]
    by_meaning = {"query": "what did I say about bitcoin", "hits": [{"title": "BTC", "text": "x", "words_found": []}]}
    assert on_topic(by_meaning) is by_meaning  # no passage shares a word: the match may be by meaning alone


def test_asking_again_for_results_already_in_view_ends_with_those_results() -> None:
    repeats = [
        FailedCall(tool="get_ticker", arguments={}, error="this exact call was already made this turn"),
        FailedCall(tool="get_ticker", arguments={}, error="this exact call already failed (...)"),
    ]
    assert gave_up(repeats) == ANSWERED_ALREADY
    real = [FailedCall(tool="get_ticker", arguments={}, error="symbol: no stored data for SOL/USD"), repeats[1]]
    text = gave_up(real)
    assert text.startswith("I could not complete this") and "no stored data for SOL/USD" in text
