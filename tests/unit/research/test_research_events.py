"""The event-driven backtest: agreement with the vectorised path, latency, partial fills, limit and stop orders,
maker/taker fees, funding, and the pre-trade risk hook."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from engine.backtest.bars import Bars
from engine.backtest.config import BacktestConfig
from engine.backtest.events import (
    AllowAll,
    BarContext,
    EventBacktestConfig,
    MarketState,
    OrderRequest,
    OrderStatus,
    OrderType,
    PortfolioState,
    PreTradeCheck,
    RiskVerdict,
    StrategyDecision,
    run_event_backtest,
)
from engine.backtest.result import REASONS
from engine.backtest.vectorized import run_backtest, run_targets
from engine.errors import ValidationFailedError
from engine.strategies import get_strategy

PARAMS: dict[str, dict[str, Any]] = {
    "sma_cross": {"fast": 10, "slow": 50},
    "rsi_reversion": {},
    "donchian_breakout": {"window": 20, "exit_window": 10},
    "bollinger_breakout": {},
    "macd": {},
}
STOPS = {"stop_loss": 0.03, "take_profit": 0.06, "trailing_stop": 0.04}


@pytest.mark.parametrize("strategy", sorted(PARAMS))
@pytest.mark.parametrize("fill_at", ["next_open", "close"])
@pytest.mark.parametrize("direction", ["long_only", "long_short"])
@pytest.mark.parametrize("stops", [False, True])
def test_market_orders_agree_with_the_vectorised_path(
    btc_1h: Bars, same_metrics, strategy: str, fill_at: str, direction: str, stops: bool
) -> None:
    """Same fills, trades, equity (to the bit) and metrics, with slippage: both paths fill a take-profit as a
    resting limit order (at its level, no slippage) and slip every market fill."""
    settings: dict[str, Any] = {"fee": 0.001, "fill_at": fill_at, "direction": direction, "slippage": 0.0005}
    if stops:
        settings.update(STOPS)
    vectorised = run_backtest(strategy, btc_1h, PARAMS[strategy], BacktestConfig(**settings))
    events = run_event_backtest(strategy, btc_1h, PARAMS[strategy], EventBacktestConfig(**settings))
    np.testing.assert_array_equal(events.equity, vectorised.equity)
    np.testing.assert_array_equal(events.positions, vectorised.positions)
    np.testing.assert_array_equal(events.trades, vectorised.trades)
    np.testing.assert_array_equal(events.fills, vectorised.fills)
    same_metrics(events.metrics, vectorised.metrics)
    if stops:
        reasons = {REASONS[r] for r in vectorised.trades["exit_reason"]}
        assert {"stop_loss", "take_profit", "trailing_stop"} <= reasons  # the stops were exercised


@pytest.mark.parametrize("latency", [1, 3])
@pytest.mark.parametrize("fill_at", ["next_open", "close"])
def test_latency_delays_every_decision(btc_1h: Bars, latency: int, fill_at: str) -> None:
    """A latency of L bars equals the vectorised run of the targets shifted by L bars."""
    bars = btc_1h.slice(0, 5000)
    targets = get_strategy("sma_cross").signals(bars.open, bars.high, bars.low, bars.close, bars.volume)
    shifted = np.r_[np.zeros(latency, dtype=np.int8), targets[:-latency]]
    config = {"fee": 0.001, "fill_at": fill_at, "direction": "long_short"}
    delayed = run_event_backtest("sma_cross", bars, None, EventBacktestConfig(latency_bars=latency, **config))
    reference = run_targets(bars, shifted, BacktestConfig(**config))
    np.testing.assert_array_equal(delayed.equity, reference.equity)
    np.testing.assert_array_equal(delayed.trades, reference.trades)


def flat_bars(n: int, price: float = 100.0, volume: float = 1.0) -> Bars:
    closes = np.full(n, price)
    return Bars.from_arrays(closes, closes * 1.01, closes * 0.99, closes, volume=np.full(n, volume), timeframe="1h")


def test_participation_cap_spreads_a_fill_over_bars() -> None:
    bars = flat_bars(30)
    config = EventBacktestConfig(initial_cash=1000, fee=0.0, participation=0.5)
    result = run_event_backtest("buy_and_hold", bars, None, config)
    # all-in is 10 units; at most half of each bar's 1 unit of volume fills: 0.5 a bar from bar 1 to bar 20
    assert list(result.fills["index"]) == list(range(1, 21))
    np.testing.assert_allclose(result.fills["qty"], 0.5)
    (order,) = result.extras["orders"]
    assert order.status == OrderStatus.FILLED and order.filled_qty == pytest.approx(10.0)
    assert result.final_equity == pytest.approx(1000.0)
    (trade,) = result.trades
    assert trade["is_open"] and trade["qty"] == pytest.approx(10.0) and trade["entry_index"] == 1


def test_participation_cap_on_real_volume(btc_1h: Bars) -> None:
    bars = btc_1h.slice(0, 4000)
    config = EventBacktestConfig(fee=0.001, participation=0.002, initial_cash=1_000_000)
    result = run_event_backtest("sma_cross", bars, None, config)
    per_bar = np.bincount(result.fills["index"], weights=np.abs(result.fills["qty"]), minlength=len(bars))
    assert (per_bar <= 0.002 * bars.volume * (1 + 1e-9)).all()
    assert len(result.fills) > 2 * len(result.trades)  # the all-in orders needed many bars to fill


def test_limit_entries_rest_and_pay_the_maker_fee(btc_1h: Bars) -> None:
    bars = btc_1h.slice(0, 6000)
    config = EventBacktestConfig(fee=0.001, maker_fee=0.0002, slippage=0.0005)
    result = run_event_backtest("sma_cross", bars, None, config, entry_type=OrderType.LIMIT, entry_offset=0.005)
    entries = [o for o in result.extras["orders"] if o.request.tag == "entry" and o.fills]
    assert entries
    for order in entries:
        level = order.request.price
        assert level == pytest.approx(bars.close[order.submitted_at] * 0.995)
        (k,) = order.fills
        fill = result.fills[k]
        bar = fill["index"]
        assert bar >= order.submitted_at + 1 and bars.low[bar] <= level
        if bars.open[bar] <= level:  # marketable on arrival: takes the open, taker fee
            assert fill["price"] == bars.open[bar]
            assert fill["fee"] == pytest.approx(fill["qty"] * fill["price"] * 0.001)
        else:  # rested and was hit: the limit price, maker fee, no slippage
            assert fill["price"] == level
            assert fill["fee"] == pytest.approx(fill["qty"] * fill["price"] * 0.0002)
        assert all(bars.low[b] > level for b in range(order.submitted_at + 1, bar))


def test_stop_entries_trigger_through_the_level(btc_1h: Bars) -> None:
    bars = btc_1h.slice(0, 6000)
    config = EventBacktestConfig(fee=0.001, slippage=0.0005)
    result = run_event_backtest("sma_cross", bars, None, config, entry_type=OrderType.STOP, entry_offset=0.005)
    entries = [o for o in result.extras["orders"] if o.request.tag == "entry" and o.fills]
    assert entries
    for order in entries:
        level = order.request.price
        fill = result.fills[order.fills[0]]
        bar = fill["index"]
        assert bars.high[bar] >= level
        assert fill["price"] == pytest.approx(max(bars.open[bar], level) * 1.0005)
        assert all(bars.high[b] < level for b in range(order.submitted_at + 1, bar))


def test_funding_is_charged_on_the_position_notional() -> None:
    closes = 100 * np.exp(np.cumsum(np.r_[0.0, np.random.default_rng(3).normal(0, 0.01, 99)]))
    bars = Bars.from_arrays(closes, closes * 1.01, closes * 0.99, closes, volume=np.full(100, 1e6), timeframe="1h")
    base = EventBacktestConfig(fee=0.0)
    funded = EventBacktestConfig(fee=0.0, funding_interval_bars=8)
    plain = run_event_backtest("buy_and_hold", bars, None, base)
    paying = run_event_backtest("buy_and_hold", bars, None, funded, funding_rates=0.0001)
    units = plain.fills["qty"][0]
    charged = np.zeros(100)
    for j in range(7, 100, 8):
        charged[j] = units * closes[j] * 0.0001
    np.testing.assert_allclose(plain.equity - paying.equity, np.cumsum(charged), rtol=1e-12, atol=1e-12)
    assert paying.extras["funding_paid"] == pytest.approx(charged.sum())
    rates = np.where(np.arange(100) % 2 == 0, -0.0002, 0.0001)
    receiving = run_event_backtest("buy_and_hold", bars, None, funded, funding_rates=rates)
    assert receiving.extras["funding_paid"] == pytest.approx((units * closes * rates)[7::8].sum())
    with pytest.raises(ValidationFailedError, match="funding_interval_bars"):
        run_event_backtest("buy_and_hold", bars, None, base, funding_rates=0.0001)


class RejectShorts:
    """A pre-trade rule: no new short exposure; remembers what it saw."""

    def __init__(self) -> None:
        self.seen: list[tuple[OrderRequest, PortfolioState, MarketState]] = []

    def check(self, order: OrderRequest, portfolio: PortfolioState, market: MarketState) -> RiskVerdict:
        self.seen.append((order, portfolio, market))
        if order.side < 0 and not order.reduce_only:
            return RiskVerdict(allowed=False, reasons=["shorts are not allowed on this account"])
        return RiskVerdict(allowed=True)


def test_pre_trade_check_sees_every_order_and_can_reject(btc_1h: Bars) -> None:
    bars = btc_1h.slice(0, 3000)
    rule = RejectShorts()
    assert isinstance(rule, PreTradeCheck) and isinstance(AllowAll(), PreTradeCheck)
    config = EventBacktestConfig(fee=0.001, direction="long_short")
    guarded = run_event_backtest("sma_cross", bars, None, config, risk_check=rule)
    long_only = run_backtest("sma_cross", bars, None, BacktestConfig(fee=0.001, direction="long_only"))
    np.testing.assert_array_equal(guarded.equity, long_only.equity)  # the short legs never went out
    rejections = guarded.extras["rejections"]
    assert rejections and all(r[2] == ["shorts are not allowed on this account"] for r in rejections)
    assert len(rule.seen) == len(guarded.extras["orders"])
    _, portfolio, market = rule.seen[0]
    assert market.index == guarded.extras["orders"][0].submitted_at
    assert market.close == bars.close[market.index] and portfolio.equity == pytest.approx(config.initial_cash)


class OneLimitRoundTrip:
    """A hand-written event strategy: buy 2 units at a limit below the market, sell them at a limit above."""

    def __init__(self, buy: float, sell: float) -> None:
        self.buy, self.sell, self.sent = buy, sell, 0

    def on_bar(self, ctx: BarContext) -> StrategyDecision | None:
        if self.sent == 0:
            self.sent = 1
            return StrategyDecision([OrderRequest(side=1, order_type=OrderType.LIMIT, qty=2.0, price=self.buy)])
        if self.sent == 1 and ctx.position > 0:
            self.sent = 2
            return StrategyDecision(
                [OrderRequest(side=-1, order_type=OrderType.LIMIT, price=self.sell, reduce_only=True)]
            )
        return None


def test_a_custom_event_strategy_by_hand() -> None:
    rows = [(100, 101, 99, 100), (100, 100, 96, 97), (97, 98, 96, 98), (98, 106, 97, 105), (105, 106, 104, 105)]
    o, h, lo, c = (np.array(x, dtype=float) for x in zip(*rows, strict=True))
    bars = Bars.from_arrays(o, h, lo, c, volume=np.full(5, 1e3), timeframe="1h")
    config = EventBacktestConfig(initial_cash=1000, fee=0.001, maker_fee=0.0)
    result = run_event_backtest(OneLimitRoundTrip(buy=96.5, sell=104.0), bars, None, config)
    assert list(result.fills["index"]) == [1, 3]
    assert list(result.fills["price"]) == [96.5, 104.0] and list(result.fills["fee"]) == [0.0, 0.0]
    assert result.final_equity == pytest.approx(1000 + 2 * (104.0 - 96.5))
    assert result.strategy == "OneLimitRoundTrip"


def test_order_requests_are_checked() -> None:
    with pytest.raises(ValueError, match="side"):
        OrderRequest(side=2)
    with pytest.raises(ValueError, match="price"):
        OrderRequest(side=1, order_type=OrderType.LIMIT)
    with pytest.raises(ValueError, match="qty"):
        OrderRequest(side=1, qty=-1.0)
    with pytest.raises(ValidationFailedError, match="not a strategy"):
        run_event_backtest(42, flat_bars(5))  # type: ignore[arg-type]
