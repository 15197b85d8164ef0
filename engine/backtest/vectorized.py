"""The vectorised path: one run (:func:`run_backtest`, :func:`run_targets`) or a parameter grid in one pass
(:func:`run_grid`), all through the fused kernels of :mod:`engine.backtest.kernels`."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import ValidationError

from engine.backtest import kernels
from engine.backtest._jit import one_item_per_task
from engine.backtest.bars import Bars, bars_per_year
from engine.backtest.config import (
    DIRECTION_BOUNDS,
    STOP_FIELDS,
    BacktestConfig,
    KernelOptions,
    MetricsConfig,
)
from engine.backtest.metrics import METRIC_NAMES, Metrics, per_bar_rate
from engine.backtest.result import BacktestResult
from engine.errors import ValidationFailedError
from engine.strategies import EXTERNAL_TARGETS_KERNEL, StrategyParams, StrategySpec, get_strategy
from engine.strategies.base import F64, I8
from engine.telemetry import get_logger

log = get_logger(__name__)

_NO_TARGETS = np.zeros(0, dtype=np.int8)
StrategyLike = str | StrategySpec
ParamsLike = Mapping[str, Any] | StrategyParams | None
GridLike = Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]]


def resolve_strategy(strategy: StrategyLike) -> StrategySpec:
    """A spec from a name (NotFoundError lists the names) or the spec itself."""
    return strategy if isinstance(strategy, StrategySpec) else get_strategy(strategy)


def resolve_bars_per_year(bars: Bars, metrics_config: MetricsConfig) -> float:
    if metrics_config.bars_per_year is not None:
        return metrics_config.bars_per_year
    return bars_per_year(bars.timeframe, metrics_config.days_per_year)


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else float(value)


class _Market(NamedTuple):
    """Kernel arguments after the stops, in kernel order."""

    initial_cash: float
    fee: float
    slippage: float
    fill_close: bool
    low_dir: int
    high_dir: int
    lot: float
    rf_bar: float
    bars_per_year: float
    benchmark_return: float


def _market_args(bars: Bars, config: BacktestConfig, metrics_config: MetricsConfig) -> _Market:
    low_dir, high_dir = DIRECTION_BOUNDS[config.direction]
    bpy = resolve_bars_per_year(bars, metrics_config)
    return _Market(
        initial_cash=float(config.initial_cash),
        fee=float(config.fee),
        slippage=float(config.slippage),
        fill_close=config.fill_at == "close",
        low_dir=int(low_dir),
        high_dir=int(high_dir),
        lot=float(config.lot_size or 0.0),
        rf_bar=per_bar_rate(metrics_config.risk_free_rate, bpy),
        bars_per_year=float(bpy),
        benchmark_return=bars.buy_and_hold_return,
    )


def _check_targets(bars: Bars, targets: npt.ArrayLike) -> I8:
    array = np.asarray(targets)
    if array.shape != (len(bars),):
        raise ValidationFailedError(f"targets: expected {len(bars)} values (one per bar), got shape {array.shape}")
    if not np.isin(array, (-1, 0, 1)).all():
        raise ValidationFailedError("targets: values must be -1, 0 or +1")
    return np.ascontiguousarray(array, dtype=np.int8)


def _simulate(
    bars: Bars,
    kernel_id: int,
    external: I8,
    p: F64,
    config: BacktestConfig,
    metrics_config: MetricsConfig,
    options: KernelOptions,
) -> tuple[Metrics, F64, I8, npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    n = len(bars)
    equity = np.empty(n, dtype=np.float64)
    position = np.empty(n, dtype=np.int8)
    market = _market_args(bars, config, metrics_config)
    values, trades, fills = kernels.run_one(
        kernel_id,
        bars.open,
        bars.high,
        bars.low,
        bars.close,
        bars.volume,
        external,
        p,
        _nan_if_none(config.stop_loss),
        _nan_if_none(config.take_profit),
        _nan_if_none(config.trailing_stop),
        *market,
        int(options.chunk_bars),
        True,
        equity,
        position,
    )
    metrics = Metrics.from_vector(values, market.bars_per_year)
    return metrics, equity, position, trades, fills


def run_backtest(
    strategy: StrategyLike,
    bars: Bars,
    params: ParamsLike = None,
    config: BacktestConfig | None = None,
    *,
    metrics_config: MetricsConfig | None = None,
    options: KernelOptions | None = None,
) -> BacktestResult:
    """Backtest one strategy with one parameter set over ``bars``.

    Raises NotFoundError for an unknown strategy and ValidationFailedError naming the parameter for bad
    parameters. Built-in strategies run fused (targets computed on the fly); custom ones (kernel 0) compute
    their targets first and are then simulated the same way.
    """
    spec = resolve_strategy(strategy)
    model = spec.validate_params(params)
    config = config or BacktestConfig()
    p = spec.param_vector(model)
    external = _NO_TARGETS
    if spec.kernel_id == EXTERNAL_TARGETS_KERNEL:
        external = _check_targets(bars, spec.targets_fn(bars.open, bars.high, bars.low, bars.close, bars.volume, p))
    metrics, equity, position, trades, fills = _simulate(
        bars, spec.kernel_id, external, p, config, metrics_config or MetricsConfig(), options or KernelOptions()
    )
    return BacktestResult(
        strategy=spec.name,
        params=model.model_dump(),
        config=config,
        metrics=metrics,
        ts=bars.ts,
        equity=equity,
        positions=position,
        trade_rows=trades,
        fill_rows=fills,
        symbol=bars.symbol,
        timeframe=bars.timeframe,
    )


def run_targets(
    bars: Bars,
    targets: npt.ArrayLike,
    config: BacktestConfig | None = None,
    *,
    metrics_config: MetricsConfig | None = None,
    options: KernelOptions | None = None,
    name: str = "targets",
) -> BacktestResult:
    """Backtest a given target array (values -1/0/+1, one per bar; target ``i`` is decided at bar ``i``'s
    close) with the same fills, costs, stops and metrics as :func:`run_backtest`."""
    config = config or BacktestConfig()
    external = _check_targets(bars, targets)
    metrics, equity, position, trades, fills = _simulate(
        bars,
        EXTERNAL_TARGETS_KERNEL,
        external,
        np.zeros(1),
        config,
        metrics_config or MetricsConfig(),
        options or KernelOptions(),
    )
    return BacktestResult(
        strategy=name,
        params={},
        config=config,
        metrics=metrics,
        ts=bars.ts,
        equity=equity,
        positions=position,
        trade_rows=trades,
        fill_rows=fills,
        symbol=bars.symbol,
        timeframe=bars.timeframe,
    )


@dataclass(frozen=True, eq=False)
class GridResult:
    """Metrics of every parameter combination of a grid run, one row per combination.

    ``params[k]`` holds combination ``k``'s strategy parameters plus any stop overrides; ``values[k]`` its
    metric vector (columns :data:`METRIC_NAMES`).
    """

    strategy: str
    params: list[dict[str, Any]]
    values: npt.NDArray[np.float64] = field(repr=False)
    config: BacktestConfig
    bars_per_year: float
    skipped: list[tuple[dict[str, Any], str]] = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return len(self.params)

    def metric(self, name: str) -> F64:
        """One metric across combinations."""
        try:
            return self.values[:, METRIC_NAMES.index(name)]
        except ValueError:
            raise ValidationFailedError(f"unknown metric '{name}' (known: {', '.join(METRIC_NAMES)})") from None

    def metrics_at(self, k: int) -> Metrics:
        return Metrics.from_vector(self.values[k], self.bars_per_year)

    def best(self, metric: str = "sharpe", *, maximize: bool = True) -> int:
        """Index of the best combination by ``metric`` (NaN never wins)."""
        column = self.metric(metric)
        if np.isnan(column).all():
            raise ValidationFailedError(f"metric '{metric}' is undefined for every combination")
        return int(np.nanargmax(column) if maximize else np.nanargmin(column))

    def to_frame(self) -> pd.DataFrame:
        return pd.concat([pd.DataFrame(self.params), pd.DataFrame(self.values, columns=list(METRIC_NAMES))], axis=1)


def expand_grid(grid: GridLike) -> list[dict[str, Any]]:
    """Combinations of a grid: a mapping of name -> values (cartesian product) or a sequence of mappings."""
    if isinstance(grid, Mapping):
        names = list(grid)
        for name in names:
            values = grid[name]
            if isinstance(values, str | bytes) or not isinstance(values, Sequence | np.ndarray):
                raise ValidationFailedError(f"grid: parameter '{name}' needs a list of values")
            if len(values) == 0:
                raise ValidationFailedError(f"grid: parameter '{name}' has no values")
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(grid[k] for k in names))]
    return [dict(item) for item in grid]


def run_grid(
    strategy: StrategyLike,
    bars: Bars,
    grid: GridLike,
    config: BacktestConfig | None = None,
    *,
    metrics_config: MetricsConfig | None = None,
    options: KernelOptions | None = None,
    skip_invalid: bool = False,
) -> GridResult:
    """Evaluate many parameter sets in one parallel pass, without a matrix per combination.

    ``grid`` keys are the strategy's parameters and, optionally, ``stop_loss``/``take_profit``/
    ``trailing_stop`` (which then override ``config`` per combination). An invalid combination raises
    ValidationFailedError naming it and the parameter, or with ``skip_invalid`` is left out (listed in
    ``GridResult.skipped``). Every combination's metrics equal those of :func:`run_backtest` with it.
    """
    spec = resolve_strategy(strategy)
    if spec.kernel_id == EXTERNAL_TARGETS_KERNEL:
        raise ValidationFailedError(f"{spec.name}: grid mode needs a built-in (numba) strategy kernel")
    config = config or BacktestConfig()
    metrics_config = metrics_config or MetricsConfig()
    options = options or KernelOptions()
    combos = expand_grid(grid)
    if not combos:
        raise ValidationFailedError("grid: no parameter combinations")
    rows: list[F64] = []
    stop_rows: list[list[float]] = []
    kept: list[dict[str, Any]] = []
    skipped: list[tuple[dict[str, Any], str]] = []
    base_stops = {name: getattr(config, name) for name in STOP_FIELDS}
    for k, combo in enumerate(combos):
        stop_values = {name: combo[name] for name in STOP_FIELDS if name in combo}
        strategy_values = {name: value for name, value in combo.items() if name not in STOP_FIELDS}
        try:
            model = spec.validate_params(strategy_values)
            stops = dict(base_stops)
            if stop_values:
                try:
                    checked = BacktestConfig.model_validate({**config.model_dump(), **stop_values})
                except ValidationError as error:
                    first = error.errors()[0]
                    raise ValidationFailedError(
                        f"parameter '{first['loc'][0]}' {first['msg'].removeprefix('Input ')} "
                        f"(got {first.get('input')!r})"
                    ) from None
                stops.update({name: getattr(checked, name) for name in stop_values})
        except ValidationFailedError as error:
            if not skip_invalid:
                raise ValidationFailedError(f"grid combination {k} {combo}: {error}") from None
            skipped.append((combo, str(error)))
            continue
        rows.append(spec.param_vector(model))
        stop_rows.append([_nan_if_none(stops[name]) for name in STOP_FIELDS])
        kept.append({**model.model_dump(), **stop_values})
    if not kept:
        raise ValidationFailedError(f"grid: all {len(combos)} combinations are invalid (first: {skipped[0][1]})")
    params = np.ascontiguousarray(np.vstack(rows), dtype=np.float64)
    stops_matrix = np.ascontiguousarray(np.array(stop_rows, dtype=np.float64).reshape(len(kept), 3))
    market = _market_args(bars, config, metrics_config)
    kernel = kernels.grid_kernel if options.parallel else kernels.grid_kernel_serial
    with one_item_per_task():
        values = kernel(
            spec.kernel_id,
            bars.open,
            bars.high,
            bars.low,
            bars.close,
            bars.volume,
            _NO_TARGETS,
            params,
            stops_matrix,
            *market,
            int(options.chunk_bars),
        )
    if skipped:
        log.info("grid.skipped_invalid", strategy=spec.name, skipped=len(skipped), kept=len(kept))
    return GridResult(
        strategy=spec.name,
        params=kept,
        values=values,
        config=config,
        bars_per_year=market.bars_per_year,
        skipped=skipped,
    )
