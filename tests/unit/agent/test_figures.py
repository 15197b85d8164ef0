"""Figures rendered, not retyped: the renderer's formats, and the guardrails-ai validator that repairs an answer
whose figures are mis-scaled or invented (it acts: the text changes), over the real MCP server in the last test."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from agent.events import ToolEndEvent
from agent.guards.evidence import numbers_in_value
from agent.guards.figures import figure_block, render, render_figures, repair_figures
from agent.guards.rails import check_figures
from agent.models.scripted import tool_call
from agent.session import Copilot
from engine.settings import Settings
from tests.unit.agent.conftest import CopilotFactory
from tests.unit.agent.test_graph import final

BACKTEST: dict[str, Any] = {
    "run_id": "bt_7",
    "symbol": "BTC/USD",
    "timeframe": "1d",
    "start": "2019-01-01T00:00:00Z",
    "end": "2020-12-31T00:00:00Z",
    "metrics": {
        "total_return": 3.93,
        "benchmark_return": 2.5,
        "sharpe": 1.2345,
        "max_drawdown": 0.2511,
        "n_trades": 14,
        "final_equity": 49300.123,
    },
}


@pytest.mark.parametrize(
    ("kind", "value", "currency", "expected"),
    [
        ("fraction", "3.93", "", "393.00 %"),
        ("fraction", "-0.0512", "", "-5.12 %"),
        ("money", "1234567.891", "USD", "1,234,567.89 USD"),
        ("price", "8709.49", "USD", "8,709.49 USD"),
        ("price", "0.000123456", "BTC", "0.000123 BTC"),
        ("ratio", "1.23456", "", "1.23"),
        ("count", "12000", "", "12,000"),
        ("quantity", "0.01000000", "", "0.01"),
    ],
)
def test_each_kind_is_rendered_one_way(kind: Any, value: str, currency: str, expected: str) -> None:
    assert render(kind, Decimal(value), currency=currency) == expected


def test_figures_carry_their_series_and_period() -> None:
    figures = {f.path: f for f in render_figures([("run_backtest", BACKTEST)])}
    assert figures["metrics.total_return"].text == "393.00 %"
    assert figures["metrics.final_equity"].text == "49,300.12 USD"
    assert figures["metrics.n_trades"].text == "14"
    assert {f.context for f in figures.values()} == {"BTC/USD 1d, 2019-01-01 to 2020-12-31"}


def _check(answer: str, state_dir: Path) -> tuple[str, Any]:
    figures = render_figures([("run_backtest", BACKTEST)])
    result = check_figures(answer, figures, numbers_in_value(BACKTEST), state_dir=state_dir)
    return result.text, result


def test_a_fraction_read_as_a_percentage_is_replaced(settings: Settings) -> None:
    text, result = _check("The strategy made 3.93 % over the period, with a Sharpe of 1.23.", settings.state_dir)
    assert text == "The strategy made 393.00 % over the period, with a Sharpe of 1.23."
    assert result.validator == "guardrails-ai" and result.repair is not None
    assert "'3.93 %' is total return 393.00 %" in result.repair.describe()


def test_an_invented_figure_is_removed_with_its_sentence(settings: Settings) -> None:
    text, result = _check("Final equity was 52,000 USD. The Sharpe ratio was 1.23.", settings.state_dir)
    assert text == "The Sharpe ratio was 1.23."
    assert result.repair is not None and result.repair.removed == ["52,000"]


def test_a_right_answer_passes_unchanged(settings: Settings) -> None:
    answer = "Total return 393.00 % against 250 % for buy and hold; Sharpe 1.23, max drawdown 25.11 %."
    text, result = _check(answer, settings.state_dir)
    assert text == answer and result.repair is None


def test_the_block_lists_what_the_answer_did_not_state() -> None:
    figures = render_figures([("run_backtest", BACKTEST)])
    block = figure_block(figures, "Total return 393.00 %, a Sharpe of 1.23 in 14 trades.")
    assert block.startswith("Figures from the tool results (BTC/USD 1d, 2019-01-01 to 2020-12-31):")
    assert "- final equity: 49,300.12 USD" in block
    assert "total return" not in block and "sharpe" not in block and "closed trades" not in block  # given already
    assert repair_figures("Nothing numeric.", figures, set()).changed is False


async def test_the_final_answer_states_only_figures_the_tools_gave(copilot: CopilotFactory) -> None:
    def invented(_: Any) -> AIMessage:
        return AIMessage(content="Bitcoin is strong today. The last BTC/USD price is 123456.78.")

    async with copilot([tool_call("get_ticker", symbol="BTC/USD"), invented]) as (c, _):
        events = await c.ask(Copilot.new_thread_id(), "What is the last BTC/USD price?")
    end = next(e for e in events if isinstance(e, ToolEndEvent))
    assert end.result is not None
    answer = final(events)
    assert "123456.78" not in answer.text and answer.text.startswith("Bitcoin is strong today.")
    assert f"last price: {end.result['last']:,.2f}" in answer.text  # the rendered figure, under the words
    assert answer.answer_check is not None and answer.answer_check.replaced
    assert answer.unverified_numbers == []
