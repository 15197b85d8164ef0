"""Research tools: strategies, stored backtests, Optuna studies, walk-forward validation, run comparison and
technical indicators over stored series.

Every backtest and study a tool runs is stored (``engine.research``) and journaled in the knowledge base before the
tool answers (in-line, so a session that ends right after the call loses nothing); ids (``bt_...``, ``st_...``) can
be cited as evidence when proposing an order. Metrics are plain fractions (0.1 = 10 %); a metric is null when
undefined (no trades, zero deviation) or infinite.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from mcp.server.fastmcp import Context, FastMCP
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field, ValidationError

from approvals.users import Role, User
from engine.backtest.config import BacktestConfig
from engine.backtest.metrics import Metrics
from engine.data.timeparse import UtcDateTime, datetime_to_ms
from engine.errors import ValidationFailedError
from engine.research.guards import OverfittingReport
from engine.runtime import Runtime
from engine.telemetry import get_logger
from tools.context import progress, tool_call

log = get_logger(__name__)

READ_ONLY = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True, openWorldHint=False)
RUNS = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=False, openWorldHint=False)
MAX_TRIALS = 2000
MAX_INDICATOR_WINDOW = 500
INDICATOR_HISTORY = 100_000  # bars read before the window at most (indicators warm up on them)


# -- models -------------------------------------------------------------------------------------------------------


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


class TrialOut(BaseModel):
    number: int
    params: dict[str, Any]
    values: list[float | None] | None
    metrics: dict[str, float | None]


class StudyOut(BaseModel):
    study_id: str = Field(description="workers join with `iqts optimize worker STUDY`")
    strategy: str
    symbol: str
    timeframe: str
    exchange: str
    objectives: list[str]
    n_trials: int
    complete: int
    infeasible: int
    pruned: int
    best_params: dict[str, Any]
    best_value: float | None
    best_values: list[float | None]
    best_run_id: str | None = Field(description="stored backtest of the best parameters over the whole range")
    best_metrics: dict[str, float | None]
    top_trials: list[TrialOut] = Field(description="the five best trials")
    pareto_front: list[TrialOut] = Field(description="multi-objective studies: trials no other beats on all")
    overfitting: OverfittingReport


class WalkForwardOut(BaseModel):
    study_id: str
    report: dict[str, Any] = Field(description="per window IS vs OOS Sharpe and return, degradation, DSR")


class RunRow(BaseModel):
    run_id: str
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


# -- helpers ------------------------------------------------------------------------------------------------------


def _ms(moment: datetime | None) -> int | None:
    """Epoch ms of a parsed time argument (naive means UTC, as everywhere: ``engine.data.timeparse``)."""
    return None if moment is None else datetime_to_ms(moment)


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _config(**options: Any) -> BacktestConfig:
    values = {k: v for k, v in options.items() if v is not None}
    try:
        return BacktestConfig.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        raise ValidationFailedError(
            f"parameter '{first['loc'][0]}' {first['msg'].removeprefix('Input ')} (got {first.get('input')!r})"
        ) from None


def _journal() -> Any:
    try:
        from knowledge.service import journal_entry
    except ImportError as error:
        log.info("research.journal_unavailable", error=str(error))
        return None
    return journal_entry


ProgressFn = Callable[[int, int, str], None]


def _thread_progress(report: Callable[..., Coroutine[Any, Any, None]]) -> ProgressFn:
    """A progress callback for worker threads that forwards to the client's progress notifications."""
    loop = asyncio.get_running_loop()

    def forward(done: int, total: int, message: str) -> None:
        asyncio.run_coroutine_threadsafe(report(done, message), loop)

    return forward


def _backtest_out(record: Any, ts: Any, equity: Any, trades: list[Any] | None = None) -> BacktestOut:
    from engine.research.runs import downsample

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
        metrics=MetricsOut.of(record.metrics),
        benchmark_return=MetricsOut.of(record.metrics).benchmark_return,
        equity_curve=[EquityPoint(ts=_from_ms(t), equity=v) for t, v in downsample(ts, equity, 200)],
        data_checksum=record.data_checksum,
        engine_version=record.engine_version,
        created_at=record.created_at,
        created_by=record.created_by,
        trades=None
        if trades is None
        else [
            TradeOut(
                entry_ts=_from_ms(t.entry_ts),
                exit_ts=None if t.is_open else _from_ms(t.exit_ts),
                side="long" if t.side > 0 else "short",
                entry_price=t.entry_price,
                exit_price=t.exit_price,
                pnl=t.pnl,
                return_pct=t.return_,
                exit_reason="open" if t.is_open else t.exit_reason,
            )
            for t in trades[-100:]
        ],
    )


