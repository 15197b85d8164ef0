"""What the chat shows for the agent's events: tool steps, equity charts found in any shape of backtest result,
approval cards and their status lines (every figure quoted from the tool results, nothing computed)."""

from __future__ import annotations

import pytest

from agent.events import ApprovalOutcome, ApprovalPendingEvent, ToolEndEvent, ToolStartEvent
from ui.chat.render import (
    MAX_CHART_POINTS,
    MAX_STEP_CHARS,
    ApprovalState,
    approval_card,
    chart_figure,
    chart_svg,
    equity_chart,
    order_line,
    outcome_text,
    status_text,
    tool_finished,
    tool_started,
)

CURVE = [10_000.0, 10_100.0, 9_900.0, 10_400.0]
TIMES = ["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-04"]


def test_a_tool_step_shows_its_arguments_and_its_result_as_a_readable_card() -> None:
    start = ToolStartEvent(
        call_id="c1",
        tool="get_ticker",
        arguments={"symbol": "BTC/USD"},
        dropped_arguments=["tf"],
        read_as=["indicators: rsi -> rsi:14 (as written)"],
    )
    view = tool_started(start)
    assert view.name == "get_ticker" and view.input.split("\n")[0] == "symbol: BTC/USD"
    assert "invented optional arguments removed: tf" in view.input and "rsi -> rsi:14" in view.input
    end = ToolEndEvent(call_id="c1", tool="get_ticker", status="ok", result={"symbol": "BTC/USD", "last": 8709.49})
    done = tool_finished(end, view)
    assert done.output == "symbol: BTC/USD\nlast: 8,709.49 USD"  # the figure as the answer shows it, not JSON
    assert done.input == view.input and not done.is_error and done.status == "ok"
    assert tool_started(ToolStartEvent(call_id="c2", tool="list_runs", arguments={})).input == "(none)"


def test_errors_and_blocked_calls_say_why() -> None:
    error = tool_finished(ToolEndEvent(call_id="c", tool="get_ticker", status="error", text="unknown symbol XYZ"))
    assert error.is_error and error.output == "Error: unknown symbol XYZ"
    blocked = tool_finished(
        ToolEndEvent(call_id="c", tool="propose_order", status="blocked", reason="the user did not ask for a trade")
    )
    assert blocked.is_error and blocked.output == "Blocked by the agent's guard: the user did not ask for a trade"


def test_long_results_are_summarised_and_cut() -> None:
    bars = [{"ts": i, "close": i * 1.5} for i in range(500)]
    view = tool_finished(ToolEndEvent(call_id="c", tool="get_bars", status="ok", result={"bars": bars}))
    assert view.output.splitlines() == [
        "bars (oldest first, the last is the latest; 500; the first and the last):",
        "  - ts: 0, close: 0.00",
        "  ... 498 more",
        "  - latest: ts: 499, close: 748.50",
    ]
    huge = tool_finished(ToolEndEvent(call_id="c", tool="t", status="ok", text="x" * (MAX_STEP_CHARS + 10)))
    assert huge.output.endswith("(10 more characters not shown)")


@pytest.mark.parametrize(
    ("result", "xs"),
    [
        ({"equity": CURVE, "ts": TIMES}, TIMES),  # numbers, the timestamps beside them
        ({"equity_curve": CURVE}, [0, 1, 2, 3]),  # numbers alone: bar indices
        ({"equity_curve": [{"ts": t, "equity": v} for t, v in zip(TIMES, CURVE, strict=True)]}, TIMES),
        ({"equity_curve": [[t, v] for t, v in zip(TIMES, CURVE, strict=True)]}, TIMES),
        ({"equity_curve": {"ts": TIMES, "equity": CURVE}}, TIMES),
        ({"equity_curve": dict(zip(TIMES, CURVE, strict=True))}, TIMES),
        ({"run": {"strategy": "ema_cross", "equity_curve": [str(v) for v in CURVE]}}, [0, 1, 2, 3]),
    ],
)
def test_an_equity_curve_is_found_in_any_shape(result: dict[str, object], xs: list[object]) -> None:
    chart = equity_chart("run_backtest", result)
    assert chart is not None and len(chart.curves) == 1
    assert chart.curves[0].x == xs and chart.curves[0].y == CURVE


def test_results_without_a_curve_have_no_chart() -> None:
    portfolio = {"accounts": [{"name": "paper", "equity": 100_000.0, "cash": {"USD": 100_000.0}}]}
    assert equity_chart("get_portfolio", portfolio) is None
    assert equity_chart("run_backtest", {"equity_curve": [10_000.0]}) is None  # one point is not a curve
    assert equity_chart("run_backtest", {"equity_curve": ["a", "b"]}) is None
    assert equity_chart("run_backtest", None) is None


