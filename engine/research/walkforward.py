"""Walk-forward validation: optimise on a training window, trade the winner on the next unseen window, repeat.

Windows: the bars are cut into ``windows`` test windows of ``T`` bars that follow each other to the end of the
data, each preceded by its training window of ``train_ratio * T`` bars (``rolling``) or by everything from the
first bar (``anchored``). Per window the parameters are optimised on the training bars (an in-memory study,
``trials`` trials, the study's objective) and the best are traded over the test window: the backtest runs from
the training window's start through the test window (so indicators are warm and a position held at the boundary
carries on, as it would live) and the test window's metrics are taken from that run's equity, trades and fills
inside the test window only: a trade opened in the training window counts only the P&L it made after the
training window's last close (:func:`segment_trades`).

The report holds, per window and over all: in-sample (IS) against out-of-sample (OOS) Sharpe ratio and return,
the degradation ``1 - OOS / IS`` of the Sharpe ratio, the walk-forward efficiency (OOS over IS annualised return,
Pardo), the share of windows that made money out of sample, the deflated Sharpe ratio and the probability of
backtest overfitting (CSCV) of each window's selection, and the metrics of the stitched OOS equity curve (every test
window chained).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field

from engine.backtest.bars import Bars
from engine.backtest.metrics import Metrics, compute_metrics
from engine.backtest.result import BacktestResult
from engine.backtest.vectorized import resolve_bars_per_year, run_backtest
from engine.errors import ValidationFailedError
from engine.research.guards import DSR_THRESHOLD, PBO_THRESHOLD, bar_returns, overfitting_report
from engine.research.optimize import (
    Progress,
    StudyResult,
    config_returns,
    create_study,
    finish_study,
    optimize_bars,
    ranked_trials,
    run_study,
    trials_tried,
)
from engine.research.runs import JournalWriter, finite_or_none, write_journal
from engine.research.studies import StorageKind, StudySpec, set_status
from engine.store.database import Database

WindowMode = Literal["rolling", "anchored"]


class WalkForwardConfig(BaseModel):
    """How the data is cut into train/test windows."""

    model_config = ConfigDict(frozen=True)

    windows: int = Field(4, ge=1, le=50, description="test windows")
    mode: WindowMode = Field("rolling", description="rolling: fixed-length training; anchored: from the first bar")
    train_ratio: float = Field(3.0, gt=0, le=50, description="training bars per test bar")
    trials: int = Field(50, ge=1, le=5000, description="trials per training window")


class WindowMetrics(BaseModel):
    sharpe: float | None
    total_return: float | None
    cagr: float | None
    max_drawdown: float | None
    n_trades: int


class WindowReport(BaseModel):
    index: int
    train_start: int = Field(description="bar indices [train_start, train_end) and [test_start, test_end)")
    train_end: int
    test_start: int
    test_end: int
    train_from: str
    test_from: str
    test_to: str
    best_params: dict[str, Any]
    in_sample: WindowMetrics
    out_of_sample: WindowMetrics
    sharpe_degradation: float | None = Field(description="1 - OOS Sharpe / IS Sharpe (IS Sharpe > 0 only)")
    deflated_sharpe: float | None = Field(description="DSR of the training selection")
    pbo: float | None = Field(None, description="probability of backtest overfitting (CSCV) of the training selection")
    n_trials: int = Field(description="trials tried on the training bars (every state)")


class WalkForwardReport(BaseModel):
    strategy: str
    symbol: str
    timeframe: str
    objective: str
    config: WalkForwardConfig
    windows: list[WindowReport]
    mean_is_sharpe: float | None
    mean_oos_sharpe: float | None
    mean_is_return: float | None
    mean_oos_return: float | None
    degradation_ratio: float | None = Field(description="1 - mean OOS Sharpe / mean IS Sharpe")
    walk_forward_efficiency: float | None = Field(
        description="mean OOS over mean IS annualised return (Pardo); above 0.5 is commonly read as robust"
    )
    positive_oos_fraction: float = Field(description="share of test windows with a positive return")
    mean_pbo: float | None = Field(None, description="mean probability of backtest overfitting of the windows")
    oos_combined: WindowMetrics = Field(description="the stitched out-of-sample equity curve")
    warnings: list[str] = Field(default_factory=list)


def window_bounds(n: int, config: WalkForwardConfig) -> list[tuple[int, int, int, int]]:
    """``(train_start, train_end, test_start, test_end)`` bar indices of every window."""
    test = int(n // (config.train_ratio + config.windows))
    train = n - config.windows * test
    if config.mode == "rolling":
        train = round(config.train_ratio * test)
    if test < 2 or train < 2:
        raise ValidationFailedError(
            f"walk-forward: {n} bars are too few for {config.windows} windows at train_ratio {config.train_ratio} "
            "(each test window needs at least 2 bars)"
        )
    first_test = n - config.windows * test
    out = []
    for k in range(config.windows):
        test_start = first_test + k * test
        test_end = test_start + test if k < config.windows - 1 else n
        train_start = 0 if config.mode == "anchored" else max(0, test_start - train)
        out.append((train_start, test_start, test_start, test_end))
    return out


def _window_metrics(m: Metrics) -> WindowMetrics:
    return WindowMetrics(
        sharpe=finite_or_none(m.sharpe),
        total_return=finite_or_none(m.total_return),
        cagr=finite_or_none(m.cagr),
        max_drawdown=finite_or_none(m.max_drawdown),
        n_trades=m.n_trades,
    )


def segment_trades(result: BacktestResult, bars: Bars, start: int) -> tuple[Any, Any]:
    """P&L and return of the closed trades that end in bars ``start..``, counting only what they made there.

    A trade opened before ``start`` is split at the close of bar ``start - 1``, as the segment's equity is: its
    segment P&L is ``side * qty * (exit - close[start-1])`` minus the exit fee (the entry fee was paid before),
    its return that P&L over the position's value at that close. Trades opened inside are unchanged."""
    closed = result.closed_trades
    inside = closed[closed["exit_index"] >= start]
    pnl = inside["pnl"].astype(np.float64)
    ret = inside["return"].astype(np.float64)
    carried = inside["entry_index"] < start
    if carried.any():
        mark = float(bars.close[start - 1])
        qty = inside["qty"][carried]
        exit_px = inside["exit_price"][carried]
        pnl[carried] = inside["side"][carried] * qty * (exit_px - mark) - qty * exit_px * result.config.fee
        ret[carried] = pnl[carried] / (qty * mark)
    return pnl, ret