def _trial_out(row: Any) -> TrialOut:
    return TrialOut(number=row.number, params=row.params, values=row.values, metrics=row.metrics)


def _study_spec(
    runtime: Runtime,
    strategy: str,
    symbol: str,
    *,
    objectives: list[str],
    timeframe: str | None,
    exchange: str | None,
    start: datetime | None,
    end: datetime | None,
    fixed_params: dict[str, Any] | None,
    config: BacktestConfig,
    folds: int,
    seed: int | None,
) -> tuple[Any, Any]:
    from engine.research.data import resolve_and_load
    from engine.research.studies import StudySpec, parse_objectives
    from engine.strategies import get_strategy

    spec = get_strategy(strategy)
    fixed = dict(fixed_params or {})
    unknown = [n for n in fixed if n not in spec.param_names]
    if unknown:
        raise ValidationFailedError(
            f"{strategy}: unknown parameter '{unknown[0]}' (known: {', '.join(spec.param_names) or 'none'})"
        )
    if fixed:
        fixed = {k: v for k, v in spec.validate_params(fixed).model_dump().items() if k in fixed}
    parsed = parse_objectives(objectives)
    selection, bars = resolve_and_load(
        runtime.db, symbol, timeframe=timeframe, exchange=exchange, start_ms=_ms(start), end_ms=_ms(end)
    )
    study_spec = StudySpec(
        strategy=strategy,
        selection=selection,
        objectives=parsed,
        config=config,
        fixed_params=fixed,
        folds=folds,
        seed=seed,
    )
    return study_spec, bars


# -- tools --------------------------------------------------------------------------------------------------------

SymbolArg = Annotated[str, Field(description="a stored market as people write it: BTC/USD, btc-usd, BTC, bitcoin")]
TimeframeArg = Annotated[
    str | None, Field(description="1m 5m 15m 1h 4h 1d 1w or words (hourly, daily); default: the finest stored")
]
ExchangeArg = Annotated[str | None, Field(description="default: the stored series of the symbol")]
StartArg = Annotated[UtcDateTime | None, Field(description="first bar, inclusive; ISO 8601 (no offset = UTC) or epoch")]
EndArg = Annotated[UtcDateTime | None, Field(description="end, exclusive; ISO 8601 (no offset = UTC) or epoch")]
FeeArg = Annotated[float | None, Field(ge=0, lt=0.1, description="fee per fill, fraction (default 0.001)")]
SlippageArg = Annotated[float | None, Field(ge=0, lt=0.1, description="adverse move per fill (default 0)")]
FillArg = Annotated[Literal["next_open", "close"] | None, Field(description="default next_open")]
DirectionArg = Annotated[
    Literal["long_only", "long_short", "short_only"] | None, Field(description="default long_only")
]


