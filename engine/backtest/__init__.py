"""Backtests: a vectorised path (fused numba kernels, grids) and an event-driven path (orders, latency,
partial fills, funding), one metrics module for both, and a bridge to vectorbt for analytics.

>>> bars = Bars.from_frame(frame, timeframe="1h", symbol="BTC/USDT")
>>> result = run_backtest("sma_cross", bars, {"fast": 10, "slow": 50}, BacktestConfig(fee=0.001))
>>> grid = run_grid("sma_cross", bars, {"fast": [5, 10, 20], "slow": [50, 100, 200]})
>>> realistic = run_event_backtest("sma_cross", bars, {"fast": 10, "slow": 50}, EventBacktestConfig(latency_bars=1))

Names are imported lazily: ``import engine.backtest`` stays cheap, numba loads with the first kernel module
used and vectorbt only inside :mod:`engine.backtest.vbt_bridge`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.backtest.bars import Bars, bars_per_year, timeframe_seconds
    from engine.backtest.config import BacktestConfig, KernelOptions, MetricsConfig
    from engine.backtest.events import (
        EventBacktestConfig,
        EventStrategy,
        MarketState,
        OrderRequest,
        OrderType,
        PortfolioState,
        PreTradeCheck,
        RiskVerdict,
        TargetStrategy,
        run_event_backtest,
    )
    from engine.backtest.metrics import METRIC_NAMES, Metrics, compute_metrics
    from engine.backtest.result import FILL_DTYPE, REASONS, TRADE_DTYPE, BacktestResult, BacktestSummary
    from engine.backtest.vbt_bridge import to_vectorbt, vectorbt_from_signals
    from engine.backtest.vectorized import GridResult, expand_grid, run_backtest, run_grid, run_targets

_EXPORTS = {
    "Bars": "engine.backtest.bars",
    "bars_per_year": "engine.backtest.bars",
    "timeframe_seconds": "engine.backtest.bars",
    "BacktestConfig": "engine.backtest.config",
    "KernelOptions": "engine.backtest.config",
    "MetricsConfig": "engine.backtest.config",
    "EventBacktestConfig": "engine.backtest.events",
    "EventStrategy": "engine.backtest.events",
    "MarketState": "engine.backtest.events",
    "OrderRequest": "engine.backtest.events",
    "OrderType": "engine.backtest.events",
    "PortfolioState": "engine.backtest.events",
    "PreTradeCheck": "engine.backtest.events",
    "RiskVerdict": "engine.backtest.events",
    "TargetStrategy": "engine.backtest.events",
    "run_event_backtest": "engine.backtest.events",
    "METRIC_NAMES": "engine.backtest.metrics",
    "Metrics": "engine.backtest.metrics",
    "compute_metrics": "engine.backtest.metrics",
    "FILL_DTYPE": "engine.backtest.result",
    "REASONS": "engine.backtest.result",
    "TRADE_DTYPE": "engine.backtest.result",
    "BacktestResult": "engine.backtest.result",
    "BacktestSummary": "engine.backtest.result",
    "to_vectorbt": "engine.backtest.vbt_bridge",
    "vectorbt_from_signals": "engine.backtest.vbt_bridge",
    "GridResult": "engine.backtest.vectorized",
    "expand_grid": "engine.backtest.vectorized",
    "run_backtest": "engine.backtest.vectorized",
    "run_grid": "engine.backtest.vectorized",
    "run_targets": "engine.backtest.vectorized",
}

__all__ = [
    "FILL_DTYPE",
    "METRIC_NAMES",
    "REASONS",
    "TRADE_DTYPE",
    "BacktestConfig",
    "BacktestResult",
    "BacktestSummary",
    "Bars",
    "EventBacktestConfig",
    "EventStrategy",
    "GridResult",
    "KernelOptions",
    "MarketState",
    "Metrics",
    "MetricsConfig",
    "OrderRequest",
    "OrderType",
    "PortfolioState",
    "PreTradeCheck",
    "RiskVerdict",
    "TargetStrategy",
    "bars_per_year",
    "compute_metrics",
    "expand_grid",
    "run_backtest",
    "run_event_backtest",
    "run_grid",
    "run_targets",
    "timeframe_seconds",
    "to_vectorbt",
    "vectorbt_from_signals",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine.backtest' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
