"""The metrics module on hand-computed examples."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from engine.backtest.metrics import METRIC_NAMES, Metrics, compute_metrics, per_bar_rate


def test_metrics_by_hand() -> None:
    equity = [100.0, 110.0, 99.0, 121.0]
    m = compute_metrics(
        equity,
        initial_cash=100.0,
        bars_per_year=4.0,
        benchmark_return=0.5,
        position=[1, 1, 1, 0],
        trade_pnl=[10.0, -5.0, 20.0],
        trade_return=[0.1, -0.05, 0.2],
        fill_notional=[100.0, 110.0, 99.0],
    )
    r = np.array([0.0, 0.1, -0.1, 121 / 99 - 1])
    sd = math.sqrt(((r - r.mean()) ** 2).sum() / 3)
    assert m.total_return == pytest.approx(0.21)
    assert m.cagr == pytest.approx(0.21)  # four bars at four bars a year: exactly one year
    assert m.volatility == pytest.approx(sd * 2)
    assert m.sharpe == pytest.approx(r.mean() / sd * 2)
    assert m.sortino == pytest.approx(r.mean() / math.sqrt(0.1**2 / 4) * 2)
    assert m.max_drawdown == pytest.approx(0.1)  # 110 -> 99
    assert m.max_drawdown_duration == 2  # peak at bar 1, regained at bar 3
    assert m.calmar == pytest.approx(2.1)
    assert m.win_rate == pytest.approx(2 / 3)
    assert m.profit_factor == pytest.approx(30 / 5)
    assert m.expectancy == pytest.approx(0.25 / 3)
    assert m.exposure == pytest.approx(0.75)
    assert m.turnover == pytest.approx(309 / 107.5)
    assert m.n_trades == 3
    assert m.benchmark_return == 0.5 and m.excess_return == pytest.approx(-0.29)
    assert m.final_equity == 121.0 and m.n_bars == 4 and m.bars_per_year == 4.0


def test_unrecovered_drawdown_runs_to_the_end() -> None:
    m = compute_metrics([100.0, 120.0, 90.0, 100.0], initial_cash=100.0, bars_per_year=365, benchmark_return=0)
    assert m.max_drawdown == pytest.approx(0.25)
    assert m.max_drawdown_duration == 2  # from bar 1 to the last bar, never regained


def test_first_bar_loss_counts_from_the_initial_cash() -> None:
    m = compute_metrics([90.0, 95.0], initial_cash=100.0, bars_per_year=365, benchmark_return=0)
    assert m.max_drawdown == pytest.approx(0.1)
    assert m.max_drawdown_duration == 2  # underwater since before bar 0, through the last bar


def test_undefined_ratios_are_nan_and_serialise_as_null() -> None:
    flat = compute_metrics([100.0] * 5, initial_cash=100.0, bars_per_year=365, benchmark_return=0.0)
    assert flat.total_return == 0.0 and flat.volatility == 0.0 and flat.max_drawdown == 0.0
    for name in ("sharpe", "sortino", "calmar", "win_rate", "profit_factor", "expectancy"):
        assert math.isnan(getattr(flat, name)), name
    assert flat.n_trades == 0 and flat.exposure == 0.0 and flat.turnover == 0.0
    winners = compute_metrics(
        [100.0, 101.0],
        initial_cash=100.0,
        bars_per_year=365,
        benchmark_return=0.0,
        trade_pnl=[1.0],
        trade_return=[0.01],
    )
    assert winners.profit_factor == math.inf
    assert json.loads(winners.model_dump_json())["profit_factor"] is None
    assert json.loads(flat.model_dump_json())["sharpe"] is None


def test_risk_free_rate_shifts_sharpe_and_sortino() -> None:
    equity = 100 * np.cumprod(1 + np.array([0.01, -0.02, 0.015, 0.005, -0.01, 0.02]))
    base = compute_metrics(equity, initial_cash=100.0, bars_per_year=12, benchmark_return=0.0)
    rf = compute_metrics(equity, initial_cash=100.0, bars_per_year=12, benchmark_return=0.0, risk_free_rate=0.05)
    r = equity / np.r_[100.0, equity[:-1]] - 1
    rf_bar = 1.05 ** (1 / 12) - 1
    assert per_bar_rate(0.05, 12) == pytest.approx(rf_bar)
    assert rf.sharpe == pytest.approx((r.mean() - rf_bar) / r.std(ddof=1) * math.sqrt(12))
    down = np.minimum(r - rf_bar, 0)
    assert rf.sortino == pytest.approx((r.mean() - rf_bar) / math.sqrt((down**2).mean()) * math.sqrt(12))
    assert rf.sharpe < base.sharpe


def test_zero_equity_after_a_blow_up() -> None:
    m = compute_metrics([50.0, 0.0, 0.0], initial_cash=100.0, bars_per_year=365, benchmark_return=0.0)
    assert m.total_return == -1.0 and m.cagr == -1.0 and m.max_drawdown == 1.0
    assert not math.isnan(m.sharpe)  # returns -0.5, -1, then 0 (nothing left to lose)


def test_metric_names_follow_the_model() -> None:
    expected = tuple(name for name in Metrics.model_fields if name != "bars_per_year")
    assert expected == METRIC_NAMES