def segment_metrics(result: BacktestResult, bars: Bars, start: int, bars_per_year: float) -> tuple[Metrics, Any]:
    """Metrics of bars ``start..`` of a run (equity rebased at the close before ``start``, trades split there by
    :func:`segment_trades`); and those bars' equity returns."""
    if start < 1:
        raise ValueError("a segment needs a bar before it")
    equity = result.equity[start:]
    base = float(result.equity[start - 1])
    trade_pnl, trade_return = segment_trades(result, bars, start)
    fills = result.fills
    fills = fills[fills["index"] >= start]
    metrics = compute_metrics(
        equity,
        initial_cash=base,
        bars_per_year=bars_per_year,
        benchmark_return=float(bars.close[-1] / bars.close[start - 1] - 1.0),
        position=result.positions[start:],
        trade_pnl=trade_pnl,
        trade_return=trade_return,
        fill_notional=np.abs(fills["qty"] * fills["price"]),
    )
    return metrics, bar_returns(equity, base)


def _mean(values: list[float | None]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def walk_forward(
    bars: Bars,
    spec: StudySpec,
    config: WalkForwardConfig,
    *,
    progress: Progress | None = None,
) -> WalkForwardReport:
    """Walk-forward validation of ``spec``'s optimisation over ``bars`` (single objective: its first)."""
    spec = spec.model_copy(update={"objectives": spec.objectives[:1]})
    bounds = window_bounds(len(bars), config)
    bpy = resolve_bars_per_year(bars, spec.metrics_config)
    windows: list[WindowReport] = []
    oos_returns: list[Any] = []
    total = config.trials * len(bounds)
    for k, (train_start, train_end, test_start, test_end) in enumerate(bounds):
        train = bars.slice(train_start, train_end)
        window_spec = spec.model_copy(update={"seed": None if spec.seed is None else spec.seed + k})

        def step(done: int, _: int, __: str, k: int = k) -> None:
            if progress is not None:
                progress(k * config.trials + done, total, f"window {k + 1}/{len(bounds)}: {done} trials")

        study = optimize_bars(train, window_spec, config.trials, progress=step)
        ranked = ranked_trials(study.get_trials(deepcopy=False), window_spec)
        if not ranked:
            raise ValidationFailedError(f"walk-forward window {k + 1}: no feasible trial on the training bars")
        params = {**spec.fixed_params, **ranked[0].params}
        is_run = run_backtest(spec.strategy, train, params, spec.config, metrics_config=spec.metrics_config)
        trial_sharpes = [t.user_attrs.get("metrics", {}).get("sharpe") for t in ranked]
        guard = overfitting_report(
            is_run.metrics.sharpe,
            [math.nan if s is None else float(s) for s in trial_sharpes],
            bar_returns(is_run.equity, spec.config.initial_cash),
            bpy,
            n_tried=trials_tried(study.get_trials(deepcopy=False)),
            config_returns=config_returns(window_spec, train, ranked),
        )
        span = bars.slice(train_start, test_end)
        run = run_backtest(spec.strategy, span, params, spec.config, metrics_config=spec.metrics_config)
        oos, returns = segment_metrics(run, span, test_start - train_start, bpy)
        oos_returns.append(returns)
        is_sharpe, oos_sharpe = finite_or_none(is_run.metrics.sharpe), finite_or_none(oos.sharpe)
        degradation = (
            1.0 - oos_sharpe / is_sharpe if is_sharpe is not None and oos_sharpe is not None and is_sharpe > 0 else None
        )
        windows.append(
            WindowReport(
                index=k,
                train_start=train_start,
                train_end=train_end,
                test_start=test_start,
                test_end=test_end,
                train_from=str(bars.ts[train_start])[:16],
                test_from=str(bars.ts[test_start])[:16],
                test_to=str(bars.ts[test_end - 1])[:16],
                best_params=params,
                in_sample=_window_metrics(is_run.metrics),
                out_of_sample=_window_metrics(oos),
                sharpe_degradation=degradation,
                deflated_sharpe=guard.dsr,
                pbo=guard.pbo,
                n_trials=guard.n_trials,
            )
        )
    stitched_returns = np.concatenate(oos_returns)
    stitched = spec.config.initial_cash * np.cumprod(1.0 + stitched_returns)
    first_test = bounds[0][2]
    combined = compute_metrics(
        stitched,
        initial_cash=spec.config.initial_cash,
        bars_per_year=bpy,
        benchmark_return=float(bars.close[-1] / bars.close[first_test - 1] - 1.0),
        trade_pnl=[],
    )
    combined_metrics = _window_metrics(combined).model_copy(
        update={"n_trades": sum(w.out_of_sample.n_trades for w in windows)}
    )
    mean_is = _mean([w.in_sample.sharpe for w in windows])
    mean_oos = _mean([w.out_of_sample.sharpe for w in windows])
    is_cagr = _mean([w.in_sample.cagr for w in windows])
    oos_cagr = _mean([w.out_of_sample.cagr for w in windows])
    degradation = 1.0 - mean_oos / mean_is if mean_is is not None and mean_oos is not None and mean_is > 0 else None
    efficiency = oos_cagr / is_cagr if is_cagr is not None and oos_cagr is not None and is_cagr > 0 else None
    positive = sum(1 for w in windows if (w.out_of_sample.total_return or 0.0) > 0) / len(windows)
    warnings = []
    if degradation is not None and degradation > 0.5:
        warnings.append(f"out-of-sample Sharpe is {degradation:.0%} below in-sample: likely overfit")
    if mean_is is not None and mean_is > 0 and (mean_oos is None or mean_oos <= 0):
        warnings.append("positive in-sample Sharpe but none out of sample")
    low = [w.index + 1 for w in windows if w.deflated_sharpe is not None and w.deflated_sharpe < DSR_THRESHOLD]
    if low:
        warnings.append(f"deflated Sharpe ratio below {DSR_THRESHOLD} in window(s) {', '.join(map(str, low))}")
    mean_pbo = _mean([w.pbo for w in windows])
    if mean_pbo is not None and mean_pbo > PBO_THRESHOLD:
        warnings.append(f"probability of backtest overfitting {mean_pbo:.2f} > {PBO_THRESHOLD} (mean of the windows)")
    if efficiency is not None and efficiency < 0.5:
        warnings.append(f"walk-forward efficiency {efficiency:.2f} < 0.5")
    return WalkForwardReport(
        strategy=spec.strategy,
        symbol=bars.symbol,
        timeframe=bars.timeframe,
        objective=str(spec.objectives[0]),
        config=config,
        windows=windows,
        mean_is_sharpe=mean_is,
        mean_oos_sharpe=mean_oos,
        mean_is_return=_mean([w.in_sample.total_return for w in windows]),
        mean_oos_return=_mean([w.out_of_sample.total_return for w in windows]),
        degradation_ratio=degradation,
        walk_forward_efficiency=efficiency,
        positive_oos_fraction=positive,
        mean_pbo=mean_pbo,
        oos_combined=combined_metrics,
        warnings=warnings,
    )


def optimize_with_walk_forward(
    db: Database,
    spec: StudySpec,
    n_trials: int,
    actor: str,
    config: WalkForwardConfig | None,
    *,
    storage: StorageKind = "journal",
    name: str | None = None,
    bars: Bars | None = None,
    progress: Progress | None = None,
    journal: JournalWriter | None = None,
) -> StudyResult:
    """A stored study over all the bars (``n_trials`` trials) and, with ``config``, the walk-forward validation of
    the same optimisation, both in the study's record."""
    if n_trials < 1:
        raise ValidationFailedError(f"trials must be at least 1 (got {n_trials})")
    record, bars = create_study(db, spec, actor, storage=storage, name=name, bars=bars)
    wf_total = config.trials * config.windows if config is not None else 0

    def main_progress(done: int, total: int, message: str) -> None:
        if progress is not None:
            progress(done, total + wf_total, message)

    if storage == "memory":
        set_status(db, record.id, "running")
        with _fails_study(db, record.id):
            study = optimize_bars(bars, record.spec, n_trials, progress=main_progress)
    else:
        run_study(db, record.id, n_trials, bars=bars, progress=main_progress)
        study = None
    report = None
    if config is not None:

        def wf_progress(done: int, total: int, message: str) -> None:
            if progress is not None:
                progress(n_trials + done, n_trials + total, message)

        set_status(db, record.id, "running")
        with _fails_study(db, record.id, "walk-forward: "):
            report = walk_forward(bars, record.spec, config, progress=wf_progress).model_dump(mode="json")
    return finish_study(db, record.id, actor, bars=bars, study=study, journal=journal, walk_forward=report)


@contextmanager
def _fails_study(db: Database, study_id: str, prefix: str = "") -> Iterator[None]:
    """Mark the study ``failed`` with the reason if the block raises (then re-raise): never left "running"."""
    try:
        yield
    except BaseException as error:
        set_status(db, study_id, "failed", f"{prefix}{type(error).__name__}: {error}"[:500])
        raise


def stored_walk_forward(
    db: Database,
    spec: StudySpec,
    config: WalkForwardConfig,
    actor: str,
    *,
    bars: Bars | None = None,
    progress: Progress | None = None,
    journal: JournalWriter | None = None,
) -> tuple[str, WalkForwardReport]:
    """A walk-forward validation recorded as a study of kind ``walk_forward``; its id and the report."""
    record, bars = create_study(db, spec, actor, storage="memory", bars=bars, kind="walk_forward")
    set_status(db, record.id, "running")
    with _fails_study(db, record.id):
        report = walk_forward(bars, record.spec, config, progress=progress)
    last = report.windows[-1]
    with db.connection() as conn:
        conn.execute(
            "UPDATE studies SET status = 'done', n_trials = %s, best_params = %s, best_value = %s, walk_forward = %s, "
            "updated_at = now() WHERE id = %s",
            (
                sum(w.n_trials for w in report.windows),
                Jsonb(last.best_params),
                report.mean_oos_sharpe,
                Jsonb(report.model_dump(mode="json")),
                record.id,
            ),
        )
    if journal is not None:
        body = (
            f"Walk-forward validation {record.id}: {report.strategy} on {report.symbol} {report.timeframe}, "
            f"{config.windows} {config.mode} windows, {config.trials} trials each, objective {report.objective}. "
            f"Mean in-sample Sharpe {report.mean_is_sharpe}, out-of-sample {report.mean_oos_sharpe}; degradation "
            f"{report.degradation_ratio}; {report.positive_oos_fraction:.0%} of test windows positive."
        )
        if report.warnings:
            body += " Warnings: " + "; ".join(report.warnings)
        write_journal(
            db,
            journal,
            "study",
            record.id,
            f"Walk-forward {record.id}: {report.strategy} {report.symbol}",
            body,
            {"study_id": record.id, "mean_oos_sharpe": report.mean_oos_sharpe, "degradation": report.degradation_ratio},
        )
    return record.id, report
