"""The vectorised backtest: properties on real and generated prices, hand-computed fills and stops, grids,
and clear errors for bad input."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.backtest.bars import Bars, bars_per_year, timeframe_seconds
from engine.backtest.config import BacktestConfig, KernelOptions
from engine.backtest.metrics import METRIC_NAMES
from engine.backtest.result import REASONS
from engine.backtest.vectorized import expand_grid, run_backtest, run_grid, run_targets
from engine.errors import NotFoundError, ValidationFailedError

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

log_returns = st.lists(st.floats(-0.05, 0.05, allow_nan=False), min_size=2, max_size=300)
configs = st.fixed_dictionaries(
    {
        "fill_at": st.sampled_from(["next_open", "close"]),
        "direction": st.sampled_from(["long_only", "long_short", "short_only"]),
        "slippage": st.sampled_from([0.0, 0.0005]),
        "stop_loss": st.sampled_from([None, 0.02, 0.05]),
        "take_profit": st.sampled_from([None, 0.03, 0.1]),
        "trailing_stop": st.sampled_from([None, 0.03]),
    }
)
STRATEGY_PARAMS: dict[str, dict[str, Any]] = {
    "sma_cross": {"fast": 5, "slow": 20},
    "ema_cross": {"fast": 5, "slow": 20},
    "macd": {"fast": 6, "slow": 13, "signal": 5},
    "rsi_reversion": {"window": 7},
    "bollinger_breakout": {"window": 10, "k": 1.5},
    "bollinger_reversion": {"window": 10, "k": 1.5},
    "donchian_breakout": {"window": 10, "exit_window": 5},
    "buy_and_hold": {},
}


def closes_from(returns: list[float]) -> np.ndarray:
    closes: np.ndarray = 100.0 * np.exp(np.cumsum([0.0, *returns]))
    return closes


# --------------------------------------------------------------------------------------------- properties


@SETTINGS
@given(returns=log_returns, fill_at=st.sampled_from(["next_open", "close"]))
def test_zero_fees_always_long_is_buy_and_hold(make_bars, returns, fill_at) -> None:
    bars = make_bars(closes_from(returns))
    config = BacktestConfig(fee=0.0, slippage=0.0, fill_at=fill_at)
    result = run_targets(bars, np.ones(len(bars), dtype=np.int8), config)
    held = run_backtest("buy_and_hold", bars, None, config)
    entry = 0 if fill_at == "close" else 1
    if fill_at == "close":
        expected = config.initial_cash * bars.close / bars.close[0]
    else:
        expected = np.r_[config.initial_cash, config.initial_cash * bars.close[1:] / bars.open[1]]
    np.testing.assert_allclose(result.equity, expected, rtol=1e-12)
    np.testing.assert_array_equal(held.equity, result.equity)
    assert (result.positions[entry:] == 1).all()
    assert result.metrics.n_trades == 0  # one position, still open at the end
    if fill_at == "close":
        assert abs(result.metrics.excess_return) < 1e-12


@SETTINGS
@given(
    strategy=st.sampled_from(sorted(STRATEGY_PARAMS)),
    start=st.integers(0, 15_000),
    fee=st.floats(0.0, 0.01),
    config=configs,
)
def test_doubling_fees_never_raises_returns(btc_1h: Bars, strategy, start, fee, config) -> None:
    """Holds without a lot size (with one, a higher fee can round a losing position smaller)."""
    bars = btc_1h.slice(start, start + 3000)
    params = STRATEGY_PARAMS[strategy]
    low = run_backtest(strategy, bars, params, BacktestConfig(fee=fee, **config))
    high = run_backtest(strategy, bars, params, BacktestConfig(fee=2 * fee, **config))
    assert high.final_equity <= low.final_equity * (1 + 1e-12) + 1e-9
    assert high.metrics.n_trades == low.metrics.n_trades


@SETTINGS
@given(
    strategy=st.sampled_from(sorted(STRATEGY_PARAMS)),
    k=st.integers(0, 1999),
    factor=st.floats(0.5, 2.0),
    config=configs,
)
def test_backtest_never_looks_ahead(btc_2k: Bars, strategy, k, factor, config) -> None:
    """Prices after bar k change: positions, equity and trades closed by k stay the same."""
    params = STRATEGY_PARAMS[strategy]
    cfg = BacktestConfig(**config)
    before = run_backtest(strategy, btc_2k, params, cfg)
    arrays = {c: getattr(btc_2k, c).copy() for c in ("open", "high", "low", "close", "volume")}
    for a in arrays.values():
        a[k + 1 :] *= factor
    changed = Bars.from_arrays(
        arrays["open"],
        arrays["high"],
        arrays["low"],
        arrays["close"],
        volume=arrays["volume"],
        ts=btc_2k.ts,
        timeframe="1h",
    )
    after = run_backtest(strategy, changed, params, cfg)
    np.testing.assert_array_equal(before.positions[: k + 1], after.positions[: k + 1])
    np.testing.assert_array_equal(before.equity[: k + 1], after.equity[: k + 1])
    closed_before = before.closed_trades[before.closed_trades["exit_index"] <= k]
    closed_after = after.closed_trades[after.closed_trades["exit_index"] <= k]
    np.testing.assert_array_equal(closed_before, closed_after)


@SETTINGS
@given(strategy=st.sampled_from(sorted(STRATEGY_PARAMS)), config=configs, chunk=st.sampled_from([1, 7, 64, 999]))
def test_chunk_size_never_changes_results(btc_2k: Bars, same_metrics, strategy, config, chunk) -> None:
    params = STRATEGY_PARAMS[strategy]
    cfg = BacktestConfig(**config)
    whole = run_backtest(strategy, btc_2k, params, cfg, options=KernelOptions(chunk_bars=100_000))
    chunked = run_backtest(strategy, btc_2k, params, cfg, options=KernelOptions(chunk_bars=chunk))
    np.testing.assert_array_equal(whole.equity, chunked.equity)
    np.testing.assert_array_equal(whole.trades, chunked.trades)
    np.testing.assert_array_equal(whole.fills, chunked.fills)
    same_metrics(whole.metrics, chunked.metrics)


@pytest.mark.parametrize("parallel", [True, False])
@pytest.mark.parametrize("fill_at", ["next_open", "close"])
def test_grid_equals_single_runs(btc_1h: Bars, same_metrics, parallel: bool, fill_at: str) -> None:
    config = BacktestConfig(fee=0.001, slippage=0.0002, fill_at=fill_at, direction="long_short")
    grid: dict[str, list[Any]] = {
        "fast": [5, 10, 20],
        "slow": [30, 50],
        "stop_loss": [None, 0.03],
        "trailing_stop": [0.05],
    }
    result = run_grid("sma_cross", btc_1h, grid, config, options=KernelOptions(parallel=parallel))
    assert len(result) == 12
    for k, combo in enumerate(result.params):
        single_config = config.model_copy(update={"stop_loss": combo["stop_loss"], "trailing_stop": 0.05})
        single = run_backtest("sma_cross", btc_1h, {"fast": combo["fast"], "slow": combo["slow"]}, single_config)
        np.testing.assert_array_equal(result.values[k], [getattr(single.metrics, m) for m in METRIC_NAMES])
        same_metrics(result.metrics_at(k), single.metrics)
    frame = result.to_frame()
    assert list(frame.columns[:4]) == ["fast", "slow", "stop_loss", "trailing_stop"]
    best = result.best("sharpe")
    assert result.metric("sharpe")[best] == np.nanmax(result.metric("sharpe"))


@pytest.mark.parametrize("strategy", sorted(STRATEGY_PARAMS))
def test_grid_equals_single_runs_for_every_strategy(btc_2k: Bars, same_metrics, strategy: str) -> None:
    params = STRATEGY_PARAMS[strategy]
    config = BacktestConfig(fee=0.0005, direction="long_short", take_profit=0.04)
    plain = config.model_copy(update={"take_profit": None})
    result = run_grid(strategy, btc_2k, [params, params], plain)
    single = run_backtest(strategy, btc_2k, params, plain)
    same_metrics(result.metrics_at(0), single.metrics)
    same_metrics(result.metrics_at(1), single.metrics)
    with_tp = run_grid(strategy, btc_2k, [params], config)
    same_metrics(with_tp.metrics_at(0), run_backtest(strategy, btc_2k, params, config).metrics)


# ------------------------------------------------------------------------------ fills, hand-computed


def hand_bars(rows: list[tuple[float, float, float, float]]) -> Bars:
    o, h, lo, c = (np.array(col, dtype=np.float64) for col in zip(*rows, strict=True))
    return Bars.from_arrays(o, h, lo, c, volume=np.full(len(rows), 1e6), timeframe="1h")


def test_next_open_fill_fees_and_slippage_by_hand() -> None:
    bars = hand_bars([(100, 100, 100, 100), (101, 103, 100, 102), (104, 105, 103, 104), (103, 104, 101, 102)])
    config = BacktestConfig(initial_cash=1000, fee=0.01, slippage=0.02)
    result = run_targets(bars, [1, 1, 0, 0], config)
    # decided at bar 0's close: bought at bar 1's open; decided at bar 2's close: sold at bar 3's open
    buy_px = 101 * 1.02
    qty = 1000 / (buy_px * 1.01)
    sell_px = 103 * 0.98
    cash = 1000 - qty * buy_px - qty * buy_px * 0.01 + qty * sell_px - qty * sell_px * 0.01
    np.testing.assert_allclose(result.equity, [1000, qty * 102, qty * 104, cash], rtol=1e-12, atol=1e-9)
    (trade,) = result.trades
    assert (trade["entry_index"], trade["exit_index"], trade["side"]) == (1, 3, 1)
    assert trade["entry_price"] == pytest.approx(buy_px) and trade["exit_price"] == pytest.approx(sell_px)
    assert trade["pnl"] == pytest.approx(cash - 1000)
    assert trade["fees"] == pytest.approx(qty * (buy_px + sell_px) * 0.01)
    assert trade["return"] == pytest.approx((cash - 1000) / 1000)
    np.testing.assert_allclose(result.fills["qty"], [qty, -qty])


def test_same_close_fill_by_hand() -> None:
    bars = hand_bars([(100, 100, 100, 100), (101, 103, 100, 102), (104, 105, 103, 104)])
    result = run_targets(bars, [0, 1, 0], BacktestConfig(fee=0.0, fill_at="close"))
    assert list(result.positions) == [0, 1, 0]
    np.testing.assert_allclose(result.equity, [10_000, 10_000, 10_000 * 104 / 102], rtol=1e-12)


def test_reversal_closes_then_opens_all_in() -> None:
    bars = hand_bars([(100, 100, 100, 100), (100, 100, 100, 100), (110, 110, 110, 110), (99, 99, 99, 99)])
    result = run_targets(bars, [1, -1, -1, -1], BacktestConfig(fee=0.0, direction="long_short"))
    # long 100 units at 100, reversed at 110: 11,000, then short 100 units at 110
    np.testing.assert_allclose(result.fills["qty"], [100.0, -100.0, -100.0])
    assert result.final_equity == pytest.approx(11_000 + 100 * (110 - 99))
    assert list(result.trades["side"]) == [1, -1] and list(result.trades["is_open"]) == [False, True]


def test_stop_loss_exits_at_the_level_then_waits_for_a_fresh_signal() -> None:
    bars = hand_bars(
        [
            (100, 100, 100, 100),
            (100, 101, 99, 100),
            (100, 100, 94, 96),  # stop at 95 touched
            (96, 97, 95, 96),
            (96, 97, 95, 96),
            (97, 98, 96, 97),
        ]
    )
    result = run_targets(bars, [1, 1, 1, 0, 1, 1], BacktestConfig(fee=0.0, stop_loss=0.05))
    first, second = result.trades
    assert (first["entry_index"], first["exit_index"]) == (1, 2)
    assert first["exit_price"] == pytest.approx(95.0) and REASONS[first["exit_reason"]] == "stop_loss"
    assert list(result.positions) == [0, 1, 0, 0, 0, 1]  # bar 3: still +1 but blocked; re-enters on 0 -> 1
    assert second["entry_index"] == 5 and second["is_open"]
    assert result.equity[3] == pytest.approx(9_500.0)


def test_stops_gap_take_profit_and_trailing_by_hand() -> None:
    gap = hand_bars([(100, 100, 100, 100), (100, 101, 99, 100), (90, 92, 88, 91)])
    (trade,) = run_targets(gap, [1, 1, 1], BacktestConfig(fee=0.0, stop_loss=0.05)).trades
    assert trade["exit_price"] == 90.0  # gapped through 95: filled at the open

    take = hand_bars([(100, 100, 100, 100), (100, 101, 99, 100), (101, 111, 100, 105)])
    (trade,) = run_targets(take, [1, 1, 1], BacktestConfig(fee=0.0, take_profit=0.1)).trades
    assert trade["exit_price"] == pytest.approx(110.0) and REASONS[trade["exit_reason"]] == "take_profit"
    slipped = run_targets(take, [1, 1, 1], BacktestConfig(fee=0.0, slippage=0.005, take_profit=0.1)).trades
    # a take-profit is a limit: filled at entry * 1.1 exactly, where the entry itself was slipped (a market buy)
    assert slipped[0]["exit_price"] == pytest.approx(100.5 * 1.1) and slipped[0]["entry_price"] == pytest.approx(100.5)
    assert REASONS[slipped[0]["exit_reason"]] == "take_profit"

    both = hand_bars([(100, 100, 100, 100), (100, 101, 99, 100), (100, 111, 94, 105)])
    (trade,) = run_targets(both, [1, 1, 1], BacktestConfig(fee=0.0, stop_loss=0.05, take_profit=0.1)).trades
    assert REASONS[trade["exit_reason"]] == "stop_loss"  # both touched in one bar: the stop is assumed first

    trail = hand_bars([(100, 100, 100, 100), (100, 105, 99, 104), (104, 110, 103, 109), (109, 109, 104, 105)])
    (trade,) = run_targets(trail, [1, 1, 1, 1], BacktestConfig(fee=0.0, trailing_stop=0.05)).trades
    assert trade["exit_index"] == 3 and trade["exit_price"] == pytest.approx(110 * 0.95)
    assert REASONS[trade["exit_reason"]] == "trailing_stop"

    short = hand_bars([(100, 100, 100, 100), (100, 101, 99, 100), (100, 106, 99, 104)])
    config = BacktestConfig(fee=0.0, stop_loss=0.05, direction="short_only")
    (trade,) = run_targets(short, [-1, -1, -1], config).trades
    assert trade["side"] == -1 and trade["exit_price"] == pytest.approx(105.0)


def test_out_of_money_short_is_liquidated_and_stops_trading() -> None:
    bars = hand_bars(
        [(100, 100, 100, 100), (100, 100, 100, 100), (150, 150, 150, 150), (210, 210, 210, 210), (100, 100, 100, 100)]
    )
    result = run_targets(bars, [-1] * 5, BacktestConfig(fee=0.0, direction="short_only"))
    assert result.equity[2] == pytest.approx(5_000.0)
    assert list(result.equity[3:]) == [0.0, 0.0]
    assert REASONS[result.trades[-1]["exit_reason"]] == "liquidation"
    assert result.metrics.max_drawdown == 1.0 and result.metrics.total_return == -1.0


@pytest.mark.parametrize("path", ["vectorised", "events"])
@pytest.mark.parametrize("exit_via", ["liquidation", "signal"])
def test_after_a_bust_the_trades_pnl_sums_to_the_floored_equity(path: str, exit_via: str) -> None:
    from engine.backtest.events import EventBacktestConfig, TargetStrategy, run_event_backtest

    # short 100 at 100 (fee, slippage); the price jumps to 250: the short owes more than the account holds
    rows = [(100, 100, 100, 100), (100, 100, 100, 100), (150, 150, 150, 150), (250, 250, 250, 250), (90, 90, 90, 90)]
    # signal: the buy-back decided at bar 2's close fills at bar 3's open (250) and busts the account
    targets = [-1, -1, -1, -1, -1] if exit_via == "liquidation" else [-1, -1, 0, 0, 0]
    settings: dict[str, Any] = {"fee": 0.001, "slippage": 0.001, "direction": "short_only"}
    bars = hand_bars(rows)
    if path == "vectorised":
        result = run_targets(bars, targets, BacktestConfig(**settings))
    else:
        strategy = TargetStrategy(np.asarray(targets, dtype=np.int8), direction="short_only")
        result = run_event_backtest(strategy, bars, None, EventBacktestConfig(**settings))
    assert result.equity[-1] == 0.0
    closed = result.closed_trades
    assert REASONS[closed[-1]["exit_reason"]] == ("liquidation" if exit_via == "liquidation" else "signal")
    assert closed["pnl"].sum() == pytest.approx(-10_000.0, rel=1e-12)  # lost the account, not more
    assert closed[-1]["return"] == pytest.approx(closed[-1]["pnl"] / 10_000.0, rel=1e-12)
    assert result.metrics.total_return == -1.0


def test_lot_size_rounds_entries_down() -> None:
    bars = hand_bars([(100, 100, 100, 100), (30, 30, 30, 30), (33, 33, 33, 33)])
    result = run_targets(bars, [1, 1, 1], BacktestConfig(initial_cash=100, fee=0.0, lot_size=1.0))
    assert result.fills["qty"][0] == 3.0  # 100 / 30 = 3.33 -> 3 units, 10 in cash
    assert result.final_equity == pytest.approx(10 + 3 * 33)


def test_direction_filters_the_legs(btc_2k: Bars) -> None:
    both = run_backtest("sma_cross", btc_2k, None, BacktestConfig(direction="long_short"))
    longs = run_backtest("sma_cross", btc_2k, None, BacktestConfig(direction="long_only"))
    shorts = run_backtest("sma_cross", btc_2k, None, BacktestConfig(direction="short_only"))
    assert set(np.unique(both.positions)) == {-1, 0, 1}
    assert set(np.unique(longs.positions)) <= {0, 1} and set(np.unique(shorts.positions)) <= {-1, 0}
    assert set(longs.trades["side"]) == {1} and set(shorts.trades["side"]) == {-1}


def test_result_summary_and_frames(btc_2k: Bars) -> None:
    result = run_backtest("ema_cross", btc_2k, {"fast": 8, "slow": 21})
    summary = result.summary()
    assert summary.n_bars == 2000 and summary.params == {"fast": 8, "slow": 21}
    assert summary.start < summary.end
    assert summary.model_dump_json()  # JSON-safe (NaN/inf become null)
    frame = result.trades_frame()
    assert set(frame["exit_reason"]) <= set(REASONS)
    assert len(result.fills_frame()) == len(result.fills)
    assert result.equity_series().index[0] == btc_2k.ts[0]


# --------------------------------------------------------------------------------------- bad input


def test_bad_input_is_a_clear_error(btc_2k: Bars) -> None:
    with pytest.raises(NotFoundError, match="unknown strategy 'nope'"):
        run_backtest("nope", btc_2k)
    with pytest.raises(ValidationFailedError, match="parameter 'slow' must be greater than fast"):
        run_backtest("sma_cross", btc_2k, {"fast": 50, "slow": 10})
    with pytest.raises(ValidationFailedError, match="parameter 'fast'"):
        run_backtest("sma_cross", btc_2k, {"fast": 0})
    with pytest.raises(ValidationFailedError, match="empty range"):
        Bars.from_arrays([], [], [], [], timeframe="1h")
    with pytest.raises(ValidationFailedError, match="empty range"):
        btc_2k.slice(5, 5)
    nan_close = btc_2k.close.copy()
    nan_close[7] = math.nan
    with pytest.raises(ValidationFailedError, match=r"column 'close'.*first at bar 7"):
        Bars.from_arrays(btc_2k.open, btc_2k.high, btc_2k.low, nan_close)
    with pytest.raises(ValidationFailedError, match="strictly increasing"):
        Bars.from_arrays([1, 1], [1, 1], [1, 1], [1, 1], ts=np.array([5, 5], dtype="datetime64[s]"))
    with pytest.raises(ValidationFailedError, match="timeframe"):
        timeframe_seconds("hourly")
    with pytest.raises(ValidationFailedError, match="one per bar"):
        run_targets(btc_2k, [1, 0, 1])
    with pytest.raises(ValidationFailedError, match=r"-1, 0 or \+1"):
        run_targets(btc_2k, np.full(len(btc_2k), 2))
    with pytest.raises(ValidationFailedError, match=r"grid combination 1 .*parameter 'slow'"):
        run_grid("sma_cross", btc_2k, [{"fast": 5, "slow": 20}, {"fast": 30, "slow": 20}])
    with pytest.raises(ValidationFailedError, match="parameter 'stop_loss'"):
        run_grid("sma_cross", btc_2k, {"stop_loss": [1.5]})
    with pytest.raises(ValidationFailedError, match="'fast' has no values"):
        run_grid("sma_cross", btc_2k, {"fast": []})
    with pytest.raises(ValidationFailedError, match="unknown metric"):
        run_grid("sma_cross", btc_2k, [{}]).metric("sharp")


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [
        ("open", 0.0, r"a price <= 0"),
        ("close", -5.0, r"a price <= 0"),
        ("low", 0.0, r"a price <= 0"),
        ("high", 1.0, r"high < low"),
        ("volume", -1.0, r"negative volume"),
    ],
)
def test_impossible_bars_are_refused_naming_the_bar(btc_2k: Bars, column: str, value: float, rule: str) -> None:
    frame = btc_2k.to_frame()
    frame.loc[11, column] = value
    when = str(btc_2k.ts[11].astype("datetime64[s]"))
    with pytest.raises(ValidationFailedError, match=rf"data BTC/USD: bar 11 at {when}Z has {rule}"):
        Bars.from_frame(frame, timeframe="1h", symbol="BTC/USD")


def test_grid_can_skip_invalid_combinations(btc_2k: Bars) -> None:
    result = run_grid("sma_cross", btc_2k, {"fast": [10, 60], "slow": [20, 50]}, skip_invalid=True)
    assert [(p["fast"], p["slow"]) for p in result.params] == [(10, 20), (10, 50)]
    assert len(result.skipped) == 2 and "'slow'" in result.skipped[0][1]
    assert expand_grid({"a": [1, 2], "b": [3]}) == [{"a": 1, "b": 3}, {"a": 2, "b": 3}]


def test_bars_round_trip_and_checksum(btc_2k: Bars) -> None:
    frame = btc_2k.to_frame()
    assert list(frame.columns) == ["ts", "open", "high", "low", "close", "volume"]
    again = Bars.from_frame(frame, timeframe="1h", symbol=btc_2k.symbol)
    np.testing.assert_array_equal(again.ts, btc_2k.ts)
    assert again.checksum() == btc_2k.checksum()
    assert btc_2k.slice(0, 1999).checksum() != btc_2k.checksum()


def test_bars_per_year() -> None:
    assert bars_per_year("1h", 365) == 8760
    assert bars_per_year("1d", 365) == 365
    assert bars_per_year("15m", 365) == 365 * 96
    assert bars_per_year("1w", 364) == 52