def register(server: FastMCP[Any]) -> None:
    @server.tool(annotations=READ_ONLY)
    async def list_strategies(ctx: Context[Any, Any, Any]) -> StrategyList:
        """The registered strategies with their parameters' bounds and defaults (the optimisation space)."""

        async def run(runtime: Runtime, _: User) -> StrategyList:
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

        return await tool_call("list_strategies", ctx, {}, run)

    @server.tool(annotations=RUNS)
    async def run_backtest(
        ctx: Context[Any, Any, Any],
        strategy: Annotated[str, Field(description="a name from list_strategies, e.g. sma_cross")],
        symbol: SymbolArg,
        params: Annotated[
            dict[str, float | int] | None, Field(description="strategy parameters, e.g. {fast: 10, slow: 50}")
        ] = None,
        timeframe: TimeframeArg = None,
        exchange: ExchangeArg = None,
        start: StartArg = None,
        end: EndArg = None,
        fee: FeeArg = None,
        slippage: SlippageArg = None,
        fill_at: FillArg = None,
        direction: DirectionArg = None,
        stop_loss: Annotated[float | None, Field(gt=0, lt=1, description="fraction against the entry")] = None,
        take_profit: Annotated[float | None, Field(gt=0, description="fraction in favour")] = None,
        trailing_stop: Annotated[float | None, Field(gt=0, lt=1, description="fraction off the best price")] = None,
    ) -> BacktestOut:
        """Backtest a strategy on a stored series (fills at the next bar's open, fee 0.1 % by default). The run is
        stored: its id, metrics, buy-and-hold benchmark and a downsampled equity curve come back."""
        args = {
            "strategy": strategy,
            "symbol": symbol,
            "params": params,
            "timeframe": timeframe,
            "exchange": exchange,
            "start": start,
            "end": end,
            "fee": fee,
            "fill_at": fill_at,
            "direction": direction,
        }

        async def run(runtime: Runtime, user: User) -> BacktestOut:
            from engine.research.backtests import backtest
            from engine.research.runs import load_arrays

            config = _config(
                fee=fee,
                slippage=slippage,
                fill_at=fill_at,
                direction=direction,
                stop_loss=stop_loss,
                take_profit=take_profit,
                trailing_stop=trailing_stop,
            )
            async with progress(ctx, 2) as report:
                await report(0, "loading bars and running")
                outcome = await asyncio.to_thread(
                    backtest,
                    runtime.db,
                    strategy,
                    symbol,
                    actor=f"mcp:{user.username}",
                    params=params,
                    config=config,
                    timeframe=timeframe,
                    exchange=exchange,
                    start_ms=_ms(start),
                    end_ms=_ms(end),
                    journal=_journal(),
                )
                await report(1, "stored and journaled")
                ts, equity = await asyncio.to_thread(load_arrays, runtime.db, outcome.record.id)
                await report(2, "done")
            return _backtest_out(outcome.record, ts, equity)

        return await tool_call("run_backtest", ctx, args, run, role=Role.TRADER)

    @server.tool(annotations=READ_ONLY)
    async def get_backtest(
        ctx: Context[Any, Any, Any],
        run_id: Annotated[str, Field(min_length=3, max_length=40, description="a run id, bt_...")],
    ) -> BacktestOut:
        """A stored backtest by id: parameters, data range and checksum, metrics, equity curve, last trades."""

        async def run(runtime: Runtime, _: User) -> BacktestOut:
            from engine.research.runs import get_run, load_arrays, load_trades

            def work() -> BacktestOut:
                record = get_run(runtime.db, run_id)
                ts, equity = load_arrays(runtime.db, record.id)
                return _backtest_out(record, ts, equity, load_trades(runtime.db, record.id))

            return await asyncio.to_thread(work)

        return await tool_call("get_backtest", ctx, {"run_id": run_id}, run)

    @server.tool(annotations=RUNS)
    async def optimize_strategy(
        ctx: Context[Any, Any, Any],
        strategy: Annotated[str, Field(description="a name from list_strategies")],
        symbol: SymbolArg,
        trials: Annotated[int, Field(ge=1, le=MAX_TRIALS, description="Optuna trials")] = 100,
        objectives: Annotated[
            list[str],
            Field(
                min_length=1,
                max_length=3,
                description="metrics, optionally metric:minimize; one: TPE, several: NSGA-II (e.g. sharpe, "
                "max_drawdown)",
            ),
        ] = ["sharpe"],  # noqa: B006  (pydantic copies defaults)
        fixed_params: Annotated[
            dict[str, float | int] | None, Field(description="parameters held fixed, not searched")
        ] = None,
        timeframe: TimeframeArg = None,
        exchange: ExchangeArg = None,
        start: StartArg = None,
        end: EndArg = None,
        fee: FeeArg = None,
        direction: DirectionArg = None,
        folds: Annotated[int, Field(ge=1, le=10, description=">1: mean over consecutive parts, with pruning")] = 1,
        seed: Annotated[int | None, Field(description="for a reproducible search")] = None,
    ) -> StudyOut:
        """Optimise a strategy's parameters with Optuna in a stored study (batched trials on the grid kernel): the
        best parameters and value, the top five trials, a stored backtest of the best, and overfitting guards
        (deflated Sharpe ratio given the number of trials)."""
        args = {"strategy": strategy, "symbol": symbol, "trials": trials, "objectives": objectives}

        async def run(runtime: Runtime, user: User) -> StudyOut:
            from engine.research.optimize import optimize

            config = _config(fee=fee, direction=direction)
            spec, bars = await asyncio.to_thread(
                _study_spec,
                runtime,
                strategy,
                symbol,
                objectives=objectives,
                timeframe=timeframe,
                exchange=exchange,
                start=start,
                end=end,
                fixed_params=fixed_params,
                config=config,
                folds=folds,
                seed=seed,
            )
            async with progress(ctx, trials) as report:
                result = await asyncio.to_thread(
                    optimize,
                    runtime.db,
                    spec,
                    trials,
                    f"mcp:{user.username}",
                    bars=bars,
                    progress=_thread_progress(report),
                    journal=_journal(),
                )
            return StudyOut(
                study_id=result.study_id,
                strategy=result.strategy,
                symbol=result.symbol,
                timeframe=result.timeframe,
                exchange=result.exchange,
                objectives=result.objectives,
                n_trials=result.n_trials,
                complete=result.counts.complete,
                infeasible=result.counts.infeasible,
                pruned=result.counts.pruned,
                best_params=result.best_params,
                best_value=result.best_value,
                best_values=result.best_values,
                best_run_id=result.best_run_id,
                best_metrics=result.best_metrics,
                top_trials=[_trial_out(t) for t in result.top_trials],
                pareto_front=[_trial_out(t) for t in result.pareto_front],
                overfitting=result.overfitting,
            )

        return await tool_call("optimize_strategy", ctx, args, run, role=Role.TRADER)

    @server.tool(annotations=RUNS)
    async def walk_forward(
        ctx: Context[Any, Any, Any],
        strategy: Annotated[str, Field(description="a name from list_strategies")],
        symbol: SymbolArg,
        windows: Annotated[int, Field(ge=1, le=20, description="out-of-sample test windows")] = 4,
        mode: Annotated[Literal["rolling", "anchored"], Field(description="training window")] = "rolling",
        train_ratio: Annotated[float, Field(gt=0, le=20, description="training bars per test bar")] = 3.0,
        trials_per_window: Annotated[int, Field(ge=1, le=500)] = 50,
        objective: Annotated[str, Field(description="the metric optimised in each training window")] = "sharpe",
        fixed_params: Annotated[dict[str, float | int] | None, Field(description="held fixed")] = None,
        timeframe: TimeframeArg = None,
        exchange: ExchangeArg = None,
        start: StartArg = None,
        end: EndArg = None,
        fee: FeeArg = None,
        direction: DirectionArg = None,
        seed: Annotated[int | None, Field(description="for a reproducible search")] = None,
    ) -> WalkForwardOut:
        """Walk-forward validation: optimise on each training window, trade the winner on the following unseen
        window; per window in-sample vs out-of-sample Sharpe and return, degradation, deflated Sharpe ratio, and
        the stitched out-of-sample result with warnings."""
        args = {"strategy": strategy, "symbol": symbol, "windows": windows, "mode": mode, "objective": objective}

        async def run(runtime: Runtime, user: User) -> WalkForwardOut:
            from engine.research.walkforward import WalkForwardConfig, stored_walk_forward

            config = _config(fee=fee, direction=direction)
            spec, bars = await asyncio.to_thread(
                _study_spec,
                runtime,
                strategy,
                symbol,
                objectives=[objective],
                timeframe=timeframe,
                exchange=exchange,
                start=start,
                end=end,
                fixed_params=fixed_params,
                config=config,
                folds=1,
                seed=seed,
            )
            wf = WalkForwardConfig(windows=windows, mode=mode, train_ratio=train_ratio, trials=trials_per_window)
            async with progress(ctx, windows * trials_per_window) as report:
                study_id, result = await asyncio.to_thread(
                    stored_walk_forward,
                    runtime.db,
                    spec,
                    wf,
                    f"mcp:{user.username}",
                    bars=bars,
                    progress=_thread_progress(report),
                )
            return WalkForwardOut(study_id=study_id, report=result.model_dump(mode="json"))

        return await tool_call("walk_forward", ctx, args, run, role=Role.TRADER)

    @server.tool(annotations=READ_ONLY)
    async def compare_runs(
        ctx: Context[Any, Any, Any],
        run_ids: Annotated[list[str], Field(min_length=2, max_length=10, description="2 to 10 run ids, bt_...")],
    ) -> CompareOut:
        """Stored backtests side by side: parameters, data, costs and metrics, and which run is best on each."""

        async def run(runtime: Runtime, _: User) -> CompareOut:
            from engine.research.runs import get_runs

            records = await asyncio.to_thread(get_runs, runtime.db, run_ids)
            rows = [
                RunRow(
                    run_id=r.id,
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
                for r in records
            ]
            best: dict[str, str] = {}
            for metric, better in (
                ("total_return", max),
                ("sharpe", max),
                ("sortino", max),
                ("calmar", max),
                ("max_drawdown", min),
                ("win_rate", max),
                ("profit_factor", max),
                ("excess_return", max),
            ):
                scored = [(getattr(row.metrics, metric), row.run_id) for row in rows]
                defined = [(v, i) for v, i in scored if v is not None]
                if defined:
                    best[metric] = better(defined)[1]
            return CompareOut(runs=rows, best=best, same_data=len({r.data_checksum for r in records}) == 1)

        return await tool_call("compare_runs", ctx, {"run_ids": run_ids}, run)

    @server.tool(annotations=READ_ONLY)
    async def compute_indicators(
        ctx: Context[Any, Any, Any],
        symbol: SymbolArg,
        indicators: Annotated[
            list[str],
            Field(
                min_length=1,
                max_length=12,
                description="sma, ema, rsi, bollinger, macd, donchian, atr, returns, volatility; parameters after "
                "a colon, e.g. sma:50, rsi:14, bollinger:20,2, macd:12,26,9",
            ),
        ],
        window: Annotated[
            int, Field(ge=1, le=MAX_INDICATOR_WINDOW, description="bars to return (1: the latest values only)")
        ] = 1,
        timeframe: TimeframeArg = None,
        exchange: ExchangeArg = None,
        end: EndArg = None,
    ) -> IndicatorsOut:
        """Technical indicators and factors over a stored series, computed over its history (vectorised): the
        latest values, or the last `window` bars (at most 500)."""
        args = {"symbol": symbol, "indicators": indicators, "window": window, "timeframe": timeframe}

        async def run(runtime: Runtime, _: User) -> IndicatorsOut:
            from engine.data.timeframes import timeframe_ms
            from engine.research import indicators as ind
            from engine.research.data import DataSelection, load_bars, select_series

            requests = [ind.parse_request(item) for item in indicators]

            def work() -> IndicatorsOut:
                info = select_series(runtime.db, symbol, timeframe, exchange)
                end_ms = _ms(end)
                start_ms = None
                if info.rows > INDICATOR_HISTORY:
                    last = end_ms if end_ms is not None else (info.last_ts or 0) + 1
                    start_ms = last - (INDICATOR_HISTORY + window) * timeframe_ms(info.timeframe)
                bars = load_bars(
                    runtime.db,
                    DataSelection(
                        exchange=info.exchange,
                        symbol=info.symbol,
                        timeframe=info.timeframe,
                        start_ms=start_ms,
                        end_ms=end_ms,
                    ),
                )
                columns: dict[str, Any] = {}
                for request in requests:
                    for output, values in ind.compute(bars, request).items():
                        key = request.label if output == request.name else f"{request.label}.{output}"
                        columns[key] = values
                n = len(bars)
                first = max(0, n - window)
                ms = bars.ts.astype("datetime64[ms]").astype("int64")
                rows = [
                    IndicatorRow(
                        ts=_from_ms(int(ms[i])),
                        close=float(bars.close[i]),
                        values={k: (float(v[i]) if math.isfinite(v[i]) else None) for k, v in columns.items()},
                    )
                    for i in range(first, n)
                ]
                return IndicatorsOut(
                    exchange=info.exchange,
                    symbol=info.symbol,
                    timeframe=info.timeframe,
                    indicators=[r.label for r in requests],
                    rows=rows,
                )

            return await asyncio.to_thread(work)

        return await tool_call("compute_indicators", ctx, args, run)
