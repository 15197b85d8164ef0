"""Backtest runs as records: persisted with everything needed to reproduce them to the bit.

A record holds the strategy, its validated parameters, the backtest and metrics configs, the exact data (series,
first and last bar, bar count and a SHA-256 of the arrays), the engine version, the metrics, the equity curve
(float64 little-endian) and the trades. :func:`reproduce` reads the same bars again, checks their checksum, runs
the same backtest and compares the equity curve byte for byte.

>>> record = save_run(db, result, "coinbase", "alice", bars=bars)
>>> get_run(db, record.id).metrics.sharpe
>>> reproduce(db, record.id).identical
True
"""

from __future__ import annotations

import itertools
import json
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field

import engine
from engine.backtest.bars import Bars
from engine.backtest.config import BacktestConfig, MetricsConfig
from engine.backtest.metrics import Metrics
from engine.backtest.result import REASONS, BacktestResult
from engine.backtest.vectorized import run_backtest
from engine.errors import IQTSError, NotFoundError
from engine.research.data import DataSelection, bars_ms, load_bars, ms_to_datetime
from engine.store.database import Database
from engine.telemetry import get_logger

log = get_logger(__name__)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

JournalWriter = Callable[[Database, Any, str, str, str, Mapping[str, Any]], object]
"""``(db, kind, subject_id, title, body, metadata)``: how runs and studies are journaled (the knowledge
base's ``journal_entry``). The engine does not import the knowledge layer: callers above it pass this in."""

KEY_METRICS: tuple[str, ...] = ("total_return", "cagr", "sharpe", "sortino", "max_drawdown", "win_rate", "n_trades")
"""The figures listings and evidence summaries show."""


class ReproductionError(IQTSError):
    """A stored run could not be reproduced exactly (data changed, or the engine computes differently)."""


class TradeRow(BaseModel):
    """One trade of a stored run (prices after slippage, pnl after both fees, times in ms since epoch UTC)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    entry_index: int
    exit_index: int
    entry_ts: int
    exit_ts: int
    side: int = Field(description="+1 long, -1 short")
    qty: float
    entry_price: float
    exit_price: float
    pnl: float
    return_: float = Field(alias="return")
    fees: float
    exit_reason: str
    is_open: bool


class RunRecord(BaseModel):
    """A stored backtest run without its arrays (``load_equity``, ``load_trades`` fetch those)."""

    model_config = ConfigDict(frozen=True)

    id: str
    strategy: str
    params: dict[str, Any]
    config: BacktestConfig
    metrics_config: MetricsConfig
    exchange: str
    symbol: str
    timeframe: str
    start_ts: int = Field(description="first bar's open time, ms since epoch UTC")
    end_ts: int = Field(description="last bar's open time, ms since epoch UTC (inclusive)")
    n_bars: int
    data_checksum: str
    engine_version: str
    metrics: Metrics
    study_id: str | None = None
    created_at: datetime
    created_by: str

    @property
    def start(self) -> datetime:
        return ms_to_datetime(self.start_ts)

    @property
    def end(self) -> datetime:
        return ms_to_datetime(self.end_ts)

    @property
    def selection(self) -> DataSelection:
        """The exact bars of the run: ``[start_ts, end_ts]``."""
        return DataSelection(
            exchange=self.exchange,
            symbol=self.symbol,
            timeframe=self.timeframe,
            start_ms=self.start_ts,
            end_ms=self.end_ts + 1,
        )


class RecentRun(BaseModel):
    """A line of the recent-runs listing: a backtest or an optimisation study."""

    kind: Literal["backtest", "study"]
    id: str
    strategy: str
    exchange: str
    symbol: str
    timeframe: str
    created_at: datetime
    created_by: str
    metrics: dict[str, float | None] = Field(default_factory=dict, description="key metrics (backtests)")
    status: str | None = Field(None, description="studies: created, running, done, failed")
    objective: str | None = Field(None, description="studies: the first objective, e.g. 'maximize sharpe'")
    best_value: float | None = None
    n_trials: int | None = None


class ReproduceReport(BaseModel):
    """The outcome of re-running a stored backtest from its record."""

    run_id: str
    identical: bool = Field(description="equity curve, metrics and trades equal to the bit")
    equity_identical: bool
    metrics_identical: bool
    trades_identical: bool
    max_abs_equity_diff: float
    data_checksum: str
    engine_version_then: str
    engine_version_now: str


@cache
def engine_version() -> str:
    """What computed a run: the IQTS engine and the numeric libraries under it."""

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "absent"

    return f"iqts {engine.__version__}; numba {installed('numba')}; numpy {np.__version__}"


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


# -- encoding ------------------------------------------------------------------------------------------------


def json_float(value: float) -> float | str:
    """A float for JSON(B): finite as is, otherwise "NaN" / "Infinity" / "-Infinity" (pydantic reads them back)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def finite_or_none(value: float | None) -> float | None:
    """For JSON outputs with a schema: undefined (NaN) and infinite values become null."""
    return None if value is None or not math.isfinite(value) else float(value)


