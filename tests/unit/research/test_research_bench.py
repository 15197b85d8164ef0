"""The backtest benchmark runs end to end and agrees with its reference (slow: compiles and times everything)."""

from __future__ import annotations

import pytest

from bench.backtest_bench import run_backtest_bench


@pytest.mark.slow
def test_backtest_bench_quick_runs() -> None:
    rows = run_backtest_bench(quick=True)
    by_engine = {row.engine: row for row in rows}
    assert by_engine["reference: plain fused numba loop"].ratio == 1.0
    ours = by_engine["iqts run_backtest"]
    assert "final equity equals the reference's" in ours.note
    assert all(row.median_s > 0 for row in rows)
    assert {row.engine for row in rows} >= {"vectorbt Portfolio.from_signals", "backtesting.py FractionalBacktest"}
