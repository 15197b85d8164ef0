"""What the model reads of a tool result (``agent.graph.result_view``), the figures that are not figures (parameter
bounds, catalogue tools), and earlier answers shown to the model without their rendered appendices."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage

from agent.graph.result_view import result_view
from agent.guards.evidence import is_grounded
from agent.guards.figures import figure_block, figure_sources, render_figures
from agent.memory import model_window

BACKTEST: dict[str, Any] = {
    "run_id": "bt_2eed344f57c84f2c",
    "strategy": "sma_cross",
    "symbol": "BTC/USD",
    "timeframe": "1h",
    "start": "2017-07-01T11:00:00Z",
    "end": "2019-10-17T09:00:00Z",
    "params": {"fast": 10, "slow": 50},
    "config": {"fee": 0.001, "initial_cash": 10000.0, "stop_loss": None},
    "metrics": {
        "total_return": 3.933867257734404,
        "sharpe": 1.45852783314417,
        "calmar": 1.7248991727433576,
        "win_rate": 0.2947761194029851,
        "n_trades": 268,
        "final_equity": 49338.672577344034,
    },
    "equity_curve": [{"ts": f"2018-01-{d:02d}T00:00:00Z", "equity": 10000.0 + 137.5 * d} for d in range(1, 29)],
    "data_checksum": "6e4a1dfa836ca68d234860853cb18dc8c429e79a0eb0f94938ed3c22154f09e3",
    "engine_version": "iqts 0.1.0; numba 0.68.1",
}

STRATEGIES: dict[str, Any] = {
    "strategies": [
        {
            "name": "sma_cross",
            "summary": "fast SMA vs slow SMA",
            "parameters": [{"name": "fast", "kind": "int", "low": 2, "high": 400, "default": 10}],
        }
    ]
}


def test_the_view_renders_figures_as_the_answer_shows_them_and_is_much_shorter() -> None:
    view = result_view(BACKTEST, 3500)
    assert "total_return: 393.39 %" in view and "win_rate: 29.48 %" in view
    assert "final_equity: 49,338.67 USD" in view and "initial_cash: 10,000.00 USD" in view
    assert "sharpe: 1.46" in view and "calmar: 1.72" in view and "n_trades: 268" in view
    assert "run_id: bt_2eed344f57c84f2c" in view and "fast: 10" in view
    assert "data_checksum" not in view and "engine_version" not in view and "stop_loss" not in view
    assert "3.933867257734404" not in view
    assert len(view) < len(json.dumps(BACKTEST, separators=(",", ":"))) / 2


def test_a_long_list_keeps_its_first_and_newest_items_with_a_count() -> None:
    view = result_view(BACKTEST, 3500)
    assert "equity_curve (oldest first, the last is the latest; 28; the first and the last):" in view
    assert "... 26 more" in view and "2018-01-27" not in view
    assert "2018-01-01" in view and "2018-01-28" in view and "2018-01-15" not in view
    assert "- latest: ts: 2018-01-28T00:00:00Z, equity: 13,850.00 USD" in view  # the last point, named, as money
    assert view.count("latest") == 2  # the header and that one item


def test_a_list_that_is_no_time_series_has_no_latest_item() -> None:
    view = result_view({"positions": [{"symbol": "BTC/USD", "quantity": 1}, {"symbol": "ETH/USD", "quantity": 2}]}, 500)
    assert "latest" not in view and "positions (2):" in view
    many = result_view({"runs": [{"run_id": f"bt_{i}", "sharpe": i / 10} for i in range(12)]}, 3500)
    assert "runs (12; the first 2 and the last 3):" in many and "... 7 more" in many and "bt_9" in many


def test_the_view_is_deterministic_and_bounded() -> None:
    assert result_view(BACKTEST, 3500) == result_view(BACKTEST, 3500)
    short = result_view(BACKTEST, 500)
    assert len(short) < 560 and short.endswith("more characters]")


def test_every_figure_the_view_shows_is_a_grounding_source() -> None:
    """The model may copy any figure of the view (the newest equity point too): the final answer's check must
    count it as grounded, so the sources are rendered from every list item, not only the first five."""
    sources = figure_sources(render_figures([("run_backtest", BACKTEST)], limit=None, list_items=None))
    for written in ("393.39", "29.48", "13850.00", "49338.67"):
        assert is_grounded(written, sources), written
    capped = render_figures([("run_backtest", BACKTEST)])
    equity = [f.text for f in capped if f.path.startswith("equity_curve")]
    assert equity == ["13,850.00 USD"]  # of a time series, only the latest point is an answer figure
    assert not is_grounded("12062.50", figure_sources(capped))  # 2018-01-15, in the middle


def test_parameter_bounds_and_catalogue_tools_are_not_figures() -> None:
    view = result_view(STRATEGIES, 3500)
    assert "low: 2, high: 400" in view and "USD" not in view  # bounds stay plain numbers, on one line
    assert render_figures([("list_strategies", STRATEGIES)]) == []
    assert render_figures([("run_backtest", {"parameters": [{"low": 5, "high": 500}], "last": 8709.49})])[0].path == (
        "last"
    )
    hits = {"hits": [{"title": "ETH thesis", "text": "price 1800", "score": 0.9}], "last": 3}
    assert figure_block(render_figures([("search_knowledge", hits)]), "") == ""


def test_earlier_answers_reach_the_model_without_their_figure_block() -> None:
    block = "\n\nFigures from the tool results (BTC/USD 1h):\n- low: 5.00\n- high: 500.00"
    messages = [
        HumanMessage(content="What are my preferred sma_cross parameters?"),
        AIMessage(content="Your notes say fast 15 and slow 60." + block),
        HumanMessage(content="Backtest those on BTC/USD."),
    ]
    window = model_window(messages, 2)
    assert [str(m.content) for m in window] == [
        "What are my preferred sma_cross parameters?",
        "Your notes say fast 15 and slow 60.",
        "Backtest those on BTC/USD.",
    ]
    assert str(messages[1].content).endswith("500.00")  # the stored answer is untouched


def test_a_figure_of_the_view_is_the_rendered_decimal() -> None:
    figures = {f.path: f for f in render_figures([("run_backtest", BACKTEST)], limit=None, list_items=None)}
    assert figures["equity_curve[27].equity"].shown == Decimal("13850.0")
