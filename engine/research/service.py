"""The research service: one function per use case, called alike by the MCP tools, the CLI, the chat and REST.

Each function validates its request and builds the run's spec once (strategy and parameters, backtest config,
objectives, data selection), runs it, and returns a pydantic result model; surfaces only parse their input into
a request, call one function, and format the result. Errors are :class:`engine.errors.ValidationFailedError`
(naming the field) or :class:`engine.errors.NotFoundError`.

Use cases: :func:`list_strategies`, :func:`backtest`, :func:`get_backtest`, :func:`list_runs`,
:func:`compare_runs`, :func:`create_study`, :func:`optimise`, :func:`walk_forward`, :func:`indicators`.
Times are epoch milliseconds UTC (each surface parses its own time syntax with ``engine.data.timeparse``).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.backtest.config import BacktestConfig
from engine.backtest.metrics import Metrics
from engine.errors import NotFoundError, ValidationFailedError
from engine.research.guards import OverfittingReport
from engine.research.optimize import Progress, StudyResult, TrialCounts, TrialRow
from engine.research.runs import JournalWriter, RunRecord, TradeRow, get_run
from engine.research.studies import StorageKind, StudyRecord, StudySpec, get_study
from engine.store.database import Database

MAX_TRIALS = 2000
"""Trials one MCP call may ask for (the CLI and workers have no cap)."""
MAX_INDICATOR_WINDOW = 500
INDICATOR_HISTORY = 100_000
"""Bars read before an indicator window at most (indicators warm up on them)."""
EQUITY_POINTS = 200
LAST_TRADES = 100

Direction = Literal["long_only", "long_short", "short_only"]


# -- requests -----------------------------------------------------------------------------------------------------


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SeriesRequest(_Request):
    """Which stored bars: a symbol as people write it, optional timeframe/exchange narrowing, a UTC range."""

    symbol: str
    timeframe: str | None = None
    exchange: str | None = None
    start_ms: int | None = Field(None, description="first bar, inclusive")
    end_ms: int | None = Field(None, description="end, exclusive")


class CostsRequest(SeriesRequest):
    """Backtest config options; None means the default. Validated once by :class:`BacktestConfig`."""

    fee: float | None = None
    slippage: float | None = None
    fill_at: str | None = None
    direction: str | None = None


class BacktestRequest(CostsRequest):
    strategy: str
    params: dict[str, Any] | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    trailing_stop: float | None = None
    initial_cash: float | None = None
    report_path: Path | None = Field(None, description="also write the self-contained HTML report here")


class OptimiseRequest(CostsRequest):
    strategy: str
    trials: int = 100
    objectives: list[str] = Field(default_factory=lambda: ["sharpe"])
    fixed_params: dict[str, Any] | None = None
    folds: int = 1
    batch_size: int | None = None
    seed: int | None = None
    storage: str = Field("journal", description="journal, rdb or memory")
    name: str | None = Field(None, description="the name workers join by (default: the id)")
    walk_forward: WalkForwardOptions | None = Field(None, description="also validate out of sample")


class WalkForwardOptions(_Request):
    windows: int = 4
    mode: str = "rolling"
    train_ratio: float = 3.0
    trials: int = 50


class WalkForwardRequest(CostsRequest):
    strategy: str
    objective: str = "sharpe"
    fixed_params: dict[str, Any] | None = None
    seed: int | None = None
    options: WalkForwardOptions = Field(default_factory=WalkForwardOptions)


class IndicatorsRequest(_Request):
    symbol: str
    indicators: list[str]
    window: int = Field(1, description="bars to return (1: the latest values only)")
    timeframe: str | None = None
    exchange: str | None = None
    end_ms: int | None = None


# -- results ------------------------------------------------------------------------------------------------------


class ParameterOut(BaseModel):
    name: str
    kind: Literal["int", "float"]
    low: float
    high: float
    step: float | None
    default: float


class StrategyOut(BaseModel):
    name: str
    summary: str
    parameters: list[ParameterOut] = Field(description="bounds define the optimisation space")


class StrategyList(BaseModel):
    strategies: list[StrategyOut]


class MetricsOut(BaseModel):
    """Performance of a run; fractions are plain (0.1 = 10 %); null when undefined or infinite."""

    total_return: float | None
    cagr: float | None
    volatility: float | None
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    max_drawdown: float | None
    max_drawdown_duration: int = Field(description="bars")
    win_rate: float | None
    profit_factor: float | None
    expectancy: float | None
    exposure: float | None
    turnover: float | None
    n_trades: int
    benchmark_return: float | None
    excess_return: float | None
    final_equity: float | None

    @classmethod
    def of(cls, metrics: Metrics) -> MetricsOut:
        values = metrics.model_dump()
        return cls.model_validate(
            {
                name: (v if isinstance(v, int) else (float(v) if math.isfinite(v) else None))
                for name, v in values.items()
                if name in cls.model_fields
            }
        )


class EquityPoint(BaseModel):
    ts: datetime
    equity: float


class TradeOut(BaseModel):
    entry_ts: datetime
    exit_ts: datetime | None = Field(description="null while still open at the end")
    side: Literal["long", "short"]
    entry_price: float
    exit_price: float
    pnl: float
    return_pct: float = Field(description="trade return, fraction")
    exit_reason: str


class BacktestOut(BaseModel):
    run_id: str = Field(description="cite it as evidence; get_backtest fetches it again")
    strategy: str
    params: dict[str, Any]
    config: dict[str, Any]
    exchange: str
    symbol: str
    timeframe: str
    start: datetime
    end: datetime
    n_bars: int
    metrics: MetricsOut
    benchmark_return: float | None = Field(description="buy and hold over the same bars")
    equity_curve: list[EquityPoint] = Field(description="at most 200 points, keeping each stretch's low and high")
    data_checksum: str
    engine_version: str
    created_at: datetime
    created_by: str
    trades: list[TradeOut] | None = Field(None, description="get_backtest: the last trades (at most 100)")
    report: str | None = Field(None, description="path of the HTML report, when one was asked for")


class TrialOut(BaseModel):
    number: int
    params: dict[str, Any]
    values: list[float | None] | None
    metrics: dict[str, float | None]


class StudyOut(BaseModel):
    study_id: str = Field(description="workers join with `iqts optimize worker STUDY`")
    optuna_name: str
    storage: str
    status: str
    strategy: str
    symbol: str
    timeframe: str
    exchange: str
    objectives: list[str]
    n_trials: int = Field(description="finished trials (every state)")
    complete: int
    infeasible: int
    pruned: int
    failed: int
    running: int
    best_params: dict[str, Any]
    best_value: float | None
    best_values: list[float | None]
    best_run_id: str | None = Field(description="stored backtest of the best parameters over the whole range")
    best_metrics: dict[str, float | None]
    top_trials: list[TrialOut] = Field(description="the five best trials")
    pareto_front: list[TrialOut] = Field(description="multi-objective studies: trials no other beats on all")
    overfitting: OverfittingReport
    walk_forward: dict[str, Any] | None = Field(None, description="the walk-forward report, when one was run")


class WalkForwardOut(BaseModel):
    study_id: str
    report: dict[str, Any] = Field(description="per window IS vs OOS Sharpe and return, degradation, DSR, PBO")


class RunRow(BaseModel):
    run_id: str
    created_at: datetime
    strategy: str
    params: dict[str, Any]
    symbol: str
    timeframe: str
    exchange: str
    start: datetime
    end: datetime
    n_bars: int
    fee: float
    metrics: MetricsOut


class RunList(BaseModel):
    runs: list[RunRow]


class CompareOut(BaseModel):
    runs: list[RunRow]
    best: dict[str, str] = Field(description="metric -> run id that does best on it")
    same_data: bool = Field(description="true when every run used the same bars (checksum)")


class IndicatorRow(BaseModel):
    ts: datetime
    close: float
    values: dict[str, float | None] = Field(description="indicator output -> value (null while warming up)")


class IndicatorsOut(BaseModel):
    exchange: str
    symbol: str
    timeframe: str
    indicators: list[str]
    rows: list[IndicatorRow] = Field(description="oldest first; the last row is the latest bar")


# -- validation and spec-building (once) --------------------------------------------------------------------------


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "value"
    return f"{field}: {first['msg'].removeprefix('Input ').removeprefix('Value error, ')} (got {first.get('input')!r})"


def backtest_config(**options: Any) -> BacktestConfig:
    """A :class:`BacktestConfig` from options (None: the default); a bad value names its field."""
    try:
        return BacktestConfig.model_validate({k: v for k, v in options.items() if v is not None})
    except ValidationError as error:
        raise ValidationFailedError(_first_error(error)) from None


def _costs(request: CostsRequest, **extra: Any) -> BacktestConfig:
    return backtest_config(
        fee=request.fee, slippage=request.slippage, fill_at=request.fill_at, direction=request.direction, **extra
    )


def _strategy(written: str) -> str:
    """The registered strategy name ``written`` means ("SMA cross" -> sma_cross; NotFoundError when unknown or
    ambiguous), so every run and study records the canonical name."""
    from engine.strategies import resolve_strategy_name

    return resolve_strategy_name(written)


def _fixed_params(strategy: str, fixed: dict[str, Any] | None) -> dict[str, Any]:
    from engine.strategies import get_strategy

    spec = get_strategy(strategy)
    given = dict(fixed or {})
    unknown = [n for n in given if n not in spec.param_names]
    if unknown:
        raise ValidationFailedError(
            f"{strategy}: unknown parameter '{unknown[0]}' (known: {', '.join(spec.param_names) or 'none'})"
        )
    if not given:
        return {}
    return {k: v for k, v in spec.validate_params(given).model_dump().items() if k in given}


def _study_spec(
    db: Database,
    request: CostsRequest,
    strategy: str,
    objectives: list[str],
    fixed: dict[str, Any] | None,
    **options: Any,
) -> tuple[StudySpec, Any]:
    from engine.research.data import resolve_and_load
    from engine.research.studies import parse_objectives

    strategy = _strategy(strategy)
    fixed_params = _fixed_params(strategy, fixed)
    parsed = parse_objectives(objectives)
    config = _costs(request)
    selection, bars = resolve_and_load(
        db,
        request.symbol,
        timeframe=request.timeframe,
        exchange=request.exchange,
        start_ms=request.start_ms,
        end_ms=request.end_ms,
    )
    try:
        spec = StudySpec(
            strategy=strategy,
            selection=selection,
            objectives=parsed,
            config=config,
            fixed_params=fixed_params,
            **{k: v for k, v in options.items() if v is not None},
        )
    except ValidationError as error:
        raise ValidationFailedError(_first_error(error)) from None
    return spec, bars


def _walk_forward_config(options: WalkForwardOptions) -> Any:
    from engine.research.walkforward import WalkForwardConfig

    try:
        return WalkForwardConfig.model_validate(options.model_dump())
    except ValidationError as error:
        raise ValidationFailedError("walk-forward " + _first_error(error)) from None


def _trials(trials: int) -> None:
    if trials < 1:
        raise ValidationFailedError(f"trials: must be at least 1 (got {trials})")


# -- result building ----------------------------------------------------------------------------------------------


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _trade_out(t: TradeRow) -> TradeOut:
    return TradeOut(
        entry_ts=_from_ms(t.entry_ts),
        exit_ts=None if t.is_open else _from_ms(t.exit_ts),
        side="long" if t.side > 0 else "short",
        entry_price=t.entry_price,
        exit_price=t.exit_price,
        pnl=t.pnl,
        return_pct=t.return_,
        exit_reason="open" if t.is_open else t.exit_reason,
    )


def _backtest_out(db: Database, record: RunRecord, *, trades: bool = False, report: str | None = None) -> BacktestOut:
    from engine.research.runs import downsample, load_arrays, load_trades

    ts, equity = load_arrays(db, record.id)
    metrics = MetricsOut.of(record.metrics)
    return BacktestOut(
        run_id=record.id,
        strategy=record.strategy,
        params=record.params,
        config=record.config.model_dump(mode="json"),
        exchange=record.exchange,
        symbol=record.symbol,
        timeframe=record.timeframe,
        start=record.start,
        end=record.end,
        n_bars=record.n_bars,
        metrics=metrics,
        benchmark_return=metrics.benchmark_return,
        equity_curve=[EquityPoint(ts=_from_ms(t), equity=v) for t, v in downsample(ts, equity, EQUITY_POINTS)],
        data_checksum=record.data_checksum,
        engine_version=record.engine_version,
        created_at=record.created_at,
        created_by=record.created_by,
        trades=[_trade_out(t) for t in load_trades(db, record.id)[-LAST_TRADES:]] if trades else None,
        report=report,
    )


def _run_row(r: RunRecord) -> RunRow:
    return RunRow(
        run_id=r.id,
        created_at=r.created_at,
        strategy=r.strategy,
        params=r.params,
        symbol=r.symbol,
        timeframe=r.timeframe,
        exchange=r.exchange,
        start=r.start,
        end=r.end,
        n_bars=r.n_bars,
        fee=r.config.fee,
        metrics=MetricsOut.of(r.metrics),
    )


def _trial_out(row: TrialRow) -> TrialOut:
    return TrialOut(number=row.number, params=row.params, values=row.values, metrics=row.metrics)


def study_out(result: StudyResult) -> StudyOut:
    """The result model of a finished study (also what ``iqts optimize worker`` prints)."""
    counts: TrialCounts = result.counts
    return StudyOut(
        study_id=result.study_id,
        optuna_name=result.optuna_name,
        storage=result.storage,
        status=result.status,
        strategy=result.strategy,
        symbol=result.symbol,
        timeframe=result.timeframe,
        exchange=result.exchange,
        objectives=result.objectives,
        n_trials=result.n_trials,
        complete=counts.complete,
        infeasible=counts.infeasible,
        pruned=counts.pruned,
        failed=counts.failed,
        running=counts.running,
        best_params=result.best_params,
        best_value=result.best_value,
        best_values=result.best_values,
        best_run_id=result.best_run_id,
        best_metrics=result.best_metrics,
        top_trials=[_trial_out(t) for t in result.top_trials],
        pareto_front=[_trial_out(t) for t in result.pareto_front],
        overfitting=result.overfitting,
        walk_forward=result.walk_forward,
    )


# -- use cases ----------------------------------------------------------------------------------------------------


def list_strategies() -> StrategyList:
    """The registered strategies with their parameters' bounds and defaults (the optimisation space)."""
    from engine.strategies import list_strategies as registered

    return StrategyList(
        strategies=[
            StrategyOut(
                name=s.name,
                summary=s.summary,
                parameters=[
                    ParameterOut.model_validate(p.model_dump(include=set(ParameterOut.model_fields)))
                    for p in s.search_space()
                ],
            )
            for s in registered()
        ]
    )


