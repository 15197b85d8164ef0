"""Research tools: strategies, stored backtests, Optuna studies, walk-forward validation, run comparison and
technical indicators over stored series.

Each tool parses its arguments, calls one function of :mod:`engine.research.service` (where validation and
spec-building live, shared with the CLI, the chat and REST) and returns its pydantic result (the published output
schema). Every backtest and study a tool runs is stored and journaled in the knowledge base before the tool
answers; ids (``bt_...``, ``st_...``) can be cited as evidence when proposing an order. Metrics are plain
fractions (0.1 = 10 %); a metric is null when undefined (no trades, zero deviation) or infinite.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any, Literal

from mcp.server.fastmcp import Context, FastMCP
from mcp.types import ToolAnnotations
from pydantic import Field

from approvals.users import Role, User
from engine.data.timeparse import UtcDateTime, datetime_to_ms
from engine.research import service
from engine.research.service import (
    MAX_INDICATOR_WINDOW,
    MAX_TRIALS,
    BacktestOut,
    CompareOut,
    IndicatorsOut,
    RunList,
    StrategyList,
    StudyOut,
    WalkForwardOut,
)
from engine.runtime import Runtime
from engine.telemetry import get_logger
from tools.context import progress, tool_call

log = get_logger(__name__)

READ_ONLY = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True, openWorldHint=False)
RUNS = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=False, openWorldHint=False)


def _ms(moment: datetime | None) -> int | None:
    """Epoch ms of a parsed time argument (naive means UTC, as everywhere: ``engine.data.timeparse``)."""
    return None if moment is None else datetime_to_ms(moment)


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
            return service.list_strategies()

        return await tool_call("list_strategies", ctx, {}, run)

    @server.tool(annotations=RUNS)
    async def run_backtest(
        ctx: Context[Any, Any, Any],
        strategy: Annotated[
            str, Field(description="a name from list_strategies, e.g. sma_cross (also as written: 'SMA cross', rsi)")
        ],
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
        args = {"strategy": strategy, "symbol": symbol, "params": params, "timeframe": timeframe, "fee": fee}
        request = service.BacktestRequest(
            **_options(locals(), "strategy", "symbol", "params", "timeframe", "exchange", "fee", "slippage"),
            **_options(locals(), "fill_at", "direction", "stop_loss", "take_profit", "trailing_stop"),
            start_ms=_ms(start),
            end_ms=_ms(end),
        )

        async def run(runtime: Runtime, user: User) -> BacktestOut:
            async with progress(ctx, 1) as report:
                out = await asyncio.to_thread(
                    service.backtest, runtime.db, request, f"mcp:{user.username}", journal=_journal()
                )
                await report(1, "stored and journaled")
            return out

        return await tool_call("run_backtest", ctx, args, run, role=Role.TRADER)

    @server.tool(annotations=READ_ONLY)
    async def get_backtest(
        ctx: Context[Any, Any, Any],
        run_id: Annotated[str, Field(min_length=3, max_length=40, description="a run id, bt_...")],
    ) -> BacktestOut:
        """A stored backtest by id: parameters, data range and checksum, metrics, equity curve, last trades (an
        unknown id's error names the newest stored runs; list_runs lists them)."""

        async def run(runtime: Runtime, _: User) -> BacktestOut:
            return await asyncio.to_thread(service.get_backtest, runtime.db, run_id)

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
        (deflated Sharpe ratio over every trial tried, probability of backtest overfitting)."""
        args = {"strategy": strategy, "symbol": symbol, "trials": trials, "objectives": objectives}
        request = service.OptimiseRequest(
            **_options(locals(), "strategy", "symbol", "trials", "objectives", "fixed_params", "timeframe"),
            **_options(locals(), "exchange", "fee", "direction", "folds", "seed"),
            start_ms=_ms(start),
            end_ms=_ms(end),
        )

        async def run(runtime: Runtime, user: User) -> StudyOut:
            async with progress(ctx, trials) as report:
                return await asyncio.to_thread(
                    service.optimise,
                    runtime.db,
                    request,
                    f"mcp:{user.username}",
                    progress=_thread_progress(report),
                    journal=_journal(),
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
        window; per window in-sample vs out-of-sample Sharpe and return, degradation, deflated Sharpe ratio,
        probability of backtest overfitting, and the stitched out-of-sample result with warnings."""
        args = {"strategy": strategy, "symbol": symbol, "windows": windows, "mode": mode, "objective": objective}
        request = service.WalkForwardRequest(
            **_options(locals(), "strategy", "symbol", "objective", "fixed_params", "timeframe", "exchange"),
            **_options(locals(), "fee", "direction", "seed"),
            start_ms=_ms(start),
            end_ms=_ms(end),
            options=service.WalkForwardOptions(
                windows=windows, mode=mode, train_ratio=train_ratio, trials=trials_per_window
            ),
        )

        async def run(runtime: Runtime, user: User) -> WalkForwardOut:
            async with progress(ctx, windows * trials_per_window) as report:
                return await asyncio.to_thread(
                    service.walk_forward,
                    runtime.db,
                    request,
                    f"mcp:{user.username}",
                    progress=_thread_progress(report),
                    journal=_journal(),
                )

        return await tool_call("walk_forward", ctx, args, run, role=Role.TRADER)

    @server.tool(annotations=READ_ONLY)
    async def compare_runs(
        ctx: Context[Any, Any, Any],
        run_ids: Annotated[
            list[str], Field(min_length=2, max_length=10, description="2 to 10 run ids, bt_... (from list_runs)")
        ],
    ) -> CompareOut:
        """Stored backtests side by side: parameters, data, costs and metrics, and which run is best on each."""

        async def run(runtime: Runtime, _: User) -> CompareOut:
            return await asyncio.to_thread(service.compare_runs, runtime.db, run_ids)

        return await tool_call("compare_runs", ctx, {"run_ids": run_ids}, run)

    @server.tool(annotations=READ_ONLY)
    async def list_runs(
        ctx: Context[Any, Any, Any],
        strategy: Annotated[
            str | None, Field(description="only runs of this strategy, as written (sma_cross, 'SMA cross', rsi)")
        ] = None,
        symbol: Annotated[
            str | None, Field(description="only runs on this market, as people write it: BTC/USD, btc/usdt, BTC")
        ] = None,
        limit: Annotated[int, Field(ge=1, le=100, description="runs to return, newest first")] = 20,
    ) -> RunList:
        """The stored backtest runs, newest first (at most 100), with their ids, strategy, parameters, series and
        headline metrics (return, Sharpe, drawdown, trades). Use it to find run ids ("my last run", "the best
        Sharpe of my recent runs", "my sma_cross runs on BTC") for get_backtest and compare_runs instead of
        guessing ids."""
        args = {"strategy": strategy, "symbol": symbol, "limit": limit}

        async def run(runtime: Runtime, _: User) -> RunList:
            return await asyncio.to_thread(service.list_runs, runtime.db, limit, strategy=strategy, symbol=symbol)

        return await tool_call("list_runs", ctx, args, run)

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
        request = service.IndicatorsRequest(
            **_options(locals(), "symbol", "indicators", "window", "timeframe", "exchange"), end_ms=_ms(end)
        )

        async def run(runtime: Runtime, _: User) -> IndicatorsOut:
            return await asyncio.to_thread(service.indicators, runtime.db, request)

        return await tool_call("compute_indicators", ctx, args, run)


def _options(arguments: dict[str, Any], *names: str) -> dict[str, Any]:
    """The named tool arguments, for a service request."""
    return {name: arguments[name] for name in names}
