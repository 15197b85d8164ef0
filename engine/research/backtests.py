"""One backtest from stored market data to a stored run: validate first, then load, run, persist."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.backtest.bars import Bars
from engine.backtest.config import BacktestConfig, MetricsConfig
from engine.backtest.result import BacktestResult
from engine.backtest.vectorized import run_backtest
from engine.research.data import DataSelection, resolve_and_load
from engine.research.runs import JournalWriter, RunRecord, save_run
from engine.store.database import Database
from engine.strategies import get_strategy


@dataclass(frozen=True)
class BacktestOutcome:
    record: RunRecord
    selection: DataSelection
    bars: Bars
    result: BacktestResult


def backtest(
    db: Database,
    strategy: str,
    symbol: str,
    *,
    actor: str,
    params: dict[str, Any] | None = None,
    config: BacktestConfig | None = None,
    metrics_config: MetricsConfig | None = None,
    timeframe: str | None = None,
    exchange: str | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
    journal: JournalWriter | None = None,
) -> BacktestOutcome:
    """Backtest ``strategy`` on the stored ``symbol`` series and persist the run.

    Unknown strategies (NotFoundError listing them) and bad parameters (ValidationFailedError naming the
    parameter) fail before any data is read; an empty range fails naming the range.
    """
    spec = get_strategy(strategy)
    model = spec.validate_params(params)
    config = config or BacktestConfig()
    metrics_config = metrics_config or MetricsConfig()
    selection, bars = resolve_and_load(
        db, symbol, timeframe=timeframe, exchange=exchange, start_ms=start_ms, end_ms=end_ms
    )
    result = run_backtest(spec, bars, model, config, metrics_config=metrics_config)
    record = save_run(db, result, selection.exchange, actor, bars=bars, metrics_config=metrics_config, journal=journal)
    return BacktestOutcome(record=record, selection=selection, bars=bars, result=result)