def metrics_to_json(metrics: Metrics) -> dict[str, Any]:
    return {k: json_float(v) if isinstance(v, float) else v for k, v in metrics.model_dump().items()}


def key_metrics(metrics: Metrics) -> dict[str, float | None]:
    values = metrics.model_dump()
    return {name: finite_or_none(float(values[name])) for name in KEY_METRICS}


def trade_rows(result: BacktestResult) -> list[TradeRow]:
    trades = result.trades
    ms = trades["entry_ts"].astype("datetime64[ms]").astype(np.int64)
    exit_ms = trades["exit_ts"].astype("datetime64[ms]").astype(np.int64)
    return [
        TradeRow(
            entry_index=int(t["entry_index"]),
            exit_index=int(t["exit_index"]),
            entry_ts=int(ms[k]),
            exit_ts=int(exit_ms[k]),
            side=int(t["side"]),
            qty=float(t["qty"]),
            entry_price=float(t["entry_price"]),
            exit_price=float(t["exit_price"]),
            pnl=float(t["pnl"]),
            return_=float(t["return"]),
            fees=float(t["fees"]),
            exit_reason=REASONS[int(t["exit_reason"])],
            is_open=bool(t["is_open"]),
        )
        for k, t in enumerate(trades)
    ]


def _trades_json(rows: list[TradeRow]) -> list[dict[str, Any]]:
    return [
        {k: json_float(v) if isinstance(v, float) else v for k, v in r.model_dump(by_alias=True).items()} for r in rows
    ]


def equity_bytes(equity: F64) -> bytes:
    return np.ascontiguousarray(equity, dtype="<f8").tobytes()


def ts_ms(result: BacktestResult) -> I64:
    ms: I64 = result.ts.astype("datetime64[ms]").astype(np.int64)
    return ms


# -- writing and reading -----------------------------------------------------------------------------------------

_RUN_COLUMNS = (
    "id, strategy, params, config, metrics_config, exchange, symbol, timeframe, start_ts, end_ts, n_bars, "
    "data_checksum, engine_version, metrics, study_id, created_at, created_by"
)


def save_run(
    db: Database,
    result: BacktestResult,
    exchange: str,
    actor: str,
    *,
    bars: Bars,
    metrics_config: MetricsConfig | None = None,
    study_id: str | None = None,
    journal: JournalWriter | None = None,
) -> RunRecord:
    """Persist a run of :func:`engine.backtest.run_backtest` over ``bars`` (the exact bars it ran on, for the
    checksum and the range); journal it when a writer is given (a failing journal only logs)."""
    if len(bars) != len(result.equity):
        raise ValueError(f"the run has {len(result.equity)} bars, the given bars {len(bars)}")
    metrics_config = metrics_config or MetricsConfig()
    start_ts, end_ts = bars_ms(bars)
    run_id = new_id("bt")
    trades = trade_rows(result)
    with db.connection() as conn:
        row = conn.execute(
            f"INSERT INTO backtest_runs (id, strategy, params, config, metrics_config, exchange, symbol, timeframe, "
            "start_ts, end_ts, n_bars, data_checksum, engine_version, metrics, equity, equity_ts, trades, study_id, "
            "created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            f"RETURNING {_RUN_COLUMNS}",
            (
                run_id,
                result.strategy,
                Jsonb(result.params),
                Jsonb(result.config.model_dump(mode="json")),
                Jsonb(metrics_config.model_dump(mode="json")),
                exchange.strip().lower(),
                bars.symbol or result.symbol,
                bars.timeframe,
                start_ts,
                end_ts,
                len(bars),
                bars.checksum(),
                engine_version(),
                Jsonb(metrics_to_json(result.metrics)),
                equity_bytes(result.equity),
                np.ascontiguousarray(ts_ms(result), dtype="<i8").tobytes(),
                Jsonb(_trades_json(trades)),
                study_id,
                actor,
            ),
        ).fetchone()
    assert row is not None
    record = _record(row)
    log.info("research.run_saved", run_id=record.id, strategy=record.strategy, symbol=record.symbol)
    if journal is not None:
        journal_run(db, record, journal)
    return record


