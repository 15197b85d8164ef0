"""Compile the backtest kernels into numba's on-disk cache ahead of the first backtest.

A cold cache costs the first backtest of a machine ~35 s on 2 cores (every kernel is compiled); a warm one loads
in ~2 s. ``scripts/bootstrap.sh kernels`` (run by ``make run`` and ``make test``) calls ``python -m
engine.backtest.warm`` once, so neither a user's first answer nor a test waits for the compiler.
"""

from __future__ import annotations

import time

import numpy as np

from engine.backtest._numba_cache import ensure_numba_cache_dir

_BARS = 300


def warm_kernels() -> float:
    """Run one backtest, one serial and one parallel grid and one event-driven backtest on synthetic bars, so
    that every kernel signature is compiled and cached; return the seconds it took."""
    ensure_numba_cache_dir()
    from engine.backtest.bars import Bars
    from engine.backtest.config import KernelOptions
    from engine.backtest.events.engine import run_event_backtest
    from engine.backtest.vectorized import run_backtest, run_grid, run_targets

    started = time.perf_counter()
    rng = np.random.default_rng(7)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, _BARS)))
    ts = np.datetime64("2024-01-01T00:00", "ns") + np.arange(_BARS) * np.timedelta64(1, "h")
    bars = Bars(ts=ts, open=close, high=close * 1.01, low=close * 0.99, close=close, volume=np.ones(_BARS))
    run_backtest("sma_cross", bars)
    run_targets(bars, np.sign(np.sin(np.arange(_BARS) / 10.0)).astype(np.int8))
    grid = {"fast": [5, 10], "slow": [20, 30]}
    for parallel in (True, False):
        run_grid("sma_cross", bars, grid, options=KernelOptions(parallel=parallel))
    run_event_backtest("sma_cross", bars)
    return time.perf_counter() - started


def main() -> None:
    from engine.telemetry import get_logger

    seconds = warm_kernels()
    get_logger(__name__).info("backtest.kernels_warm", s=round(seconds, 2))


if __name__ == "__main__":
    main()
