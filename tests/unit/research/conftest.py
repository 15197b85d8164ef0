"""Fixtures of the research-engine tests: real BTC/USD hourly bars (Coinbase, 2017-07 .. 2019-10), the sample
IQTS ships (``engine.data.sample``). Heavy third-party engines (vectorbt, backtesting.py) are imported once per
session, only by the tests that cross-check against them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from engine.backtest.bars import Bars
from engine.data.sample import load_coinbase_csv


@pytest.fixture(scope="session")
def btc_1h() -> Bars:
    series = load_coinbase_csv("Coinbase_BTCUSD_1h.csv", "1h")
    return Bars.from_frame(series.frame, timeframe=series.timeframe, symbol=series.symbol)


@pytest.fixture(scope="session")
def btc_2k(btc_1h: Bars) -> Bars:
    """The first 2,000 real bars: enough for every strategy to trade, cheap for property tests."""
    return btc_1h.slice(0, 2000)


@pytest.fixture(scope="session")
def vbt() -> Any:
    import vectorbt

    return vectorbt


@pytest.fixture(scope="session")
def backtesting_lib() -> Any:
    import backtesting
    import backtesting.lib

    return backtesting


def bars_from_closes(closes: Any, *, spread: float = 0.002, volume: float = 100.0) -> Bars:
    """Bars around a close path: open = previous close, high/low a fixed fraction beyond them."""
    closes = np.asarray(closes, dtype=np.float64)
    opens = np.r_[closes[0], closes[:-1]]
    return Bars.from_arrays(
        opens,
        np.maximum(opens, closes) * (1 + spread),
        np.minimum(opens, closes) * (1 - spread),
        closes,
        volume=np.full(len(closes), volume),
        timeframe="1h",
    )


@pytest.fixture(scope="session")
def make_bars() -> Any:
    """``make_bars(closes, spread=0.002, volume=100.0) -> Bars``."""
    return bars_from_closes


def metric_values(metrics: Any) -> np.ndarray:
    """A Metrics model as a float vector (NaN where undefined), for exact comparisons NaN == NaN."""
    return np.array([float(v) for v in metrics.model_dump().values()])


@pytest.fixture(scope="session")
def same_metrics() -> Any:
    """``same_metrics(a, b)``: assert two Metrics are identical to the bit (undefined ones both NaN)."""

    def check(a: Any, b: Any) -> None:
        np.testing.assert_array_equal(metric_values(a), metric_values(b))

    return check
