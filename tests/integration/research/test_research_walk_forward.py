"""Walk-forward validation on the real sample (BTC/USD hourly, Coinbase 2017-07 .. 2019-10)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.backtest.bars import Bars
from engine.backtest.config import BacktestConfig
from engine.backtest.vectorized import run_backtest, run_targets
from engine.errors import ValidationFailedError
from engine.research.data import resolve_and_load
from engine.research.studies import StudySpec, get_study, list_studies, parse_objectives
from engine.research.walkforward import (
    WalkForwardConfig,
    optimize_with_walk_forward,
    segment_metrics,
    segment_trades,
    stored_walk_forward,
    walk_forward,
    window_bounds,
)
from engine.store.database import Database


def test_window_bounds_tile_the_data() -> None:
    # T = 1000 // (3 + 4) = 142 test bars, 3T = 426 training bars; the tests tile the last 4T bars
    rolling = window_bounds(1000, WalkForwardConfig(windows=4, train_ratio=3.0))
    assert rolling == [(6, 432, 432, 574), (148, 574, 574, 716), (290, 716, 716, 858), (432, 858, 858, 1000)]
    anchored = window_bounds(1000, WalkForwardConfig(windows=4, train_ratio=3.0, mode="anchored"))
    assert [w[0] for w in anchored] == [0, 0, 0, 0] and [w[2:] for w in anchored] == [w[2:] for w in rolling]
    with pytest.raises(ValidationFailedError, match="too few"):
        window_bounds(10, WalkForwardConfig(windows=5))


def test_segment_metrics_measure_only_the_segment(btc: tuple[object, Bars]) -> None:
    _, bars = btc
    run = run_backtest("sma_cross", bars, {"fast": 10, "slow": 50}, BacktestConfig())
    metrics, returns = segment_metrics(run, bars, 6000, 8760)
    assert metrics.n_bars == len(bars) - 6000 and len(returns) == len(bars) - 6000
    assert metrics.total_return == pytest.approx(run.equity[-1] / run.equity[5999] - 1, rel=1e-12)
    assert metrics.benchmark_return == pytest.approx(bars.close[-1] / bars.close[5999] - 1, rel=1e-12)
    inside = run.closed_trades[run.closed_trades["exit_index"] >= 6000]
    assert metrics.n_trades == len(inside) > 0


def test_a_trade_carried_into_the_test_window_counts_only_its_test_window_pnl() -> None:
    closes = [100.0, 100.0, 150.0, 160.0, 170.0, 180.0, 180.0]  # bought at bar 1's open, up 50 % before bar 3
    bars = Bars.from_arrays(closes, closes, closes, closes, timeframe="1h")
    run = run_targets(bars, [1, 1, 1, 1, 0, 0, 0], BacktestConfig(fee=0.001))
    (trade,) = run.closed_trades
    assert (trade["entry_index"], trade["exit_index"]) == (1, 5)
    pnl, ret = segment_trades(run, bars, 3)
    # flat at the end: the segment's trade P&L is exactly its equity change (rebased at bar 2's close)
    assert pnl[0] == pytest.approx(run.equity[-1] - run.equity[2], rel=1e-12)
    assert pnl[0] == pytest.approx(trade["qty"] * (180.0 - 150.0) - trade["qty"] * 180.0 * 0.001, rel=1e-12)
    assert ret[0] == pytest.approx(pnl[0] / (trade["qty"] * 150.0), rel=1e-12)
    assert pnl[0] < trade["pnl"]  # the training window's 50 % is not in it
    metrics, _ = segment_metrics(run, bars, 3, 8760)
    assert metrics.expectancy == pytest.approx(ret[0], rel=1e-12)
    untouched, _ = segment_trades(run, bars, 1)
    assert untouched[0] == trade["pnl"]


def test_walk_forward_on_the_real_sample(db: Database, sample_loaded: None) -> None:
    selection, bars = resolve_and_load(db, "BTC/USD", timeframe="1h")
    assert len(bars) == 20_111
    spec = StudySpec(
        strategy="sma_cross",
        selection=selection,
        objectives=parse_objectives(["sharpe"]),
        config=BacktestConfig(fee=0.001),
        batch_size=8,
        seed=3,
    )
    config = WalkForwardConfig(windows=3, mode="rolling", train_ratio=3.0, trials=16)
    report = walk_forward(bars, spec, config)

    assert len(report.windows) == 3 and report.objective == "maximize sharpe"
    assert report.windows[-1].test_end == len(bars)
    for before, after in zip(report.windows, report.windows[1:], strict=False):
        assert before.test_end == after.test_start  # test windows tile the end of the data
    lengths = set()
    for w in report.windows:
        assert w.train_end == w.test_start and w.train_start < w.train_end
        lengths.add(w.train_end - w.train_start)
        assert w.best_params["slow"] > w.best_params["fast"]
        assert w.n_trials == 16 and w.in_sample.sharpe is not None and w.out_of_sample.sharpe is not None
        # in sample: the training window's own backtest of the chosen parameters
        is_run = run_backtest("sma_cross", bars.slice(w.train_start, w.train_end), w.best_params, spec.config)
        assert w.in_sample.sharpe == is_run.metrics.sharpe
        # out of sample: only the test window's part of a run carried on from the training window
        span = run_backtest("sma_cross", bars.slice(w.train_start, w.test_end), w.best_params, spec.config)
        k = w.test_start - w.train_start
        assert w.out_of_sample.total_return == pytest.approx(span.equity[-1] / span.equity[k - 1] - 1, rel=1e-12)
        if w.sharpe_degradation is not None:
            assert w.in_sample.sharpe is not None and w.out_of_sample.sharpe is not None
            assert w.sharpe_degradation == pytest.approx(1 - w.out_of_sample.sharpe / w.in_sample.sharpe)
        assert w.deflated_sharpe is None or 0.0 <= w.deflated_sharpe <= 1.0
        assert w.pbo is not None and 0.0 <= w.pbo <= 1.0  # CSCV over the window's trials on its training bars
    assert len(lengths) == 1  # rolling: the same training length every window
    chained = math.prod(1 + (w.out_of_sample.total_return or 0.0) for w in report.windows) - 1
    assert report.oos_combined.total_return == pytest.approx(chained, rel=1e-9)
    assert report.mean_is_sharpe == pytest.approx(np.mean([w.in_sample.sharpe for w in report.windows]))
    assert report.mean_oos_sharpe == pytest.approx(np.mean([w.out_of_sample.sharpe for w in report.windows]))
    if report.degradation_ratio is not None:
        assert report.mean_is_sharpe is not None and report.mean_oos_sharpe is not None
        assert report.degradation_ratio == pytest.approx(1 - report.mean_oos_sharpe / report.mean_is_sharpe)
    assert 0.0 <= report.positive_oos_fraction <= 1.0
    assert report.oos_combined.n_trades == sum(w.out_of_sample.n_trades for w in report.windows)


def test_a_stored_walk_forward_is_a_study(db: Database, sample_loaded: None) -> None:
    selection, bars = resolve_and_load(db, "ETH/USD", timeframe="1d")
    spec = StudySpec(strategy="ema_cross", selection=selection, objectives=parse_objectives(["total_return"]), seed=1)
    study_id, report = stored_walk_forward(
        db, spec, WalkForwardConfig(windows=2, mode="anchored", train_ratio=2.0, trials=10), "tests", bars=bars
    )
    record = get_study(db, study_id)
    assert record.kind == "walk_forward" and record.status == "done" and record.storage == "memory"
    assert record.walk_forward is not None and record.walk_forward["windows"][1]["train_start"] == 0
    assert record.best_params == report.windows[-1].best_params


def test_a_failed_walk_forward_marks_its_study_failed_with_the_reason(db: Database, sample_loaded: None) -> None:
    selection, bars = resolve_and_load(db, "ETH/USD", timeframe="1d")
    spec = StudySpec(strategy="ema_cross", selection=selection, objectives=parse_objectives(["total_return"]), seed=1)
    few = bars.slice(0, 12)  # 12 bars cannot hold 5 test windows: fails after the study was created
    with pytest.raises(ValidationFailedError, match="too few"):
        stored_walk_forward(db, spec, WalkForwardConfig(windows=5, trials=2), "tests", bars=few)
    with pytest.raises(ValidationFailedError, match="too few"):
        optimize_with_walk_forward(db, spec, 2, "tests", WalkForwardConfig(windows=5, trials=2), bars=few)
    stored_wf, optimised = list_studies(db, limit=2)[1], list_studies(db, limit=2)[0]
    assert stored_wf.kind == "walk_forward" and stored_wf.status == "failed"
    assert stored_wf.error is not None and "too few" in stored_wf.error
    assert optimised.status == "failed" and optimised.error is not None
    assert optimised.error.startswith("walk-forward: ValidationFailedError") and "too few" in optimised.error