def backtest(
    db: Database, request: BacktestRequest, actor: str, *, journal: JournalWriter | None = None
) -> BacktestOut:
    """Backtest a strategy on a stored series and store the run (journaled before returning, when asked)."""
    from engine.research.backtests import backtest as run_and_store
    from engine.strategies import get_strategy

    strategy = _strategy(request.strategy)
    params = get_strategy(strategy).validate_params(request.params).model_dump()
    config = _costs(
        request,
        stop_loss=request.stop_loss,
        take_profit=request.take_profit,
        trailing_stop=request.trailing_stop,
        initial_cash=request.initial_cash,
    )
    outcome = run_and_store(
        db,
        strategy,
        request.symbol,
        actor=actor,
        params=params,
        config=config,
        timeframe=request.timeframe,
        exchange=request.exchange,
        start_ms=request.start_ms,
        end_ms=request.end_ms,
        journal=journal,
    )
    written = None
    if request.report_path is not None:
        written = str(write_report(db, outcome.record, request.report_path, outcome.bars))
    return _backtest_out(db, outcome.record, report=written)


def write_report(db: Database, record: RunRecord, path: Path, bars: Any | None = None) -> Path:
    """Write the run's self-contained HTML report to ``path`` (re-running it for its bars when not given)."""
    from engine.research.report import render_html
    from engine.research.runs import load_arrays, load_trades, rerun

    if bars is None:
        bars, _ = rerun(db, record)
    ts, equity = load_arrays(db, record.id)
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(record, ts, bars.close, equity, load_trades(db, record.id)), encoding="utf-8")
    return path


