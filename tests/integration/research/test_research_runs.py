"""Stored backtest runs: the record round trip, bit-identical reproduction, and what a changed input does."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from engine.backtest.bars import Bars
from engine.backtest.config import BacktestConfig
from engine.backtest.vectorized import run_backtest
from engine.data.sample import load_coinbase_csv
from engine.data.store import BarStore, make_key
from engine.errors import NotFoundError, ValidationFailedError
from engine.research.backtests import backtest
from engine.research.data import DataSelection
from engine.research.runs import (
    ReproductionError,
    downsample,
    get_run,
    get_runs,
    load_arrays,
    load_trades,
    metrics_to_json,
    recent_runs,
    reproduce,
    save_run,
    trade_rows,
)
from engine.store.database import Database


def test_a_run_round_trips_and_reproduces_to_the_bit(db: Database, btc: tuple[DataSelection, Bars]) -> None:
    selection, bars = btc
    config = BacktestConfig(fee=0.002, slippage=0.0005, stop_loss=0.04, direction="long_short")
    result = run_backtest("sma_cross", bars, {"fast": 12, "slow": 60}, config)
    notes: list[tuple[Any, ...]] = []

    record = save_run(db, result, selection.exchange, "tests", bars=bars, journal=lambda *args: notes.append(args))

    stored = get_run(db, record.id)
    assert stored.id.startswith("bt_") and len(stored.id) == 19
    assert (stored.strategy, stored.params, stored.config) == ("sma_cross", {"fast": 12, "slow": 60}, config)
    assert (stored.exchange, stored.symbol, stored.timeframe) == ("coinbase", "BTC/USD", "1h")
    assert stored.n_bars == len(bars) == 8760
    assert stored.start.isoformat() == "2018-01-01T00:00:00+00:00"
    assert stored.data_checksum == bars.checksum() and len(stored.data_checksum) == 64
    assert "numba" in stored.engine_version and "numpy" in stored.engine_version
    assert json.dumps(metrics_to_json(stored.metrics)) == json.dumps(metrics_to_json(result.metrics))
    ts, equity = load_arrays(db, record.id)
    assert equity.tobytes() == result.equity.tobytes()
    assert np.array_equal(ts, bars.ts.astype("datetime64[ms]").astype(np.int64))
    trades = load_trades(db, record.id)
    assert trades == trade_rows(result) and len(trades) >= result.metrics.n_trades > 10
    assert {t.exit_reason for t in trades} >= {"signal", "stop_loss"}

    report = reproduce(db, record.id, strict=True)
    assert report.identical and report.equity_identical and report.trades_identical and report.metrics_identical
    assert report.max_abs_equity_diff == 0.0

    [(_, kind, subject, title, body, metadata)] = notes
    assert (kind, subject) == ("backtest", record.id) and record.id in title
    assert "sma_cross" in body and metadata["sharpe"] == pytest.approx(result.metrics.sharpe)
    assert record.id in [r.id for r in recent_runs(db, 50) if r.kind == "backtest"]
    assert [r.id for r in get_runs(db, [record.id, record.id])] == [record.id, record.id]


def test_reproduce_notices_changed_data_and_a_changed_result(db: Database, unique: str) -> None:
    series = load_coinbase_csv("Coinbase_BTCUSD_1h.csv", "1h")
    frame = series.frame.iloc[:600].reset_index(drop=True)
    exchange = f"t{unique}"
    store = BarStore(db)
    store.upsert_bars(make_key(exchange, "BTC/USD", "1h"), frame)
    outcome = backtest(db, "ema_cross", "BTC/USD", actor="tests", exchange=exchange, params={"fast": 5, "slow": 20})
    assert reproduce(db, outcome.record.id).identical

    # a different stored result: the comparison is not vacuous
    tampered = outcome.result.equity.copy()
    tampered[-1] += 0.01
    with db.connection() as conn:
        conn.execute(
            "UPDATE backtest_runs SET equity = %s WHERE id = %s", (tampered.astype("<f8").tobytes(), outcome.record.id)
        )
    report = reproduce(db, outcome.record.id)
    assert not report.identical and not report.equity_identical and report.max_abs_equity_diff == pytest.approx(0.01)
    with pytest.raises(ReproductionError, match="did not reproduce"):
        reproduce(db, outcome.record.id, strict=True)

    # the data changed since the run
    changed = frame.iloc[[300]].copy()
    changed["close"] = changed["close"] * 1.01
    store.upsert_bars(make_key(exchange, "BTC/USD", "1h"), changed)
    with pytest.raises(ReproductionError, match="changed since the run"):
        reproduce(db, outcome.record.id)


@pytest.mark.parametrize(
    ("strategy", "params", "kwargs", "error", "expected"),
    [
        ("nope", {}, {}, NotFoundError, "unknown strategy 'nope' (available: bollinger_breakout"),
        (
            "sma_cross",
            {"fast": 1000},
            {},
            ValidationFailedError,
            "parameter 'fast' should be less than or equal to 400",
        ),
        (
            "sma_cross",
            {"fast": 50, "slow": 20},
            {},
            ValidationFailedError,
            "parameter 'slow' must be greater than fast",
        ),
        ("sma_cross", {"fats": 5}, {}, ValidationFailedError, "unknown parameter 'fats' (known: fast, slow)"),
        ("sma_cross", {}, {"start_ms": 1_900_000_000_000}, ValidationFailedError, "empty data range"),
        ("sma_cross", {}, {"start_ms": 20, "end_ms": 10}, ValidationFailedError, "empty data range"),
        ("sma_cross", {}, {"timeframe": "1m"}, NotFoundError, "no stored data for BTC/USD 1m"),
        ("sma_cross", {}, {"timeframe": "2h"}, ValidationFailedError, "unsupported timeframe '2h'"),
    ],
)
def test_bad_input_names_the_problem(
    db: Database,
    sample_loaded: None,
    strategy: str,
    params: dict[str, Any],
    kwargs: dict[str, Any],
    error: type[Exception],
    expected: str,
) -> None:
    with pytest.raises(error) as raised:
        backtest(db, strategy, "BTC/USD", actor="tests", params=params, **{"timeframe": "1h", **kwargs})
    assert expected in str(raised.value)
    assert "\n" not in str(raised.value)


def test_unknown_runs_are_not_found(db: Database) -> None:
    with pytest.raises(NotFoundError, match="no backtest run 'bt_nope'"):
        get_run(db, "bt_nope")
    with pytest.raises(NotFoundError, match="'bt_missing'"):
        get_runs(db, ["bt_missing"])


def test_downsample_keeps_ends_and_extremes() -> None:
    values = np.sin(np.linspace(0, 20, 10_001)) + np.linspace(0, 1, 10_001)
    values[4_321] = -5.0
    ts = np.arange(len(values), dtype=np.int64)
    points = downsample(ts, values, 200)
    assert len(points) <= 200
    assert points[0] == (0, values[0]) and points[-1] == (10_000, values[-1])
    assert (4_321, -5.0) in points and max(v for _, v in points) == values.max()
    assert [t for t, _ in points] == sorted(t for t, _ in points)
    assert len(downsample(ts[:50], values[:50], 200)) == 50


def test_the_knowledge_journal_gets_a_note(db: Database, btc: tuple[DataSelection, Bars]) -> None:
    from knowledge.service import journal_entry

    selection, bars = btc
    result = run_backtest("rsi_reversion", bars, {"window": 10}, BacktestConfig())
    record = save_run(db, result, selection.exchange, "tests", bars=bars, journal=journal_entry)
    with db.connection() as conn:
        row = conn.execute(
            "SELECT title, metadata FROM kb_documents WHERE source = %s", (f"journal://backtest/{record.id}",)
        ).fetchone()
    assert row is not None and record.id in row[0]
    assert row[1]["run_id"] == record.id and row[1]["strategy"] == "rsi_reversion"


def test_a_broken_journal_never_loses_the_run(db: Database, btc: tuple[DataSelection, Bars]) -> None:
    selection, bars = btc

    def broken(*_: object) -> None:
        raise RuntimeError("embedder down")

    result = run_backtest("macd", bars, {}, BacktestConfig())
    record = save_run(db, result, selection.exchange, "tests", bars=bars, journal=broken)
    assert get_run(db, record.id).strategy == "macd"


def test_the_inbox_shows_a_linked_runs_key_figures(db: Database, btc: tuple[DataSelection, Bars]) -> None:
    from approvals.service import Evidence
    from ui.api.inbox.evidence import evidence_summary

    selection, bars = btc
    result = run_backtest("sma_cross", bars, {"fast": 10, "slow": 50}, BacktestConfig())
    record = save_run(db, result, selection.exchange, "tests", bars=bars)
    summary = evidence_summary(Evidence(kind="backtest", ref=record.id), db)
    assert summary is not None
    assert summary["Sharpe"] == f"{result.metrics.sharpe:.2f}"
    assert summary["total return"] == f"{result.metrics.total_return:+.2%}"
    assert summary["trades"] == str(result.metrics.n_trades) and "fast=10" in summary["strategy"]
    assert evidence_summary(Evidence(kind="backtest", ref="bt_0000000000000000"), db) is None
    assert evidence_summary(Evidence(kind="backtest", ref=record.id), None) is None
    assert evidence_summary(Evidence(kind="note", ref="note://x"), db) is None

    from engine.research.optimize import optimize
    from engine.research.studies import StudySpec, parse_objectives

    spec = StudySpec(strategy="sma_cross", selection=selection, objectives=parse_objectives(["sharpe"]), seed=2)
    study = optimize(db, spec, 8, "tests", storage="memory", bars=bars)
    shown = evidence_summary(Evidence(kind="study", ref=study.study_id), db)
    assert shown is not None and shown["best value"] == f"{study.best_value:.2f}"
    assert "deflated Sharpe" in shown and shown["status"] == "done, 8 trials"
    assert study.overfitting.pbo is not None and study.overfitting.pbo_configs >= 2
    assert shown["probability of backtest overfitting"] == f"{study.overfitting.pbo:.0%}"
