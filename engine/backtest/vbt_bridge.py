"""vectorbt where it is strong: portfolio analytics and plots of a chosen run, and an independent cross-check.

- :func:`to_vectorbt` rebuilds a run as a ``vbt.Portfolio`` from its own fills (order records): vectorbt's
  stats, drawdown and trade analyses and plots then describe exactly our run.
- :func:`vectorbt_from_signals` simulates a target array with vectorbt's own engine
  (``Portfolio.from_signals``) under our conventions, so that tests can compare two independent simulations.

vectorbt takes about 8 s to import and compiles its kernels on first use: it is imported here, lazily, and
nowhere else in the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from engine.backtest import kernels
from engine.backtest.bars import Bars, timeframe_seconds
from engine.backtest.config import BacktestConfig
from engine.backtest.result import BacktestResult
from engine.errors import ValidationFailedError

if TYPE_CHECKING:
    import vectorbt as vbt


def _vbt() -> Any:
    import vectorbt

    return vectorbt


def _freq(bars: Bars) -> pd.Timedelta:
    return pd.Timedelta(seconds=timeframe_seconds(bars.timeframe))


def to_vectorbt(result: BacktestResult, bars: Bars) -> vbt.Portfolio:
    """The run as a vectorbt Portfolio built from its fills (same equity, trades and fees as ours)."""
    vbt = _vbt()
    from vectorbt.portfolio.enums import log_dt, order_dt

    fills = result.fill_rows
    records = np.zeros(len(fills), dtype=order_dt)
    records["id"] = np.arange(len(fills))
    records["col"] = 0
    records["idx"] = fills[:, kernels.F_IDX].astype(np.int64)
    records["size"] = np.abs(fills[:, kernels.F_QTY])
    records["price"] = fills[:, kernels.F_PX]
    records["fees"] = fills[:, kernels.F_FEE]
    records["side"] = np.where(fills[:, kernels.F_QTY] > 0, 0, 1)  # OrderSide.Buy / Sell
    index = pd.DatetimeIndex(bars.ts, name="ts")
    wrapper = vbt.base.array_wrapper.ArrayWrapper(index=index, columns=[result.strategy], ndim=1, freq=_freq(bars))
    close = pd.Series(bars.close, index=index, name=result.strategy)
    return vbt.Portfolio(
        wrapper,
        close,
        records,
        np.zeros(0, dtype=log_dt),
        init_cash=float(result.config.initial_cash),
        cash_sharing=False,
    )


def vectorbt_from_signals(bars: Bars, targets: npt.ArrayLike, config: BacktestConfig) -> vbt.Portfolio:
    """Simulate ``targets`` (one of -1/0/+1 per bar, decided at the close) with vectorbt's ``from_signals``.

    Conventions mapped: ``next_open`` shifts the signals one bar and fills at the open, ``close`` fills at
    the close; all-in sizing (``size=inf``), ``fee`` and ``slippage`` as fractions, ``lot_size`` as vectorbt's
    size granularity; a long/short target change reverses the position in one step. Stops are not mapped
    (vectorbt's stop semantics differ from ours): a config with stops raises ValidationFailedError.
    """
    if config.stop_loss or config.take_profit or config.trailing_stop:
        raise ValidationFailedError("vectorbt_from_signals: stops are not mapped to vectorbt's semantics")
    vbt = _vbt()
    index = pd.DatetimeIndex(bars.ts, name="ts")
    t = pd.Series(np.asarray(targets, dtype=np.int8), index=index)
    low, high = {"long_only": (0, 1), "long_short": (-1, 1), "short_only": (-1, 0)}[config.direction]
    t = t.clip(low, high)
    long_entry, short_entry, flat = t == 1, t == -1, t == 0
    price = pd.Series(bars.close, index=index)
    if config.fill_at == "next_open":
        long_entry, short_entry, flat = (s.shift(1, fill_value=False) for s in (long_entry, short_entry, flat))
        price = pd.Series(bars.open, index=index)
    kwargs: dict[str, Any] = {}
    if config.lot_size is not None:
        kwargs["size_granularity"] = config.lot_size
    return vbt.Portfolio.from_signals(
        pd.Series(bars.close, index=index),
        entries=long_entry,
        exits=flat | short_entry,
        short_entries=short_entry,
        short_exits=flat | long_entry,
        price=price,
        size=np.inf,
        fees=config.fee,
        slippage=config.slippage,
        init_cash=float(config.initial_cash),
        upon_opposite_entry="reverse",
        freq=_freq(bars),
        **kwargs,
    )