def get_backtest(db: Database, run_id: str, *, report_path: Path | None = None) -> BacktestOut:
    """A stored backtest by id with its last trades (and its HTML report written on request)."""
    from engine.research.runs import get_run

    record = get_run(db, run_id)
    written = str(write_report(db, record, report_path)) if report_path is not None else None
    return _backtest_out(db, record, trades=True, report=written)


def list_runs(db: Database, limit: int = 20, *, strategy: str | None = None, symbol: str | None = None) -> RunList:
    """The newest stored runs, optionally of one strategy and one market, both as people write them: ``strategy``
    resolves like a backtest's ("SMA cross", "rsi") among the registered and the stored names; ``symbol`` like a
    series ("BTC" means every stored BTC dollar pair, "btc/usdt" is served by BTC/USD runs when only those are
    stored: ``engine.data.symbols``). A market no run used gives an empty list."""
    from engine.data.symbols import matching_symbols, parse_symbol_query, split_symbol
    from engine.research.runs import list_runs as newest
    from engine.research.runs import run_strategies, run_symbols
    from engine.strategies import list_strategies as registered
    from engine.strategies import resolve_strategy_name

    if limit < 1:
        raise ValidationFailedError(f"limit: must be at least 1 (got {limit})")
    name = None
    if strategy is not None and strategy.strip():
        name = resolve_strategy_name(strategy, [*(s.name for s in registered()), *run_strategies(db)])
    symbols = None
    if symbol is not None and symbol.strip():
        stored = run_symbols(db)
        query = parse_symbol_query(
            symbol, bases={split_symbol(s)[0] for s in stored}, quotes={split_symbol(s)[1] for s in stored}
        )
        symbols, _ = matching_symbols(query, stored)
        if not symbols:
            return RunList(runs=[])
    return RunList(runs=[_run_row(r) for r in newest(db, limit, strategy=name, symbol=symbols)])