def _record(row: tuple[Any, ...]) -> RunRecord:
    return RunRecord(
        id=row[0],
        strategy=row[1],
        params=row[2],
        config=BacktestConfig.model_validate(row[3]),
        metrics_config=MetricsConfig.model_validate(row[4]),
        exchange=row[5],
        symbol=row[6],
        timeframe=row[7],
        start_ts=row[8],
        end_ts=row[9],
        n_bars=row[10],
        data_checksum=row[11],
        engine_version=row[12],
        metrics=Metrics.model_validate(row[13]),
        study_id=row[14],
        created_at=row[15],
        created_by=row[16],
    )


NEWEST_LISTED = 5
"""Stored runs an unknown-id error names."""


def _unknown_runs(db: Database, ids: list[str]) -> NotFoundError:
    """NotFoundError for ids not stored, naming the newest stored runs so the caller can pick a real one."""
    written = ", ".join(repr(r) for r in ids)
    what = f"no backtest run {written}" if len(ids) == 1 else f"no backtest run(s) {written}"
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT id, strategy, symbol, timeframe, count(*) OVER () FROM backtest_runs "
            "ORDER BY created_at DESC, id LIMIT %s",
            (NEWEST_LISTED,),
        ).fetchall()
    if not rows:
        return NotFoundError(f"{what}; no backtest runs are stored")
    total = int(rows[0][4])
    newest = ", ".join(f"{r[0]} ({r[1]} {r[2]} {r[3]})" for r in rows)
    of = f"the newest {len(rows)} of {total} stored runs" if total > len(rows) else "the stored runs"
    return NotFoundError(f"{what}; {of}: {newest} (list_runs or `iqts backtest list` lists them all)")


def get_run(db: Database, run_id: str) -> RunRecord:
    """The stored run ``run_id`` (NotFoundError naming the newest stored runs otherwise)."""
    wanted = run_id.strip()
    with db.connection() as conn:
        row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM backtest_runs WHERE id = %s", (wanted,)).fetchone()
    if row is None:
        raise _unknown_runs(db, [wanted])
    return _record(row)


def get_runs(db: Database, run_ids: list[str]) -> list[RunRecord]:
    """Several runs in the order asked; NotFoundError names every missing id and the newest stored runs."""
    ids = [r.strip() for r in run_ids]
    with db.connection() as conn:
        rows = conn.execute(f"SELECT {_RUN_COLUMNS} FROM backtest_runs WHERE id = ANY(%s)", (ids,)).fetchall()
    found = {row[0]: _record(row) for row in rows}
    missing = list(dict.fromkeys(r for r in ids if r not in found))
    if missing:
        raise _unknown_runs(db, missing)
    return [found[r] for r in ids]