def test_the_chart_names_the_run_and_its_benchmark_and_quotes_its_metrics() -> None:
    result = {
        "run_id": "run_42",
        "strategy": "sma_cross",
        "symbol": "BTC/USD",
        "timeframe": "1d",
        "metrics": {"total_return": 0.04, "max_drawdown": 0.0291, "sharpe": 1.234},
        "benchmark_return": -0.02,
        "equity_curve": CURVE,
        "benchmark": {"strategy": "buy_and_hold", "equity_curve": [10_000.0, 9_000.0, 9_500.0, 9_800.0]},
    }
    chart = equity_chart("run_backtest", result)
    assert chart is not None
    assert [c.name for c in chart.curves] == ["sma_cross", "benchmark"]
    assert chart.title == "Equity: sma_cross · BTC/USD · 1d"
    assert chart.caption == "total return 4.00%, max drawdown 2.91%, Sharpe 1.23, buy and hold -2.00%, run run_42"
    figure = chart_figure(chart)
    assert [trace.name for trace in figure.data] == ["sma_cross", "benchmark"]
    assert list(figure.data[0].y) == CURVE and figure.layout.showlegend is True
    assert figure.layout.title.text == f"{chart.title}<br><sub>{chart.caption}</sub>"
    assert chart_svg(chart).count("<polyline") == 2


def test_a_long_curve_is_thinned_evenly_keeping_its_last_point() -> None:
    curve = [float(i) for i in range(10 * MAX_CHART_POINTS + 3)]
    chart = equity_chart("run_backtest", {"equity_curve": curve})
    assert chart is not None
    ys = chart.curves[0].y
    assert len(ys) <= MAX_CHART_POINTS + 1 and ys[0] == 0.0 and ys[-1] == curve[-1]


CARD = ApprovalPendingEvent(
    thread_id="thr_1",
    approval_id="apr_123",
    inbox_url="http://127.0.0.1:8000/inbox/apr_123",
    summary="I proposed an order",
    intent={
        "account": "paper",
        "symbol": "BTC/USD",
        "side": "buy",
        "type": "limit",
        "quantity": "0.1",
        "price": "61000",
    },
    risk_summary="all risk rules pass",
    expires_at="2026-01-01T10:15:00Z",
)


def test_the_approval_card_shows_the_order_the_risk_verdict_the_link_and_the_status() -> None:
    text = approval_card(CARD)
    assert "**Order proposed: waiting for a human approval**" in text
    assert "- Order: **buy 0.1 BTC/USD limit @ 61000 on paper (dry-run)**" in text
    assert "- Pre-trade risk check: all risk rules pass" in text
    assert "- Approval: `apr_123`, expires 2026-01-01T10:15:00Z" in text
    assert "- Status: **pending**: waiting for an approver in the inbox. Nothing has been executed." in text
    assert "[Open it in the inbox](http://127.0.0.1:8000/inbox/apr_123) to approve or reject it" in text
    decided = approval_card(CARD, ApprovalState(status="rejected", decided_by="ann", decision_reason="too big"))
    assert decided.startswith("**Order proposed: rejected**")
    assert "- Status: **rejected** by ann: too big. Nothing was executed." in decided
    assert "to approve or reject it" not in decided


def test_status_lines_quote_the_approval_record() -> None:
    fill = {"order_id": 7, "status": "filled", "filled_quantity": "0.1", "average_price": "60990.5"}
    assert status_text(ApprovalState("executed", "ann", None, fill)) == (
        "**executed** by ann: filled 0.1 at 60990.5 (order 7, filled)."
    )
    assert status_text(ApprovalState("approved", "ann")).startswith("**approved** by ann: the execution worker")
    assert status_text(ApprovalState("expired")) == "**expired** without a decision. Nothing was executed."
    assert status_text(ApprovalState("failed", "ann", None, {"reason": "kill switch engaged"})) == (
        "**failed**: approved by ann but not executed: kill switch engaged."
    )
    assert status_text(ApprovalState("rejected")) == "**rejected**: no reason given. Nothing was executed."
    # the inbox's describe(); an intent that cannot be read falls back to the agent's summary
    assert order_line({"side": "sell", "quantity": 2, "symbol": "ETH/USD", "type": "market", "account": "a"}) == (
        "sell 2 ETH/USD market on a (dry-run)"
    )
    assert order_line({"side": "sell", "quantity": 2}, "I proposed a sale") == "I proposed a sale"


def test_states_come_from_get_approval_or_from_the_agents_outcome() -> None:
    structured = {"status": "executed", "decided_by": "ann", "decision_reason": None, "result": {"order_id": 1}}
    state = ApprovalState.from_tool(structured)
    assert state == ApprovalState("executed", "ann", None, {"order_id": 1}) and state.final
    outcome = ApprovalOutcome(approval_id="apr_1", status="approved", decided_by="ann")
    assert ApprovalState.from_outcome(outcome) == ApprovalState("approved", "ann", None, None)
    assert not ApprovalState.from_outcome(outcome).final
    assert outcome_text(CARD, ApprovalState("expired")).startswith(
        "Update on your order to buy 0.1 BTC/USD limit @ 61000 on paper (dry-run) (approval apr_123): **expired**"
    )