_COMPARED = (
    ("total_return", max),
    ("sharpe", max),
    ("sortino", max),
    ("calmar", max),
    ("max_drawdown", min),
    ("win_rate", max),
    ("profit_factor", max),
    ("excess_return", max),
)


def compare_runs(db: Database, run_ids: list[str]) -> CompareOut:
    """Stored backtests side by side, which run is best on each metric, and whether they used the same bars."""
    from engine.research.runs import get_runs

    if not 2 <= len(run_ids) <= 10:
        raise ValidationFailedError(f"run_ids: 2 to 10 run ids (got {len(run_ids)})")
    records = get_runs(db, run_ids)
    rows = [_run_row(r) for r in records]
    best: dict[str, str] = {}
    for metric, better in _COMPARED:
        defined = [(v, row.run_id) for row in rows if (v := getattr(row.metrics, metric)) is not None]
        if defined:
            best[metric] = better(defined)[1]
    return CompareOut(runs=rows, best=best, same_data=len({r.data_checksum for r in records}) == 1)


def _storage(request: OptimiseRequest) -> StorageKind:
    if request.storage not in ("journal", "rdb", "memory"):
        raise ValidationFailedError(f"storage: journal, rdb or memory (got {request.storage!r})")
    return cast("StorageKind", request.storage)