def load_arrays(db: Database, run_id: str) -> tuple[I64, F64]:
    """The stored run's bar times (ms) and equity curve."""
    with db.connection() as conn:
        row = conn.execute("SELECT equity_ts, equity FROM backtest_runs WHERE id = %s", (run_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no backtest run {run_id!r}")
    ts = np.frombuffer(bytes(row[0]), dtype="<i8").astype(np.int64)
    equity = np.frombuffer(bytes(row[1]), dtype="<f8").astype(np.float64)
    return ts, equity


def load_equity(db: Database, run_id: str) -> F64:
    return load_arrays(db, run_id)[1]


def load_trades(db: Database, run_id: str) -> list[TradeRow]:
    with db.connection() as conn:
        row = conn.execute("SELECT trades FROM backtest_runs WHERE id = %s", (run_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no backtest run {run_id!r}")
    return [TradeRow.model_validate(t) for t in row[0]]


def list_runs(
    db: Database,
    limit: int = 20,
    *,
    strategy: str | None = None,
    symbol: str | Sequence[str] | None = None,
) -> list[RunRecord]:
    """The newest runs first, optionally of one strategy and of one symbol or any of several (exact names)."""
    symbols = [symbol] if isinstance(symbol, str) else (None if symbol is None else list(symbol))
    with db.connection() as conn:
        rows = conn.execute(
            f"SELECT {_RUN_COLUMNS} FROM backtest_runs WHERE (%s::text IS NULL OR strategy = %s) "
            "AND (%s::text[] IS NULL OR symbol = ANY(%s)) ORDER BY created_at DESC, id LIMIT %s",
            (strategy, strategy, symbols, symbols, limit),
        ).fetchall()
    return [_record(row) for row in rows]


def run_strategies(db: Database) -> list[str]:
    """The strategy names stored runs carry."""
    with db.connection() as conn:
        rows = conn.execute("SELECT DISTINCT strategy FROM backtest_runs ORDER BY strategy").fetchall()
    return [r[0] for r in rows]


def run_symbols(db: Database) -> list[str]:
    """The symbols stored runs carry (``BTC/USD``: the series each run read)."""
    with db.connection() as conn:
        rows = conn.execute("SELECT DISTINCT symbol FROM backtest_runs ORDER BY symbol").fetchall()
    return [r[0] for r in rows]


def recent_runs(db: Database, limit: int = 20) -> list[RecentRun]:
    """The most recent backtests and studies together, newest first."""
    with db.connection() as conn:
        runs = conn.execute(
            "SELECT id, strategy, exchange, symbol, timeframe, created_at, created_by, metrics FROM backtest_runs "
            "ORDER BY created_at DESC LIMIT %s",
            (limit,),
        ).fetchall()
        studies = conn.execute(
            "SELECT id, strategy, exchange, symbol, timeframe, created_at, created_by, status, objectives, "
            "best_value, n_trials FROM studies ORDER BY created_at DESC LIMIT %s",
            (limit,),
        ).fetchall()
    out = [
        RecentRun(
            kind="backtest",
            id=r[0],
            strategy=r[1],
            exchange=r[2],
            symbol=r[3],
            timeframe=r[4],
            created_at=r[5],
            created_by=r[6],
            metrics=key_metrics(Metrics.model_validate(r[7])),
        )
        for r in runs
    ]
    out += [
        RecentRun(
            kind="study",
            id=s[0],
            strategy=s[1],
            exchange=s[2],
            symbol=s[3],
            timeframe=s[4],
            created_at=s[5],
            created_by=s[6],
            status=s[7],
            objective=f"{s[8][0]['direction']} {s[8][0]['metric']}" if s[8] else None,
            best_value=s[9],
            n_trials=s[10],
        )
        for s in studies
    ]
    out.sort(key=lambda r: r.created_at, reverse=True)
    return out[:limit]


# -- reproduction ------------------------------------------------------------------------------------------------


def rerun(db: Database, record: RunRecord) -> tuple[Bars, BacktestResult]:
    """Read the record's bars again (checking their checksum) and run its backtest."""
    bars = load_bars(db, record.selection)
    checksum = bars.checksum()
    if checksum != record.data_checksum or len(bars) != record.n_bars:
        raise ReproductionError(
            f"run {record.id}: the stored bars of {record.symbol} {record.timeframe} ({record.exchange}) changed since "
            f"the run ({len(bars)} bars now, {record.n_bars} then; checksum {checksum[:12]} vs "
            f"{record.data_checksum[:12]})"
        )
    result = run_backtest(record.strategy, bars, record.params, record.config, metrics_config=record.metrics_config)
    return bars, result


def reproduce(db: Database, run_id: str, *, strict: bool = False) -> ReproduceReport:
    """Re-run a stored backtest from its record and compare with what was stored, to the bit.

    With ``strict`` a difference raises ReproductionError; otherwise the report says what differs.
    """
    record = get_run(db, run_id)
    _, result = rerun(db, record)
    stored = load_equity(db, run_id)
    equity_identical = equity_bytes(result.equity) == equity_bytes(stored)
    diff = float(np.max(np.abs(result.equity - stored))) if len(stored) == len(result.equity) else math.inf
    metrics_identical = json.dumps(metrics_to_json(result.metrics), sort_keys=True) == json.dumps(
        metrics_to_json(record.metrics), sort_keys=True
    )
    trades_identical = _trades_json(trade_rows(result)) == _trades_json(load_trades(db, run_id))
    report = ReproduceReport(
        run_id=run_id,
        identical=equity_identical and metrics_identical and trades_identical,
        equity_identical=equity_identical,
        metrics_identical=metrics_identical,
        trades_identical=trades_identical,
        max_abs_equity_diff=0.0 if equity_identical else diff,
        data_checksum=record.data_checksum,
        engine_version_then=record.engine_version,
        engine_version_now=engine_version(),
    )
    if strict and not report.identical:
        raise ReproductionError(
            f"run {run_id} did not reproduce: equity {'same' if equity_identical else 'differs'} "
            f"(max diff {report.max_abs_equity_diff:g}), metrics {'same' if metrics_identical else 'differ'}, "
            f"trades {'same' if trades_identical else 'differ'} (engine then: {record.engine_version}; "
            f"now: {report.engine_version_now})"
        )
    return report


# -- presentation helpers ----------------------------------------------------------------------------------------


def downsample(ts: I64, values: F64, points: int = 200) -> list[tuple[int, float]]:
    """At most ``points`` (ts, value) pairs that keep the curve's shape: the first and last values and, per
    bucket, its lowest and highest (so drawdowns survive the thinning)."""
    n = len(values)
    if n <= points:
        return [(int(ts[i]), float(values[i])) for i in range(n)]
    buckets = max(1, (points - 2) // 2)
    edges = np.linspace(1, n - 1, buckets + 1).astype(np.int64)
    keep = {0, n - 1}
    for lo, hi in itertools.pairwise(edges):
        if hi <= lo:
            continue
        part = values[lo:hi]
        keep.add(int(lo + np.argmin(part)))
        keep.add(int(lo + np.argmax(part)))
    index = sorted(keep)[:points]
    return [(int(ts[i]), float(values[i])) for i in index]


def journal_run(db: Database, record: RunRecord, journal: JournalWriter) -> None:
    """A trade-journal note about the run (never fails the caller: a broken journal only logs)."""
    m = record.metrics
    params = ", ".join(f"{k}={v}" for k, v in record.params.items()) or "defaults"
    body = (
        f"Backtest {record.id}: {record.strategy} ({params}) on {record.symbol} {record.timeframe} "
        f"({record.exchange}), {record.start:%Y-%m-%d} to {record.end:%Y-%m-%d}, {record.n_bars} bars. "
        f"Total return {m.total_return:.2%} against buy and hold {m.benchmark_return:.2%}; Sharpe {m.sharpe:.2f}, "
        f"max drawdown {m.max_drawdown:.2%}, {m.n_trades} trades."
    )
    metadata = {
        "run_id": record.id,
        "strategy": record.strategy,
        "params": record.params,
        "symbol": record.symbol,
        "timeframe": record.timeframe,
        "exchange": record.exchange,
        **{k: v for k, v in key_metrics(m).items() if v is not None},
    }
    write_journal(
        db, journal, "backtest", record.id, f"Backtest {record.id}: {record.strategy} {record.symbol}", body, metadata
    )


def write_journal(
    db: Database,
    journal: JournalWriter,
    kind: str,
    subject_id: str,
    title: str,
    body: str,
    metadata: Mapping[str, Any],
) -> None:
    try:
        journal(db, kind, subject_id, title, body, metadata)
    except Exception as error:  # the journal is a convenience: a run or study is never lost to it
        log.warning("research.journal_failed", kind=kind, subject=subject_id, error=f"{type(error).__name__}: {error}")
