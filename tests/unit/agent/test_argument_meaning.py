"""The argument filter reads the user's words for meaning: an optional value is kept when the message means it
(words for timeframes, names for assets, numbers written out, synonyms), and dropped when nothing in it does."""

from __future__ import annotations

from typing import Any

import pytest

from agent.guards.arguments import Meaning, ground_arguments

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["strategy"],
    "properties": {
        "strategy": {"type": "string"},
        "symbol": {"type": "string"},
        "timeframe": {"type": "string"},
        "start": {"type": "string"},
        "n_trials": {"type": "integer"},
        "fee": {"type": "number"},
        "account": {"type": "string"},
    },
}


def kept(args: dict[str, Any], said: str) -> dict[str, Any]:
    out, _ = ground_arguments({"strategy": "sma_cross", **args}, SCHEMA, said)
    out.pop("strategy")
    return out


@pytest.mark.parametrize(
    ("said", "timeframe"),
    [
        ("show me hourly prices of bitcoin", "1h"),
        ("daily bars please", "1d"),
        ("weekly candles", "1w"),
        ("one bar every hour", "1h"),
        ("use 4-hour bars", "4h"),
        ("fifteen minute candles", "15m"),
        ("on the 4h chart", "4h"),
        ("monthly closes", "1M"),
    ],
)
def test_timeframes_in_words_are_said(said: str, timeframe: str) -> None:
    assert kept({"timeframe": timeframe}, said) == {"timeframe": timeframe}


@pytest.mark.parametrize(
    ("said", "timeframe"),
    [("show me hourly prices", "1d"), ("daily bars please", "1h"), ("weekly candles", "4h")],
)
def test_a_timeframe_the_user_did_not_mean_is_dropped(said: str, timeframe: str) -> None:
    assert kept({"timeframe": timeframe}, said) == {}


@pytest.mark.parametrize(
    ("said", "symbol"),
    [
        ("backtest on bitcoin", "BTC/USD"),
        ("backtest on btc", "BTC/USD"),
        ("backtest on BTC/USDT", "BTC/USDT"),
        ("price of ether", "ETH/USD"),
        ("price of ethereum", "ETH"),
        ("litecoin daily", "LTC/USD"),
        ("btc-usdt please", "BTC/USDT"),
    ],
)
def test_assets_by_name_or_ticker_are_said(said: str, symbol: str) -> None:
    assert kept({"symbol": symbol}, said) == {"symbol": symbol}


@pytest.mark.parametrize(
    ("said", "symbol"),
    [("backtest on bitcoin", "ETH/USD"), ("backtest on BTC/USD", "BTC/USDT"), ("what do I hold?", "BTC/USD")],
)
def test_a_symbol_the_user_did_not_name_is_dropped(said: str, symbol: str) -> None:
    assert kept({"symbol": symbol}, said) == {}


@pytest.mark.parametrize(
    ("said", "number"),
    [
        ("optimise with fifty trials", 50),
        ("twenty-five trials", 25),
        ("a hundred trials", 100),
        ("two hundred and ten trials", 210),
        ("run 2k trials", 2000),
        ("1.5 million trials", 1_500_000),
        ("a fee of 0.1 %", 0.001),
        ("a fee of five percent", 0.05),
        ("30 trials", 30),
    ],
)
def test_numbers_written_out_are_said(said: str, number: float) -> None:
    key = "fee" if number < 1 else "n_trials"
    assert kept({key: number}, said) == {key: number}


def test_numbers_nobody_said_are_dropped() -> None:
    assert kept({"n_trials": 50, "fee": 0.001}, "optimise sma_cross with twenty trials") == {}


@pytest.mark.parametrize(
    ("said", "start"),
    [
        ("since March 2024", "2024-03-01"),
        ("from 2023", "2023-01-01"),
        ("over the last week", "7d ago"),
        ("the past 30 days", "30d ago"),
        ("the last two weeks", "14d ago"),
        ("since 2024-02-10", "2024-02-10"),
    ],
)
def test_periods_and_dates_the_user_meant_are_said(said: str, start: str) -> None:
    assert kept({"start": start}, said) == {"start": start}


@pytest.mark.parametrize(
    ("said", "start"),
    [("backtest it", "2024-01-01"), ("since March 2024", "2023-03-01"), ("over the last week", "30d ago")],
)
def test_invented_dates_are_dropped(said: str, start: str) -> None:
    assert kept({"start": start}, said) == {}


@pytest.mark.parametrize(
    ("said", "value", "expected"),
    [
        ("use the MACD crossover", "macd_cross", True),
        ("a moving average crossover", "sma_cross", True),
        ("mean reversion strategy", "mean-reversion", True),
        ("buy on the main account", "main", True),
        ("buy 0.01 BTC/USD", "main", False),
        ("use the RSI strategy", "macd_cross", False),
    ],
)
def test_names_are_said_by_their_words_or_synonyms(said: str, value: str, expected: bool) -> None:
    assert Meaning.read(said).says_string(value) is expected


def test_required_arguments_and_free_text_are_always_kept() -> None:
    out, dropped = ground_arguments(
        {"strategy": "anything", "account": "because the user asked"}, SCHEMA, "backtest something"
    )
    assert out == {"strategy": "anything", "account": "because the user asked"} and dropped == []


SEARCH: dict[str, Any] = {
    "type": "object",
    "required": ["query"],
    "properties": {
        "query": {"type": "string"},
        "kinds": {"type": "array", "items": {"type": "string", "enum": ["note", "strategy", "risk_policy", "journal"]}},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
}


@pytest.mark.parametrize(
    ("said", "kinds", "expected", "lost"),
    [
        ("What does my stop-loss rule say?", ["risk_policy"], None, ["kinds"]),
        ("What do my notes say about ETH?", ["note", "strategy"], ["note"], ["kinds[strategy]"]),
        ("Search my journal and my notes for LTC", ["journal", "note"], ["journal", "note"], []),
        ("what is in the risk policy", ["risk_policy"], ["risk_policy"], []),
    ],
)
def test_choices_of_an_optional_enum_list_are_kept_only_when_named(
    said: str, kinds: list[str], expected: list[str] | None, lost: list[str]
) -> None:
    out, dropped = ground_arguments({"query": "stop loss", "kinds": kinds}, SEARCH, said)
    assert out.get("kinds") == expected and dropped == lost
    assert out["query"] == "stop loss"


def test_a_free_list_is_not_filtered_as_choices() -> None:
    out, dropped = ground_arguments({"query": "eth", "tags": ["thesis"]}, SEARCH, "find my eth notes")
    assert out["tags"] == ["thesis"] and dropped == []