def _optimise_spec(db: Database, request: OptimiseRequest) -> tuple[StudySpec, Any]:
    _storage(request)
    return _study_spec(
        db,
        request,
        request.strategy,
        request.objectives,
        request.fixed_params,
        folds=request.folds,
        batch_size=request.batch_size,
        seed=request.seed,
    )


def create_study(db: Database, request: OptimiseRequest, actor: str) -> StudyRecord:
    """A stored study with no trials yet, for workers to join (``iqts optimize worker NAME``)."""
    from engine.research.optimize import create_study as create

    spec, bars = _optimise_spec(db, request)
    record, _ = create(db, spec, actor, storage=_storage(request), name=request.name, bars=bars)
    return record


def optimise(
    db: Database,
    request: OptimiseRequest,
    actor: str,
    *,
    progress: Progress | None = None,
    journal: JournalWriter | None = None,
) -> StudyOut:
    """Optimise a strategy's parameters in a stored Optuna study (and walk-forward validate it on request): best
    parameters, top trials, a stored backtest of the best, overfitting guards (DSR over every trial, PBO)."""
    from engine.research.walkforward import optimize_with_walk_forward

    _trials(request.trials)
    wf = _walk_forward_config(request.walk_forward) if request.walk_forward is not None else None
    spec, bars = _optimise_spec(db, request)
    result = optimize_with_walk_forward(
        db,
        spec,
        request.trials,
        actor,
        wf,
        storage=_storage(request),
        name=request.name,
        bars=bars,
        progress=progress,
        journal=journal,
    )
    return study_out(result)


def walk_forward(
    db: Database,
    request: WalkForwardRequest,
    actor: str,
    *,
    progress: Progress | None = None,
    journal: JournalWriter | None = None,
) -> WalkForwardOut:
    """Walk-forward validation recorded as a study: per window IS vs OOS, degradation, DSR and PBO."""
    from engine.research.walkforward import stored_walk_forward

    wf = _walk_forward_config(request.options)
    spec, bars = _study_spec(
        db, request, request.strategy, [request.objective], request.fixed_params, seed=request.seed
    )
    study_id, report = stored_walk_forward(db, spec, wf, actor, bars=bars, progress=progress, journal=journal)
    return WalkForwardOut(study_id=study_id, report=report.model_dump(mode="json"))


def indicators(db: Database, request: IndicatorsRequest) -> IndicatorsOut:
    """Technical indicators over a stored series' history: the latest values, or the last ``window`` bars."""
    from engine.data.timeframes import timeframe_ms
    from engine.research import indicators as ind
    from engine.research.data import DataSelection, load_bars, select_series

    if not 1 <= request.window <= MAX_INDICATOR_WINDOW:
        raise ValidationFailedError(f"window: 1 to {MAX_INDICATOR_WINDOW} bars (got {request.window})")
    requests = [ind.parse_request(item) for item in request.indicators]
    info = select_series(db, request.symbol, request.timeframe, request.exchange)
    start_ms = None
    if info.rows > INDICATOR_HISTORY:
        last = request.end_ms if request.end_ms is not None else (info.last_ts or 0) + 1
        start_ms = last - (INDICATOR_HISTORY + request.window) * timeframe_ms(info.timeframe)
    selection = DataSelection(
        exchange=info.exchange, symbol=info.symbol, timeframe=info.timeframe, start_ms=start_ms, end_ms=request.end_ms
    )
    bars = load_bars(db, selection)
    columns: dict[str, Any] = {}
    for item in requests:
        for output, values in ind.compute(bars, item).items():
            columns[item.label if output == item.name else f"{item.label}.{output}"] = values
    n = len(bars)
    ms = bars.ts.astype("datetime64[ms]").astype("int64")
    rows = [
        IndicatorRow(
            ts=_from_ms(int(ms[i])),
            close=float(bars.close[i]),
            values={k: (float(v[i]) if math.isfinite(v[i]) else None) for k, v in columns.items()},
        )
        for i in range(max(0, n - request.window), n)
    ]
    return IndicatorsOut(
        exchange=info.exchange,
        symbol=info.symbol,
        timeframe=info.timeframe,
        indicators=[r.label for r in requests],
        rows=rows,
    )


def evidence_figures(db: Database, kind: str, ref: str) -> dict[str, str] | None:
    """Key figures of a backtest run or study cited as evidence, as ``{label: text}`` (None for other kinds or
    when ``ref`` names nothing stored). The inbox shows them under the evidence link."""
    if kind not in ("backtest", "study"):
        return None

    def pct(value: float | None) -> str:
        return "-" if value is None or not math.isfinite(value) else f"{value:+.2%}"

    def num(value: float | None) -> str:
        return "-" if value is None or not math.isfinite(value) else f"{value:.2f}"

    try:
        if kind == "backtest":
            run = get_run(db, ref)
            m = run.metrics
            return {
                "strategy": f"{run.strategy} ({', '.join(f'{k}={v}' for k, v in run.params.items()) or 'defaults'})",
                "data": f"{run.symbol} {run.timeframe} {run.start:%Y-%m-%d} .. {run.end:%Y-%m-%d}",
                "total return": pct(m.total_return),
                "buy and hold": pct(m.benchmark_return),
                "Sharpe": num(m.sharpe),
                "max drawdown": f"{m.max_drawdown:.2%}",
                "trades": str(m.n_trades),
                "win rate": "-" if not math.isfinite(m.win_rate) else f"{m.win_rate:.0%}",
            }
        study = get_study(db, ref)
        summary = {
            "strategy": f"{study.strategy} on {study.symbol} {study.timeframe}",
            "objective": ", ".join(str(o) for o in study.objectives),
            "status": f"{study.status}, {study.n_trials} trials",
            "best": ", ".join(f"{k}={v}" for k, v in (study.best_params or {}).items()) or "-",
            "best value": num(study.best_value),
        }
        guards = (study.report or {}).get("overfitting") or {}
        if guards.get("dsr") is not None:
            summary["deflated Sharpe"] = num(guards["dsr"])
        wf = study.walk_forward or {}
        pbo = guards.get("pbo") if guards.get("pbo") is not None else wf.get("mean_pbo")
        if pbo is not None:
            summary["probability of backtest overfitting"] = f"{pbo:.0%}"
        if wf.get("mean_oos_sharpe") is not None or wf.get("mean_is_sharpe") is not None:
            summary["walk-forward Sharpe IS / OOS"] = (
                f"{num(wf.get('mean_is_sharpe'))} / {num(wf.get('mean_oos_sharpe'))}"
            )
        return summary
    except NotFoundError:
        return None


def run_worker(
    db: Database,
    study: str,
    trials: int,
    actor: str,
    *,
    progress: Progress | None = None,
    journal: JournalWriter | None = None,
) -> StudyOut:
    """Join a stored study (id or name), run ``trials`` trials here, and summarise it (other workers may run)."""
    from engine.research.optimize import finish_study, run_study

    _trials(trials)
    record = run_study(db, study, trials, progress=progress)
    return study_out(finish_study(db, record.id, actor, journal=journal))


OptimiseRequest.model_rebuild()
