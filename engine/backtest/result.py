"""What a backtest returns: equity curve, positions, trades and fills as arrays, metrics as a pydantic model."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict

from engine.backtest import kernels
from engine.backtest.bars import TS
from engine.backtest.config import BacktestConfig
from engine.backtest.metrics import Metrics
from engine.strategies.base import F64, I8

F64_2D = npt.NDArray[np.float64]
REASONS: tuple[str, ...] = kernels.REASONS
"""Why a trade was closed or a fill happened: ``exit_reason``/``reason`` index this tuple."""
TRADE_DTYPE = np.dtype(
    [
        ("entry_index", np.int64),
        ("exit_index", np.int64),
        ("entry_ts", "datetime64[ns]"),
        ("exit_ts", "datetime64[ns]"),
        ("side", np.int8),
        ("qty", np.float64),
        ("entry_price", np.float64),
        ("exit_price", np.float64),
        ("pnl", np.float64),
        ("return", np.float64),
        ("fees", np.float64),
        ("exit_reason", np.int8),
        ("is_open", np.bool_),
    ]
)
"""One row per trade (flat to flat). Prices are fill prices (after slippage); ``pnl`` is after both fees;
``return`` is pnl over the entry's cost (notional plus entry fee); ``exit_reason`` indexes :data:`REASONS`.
A position still open at the end is the last row, ``is_open`` true, marked at the last close without an exit
fee."""

FILL_DTYPE = np.dtype(
    [
        ("index", np.int64),
        ("ts", "datetime64[ns]"),
        ("qty", np.float64),
        ("price", np.float64),
        ("fee", np.float64),
        ("reason", np.int8),
    ]
)
"""One row per fill: signed quantity (buy > 0), fill price after slippage, fee paid."""


class BacktestSummary(BaseModel):
    """A run without its arrays: what tools return and what a run record stores beside the arrays."""

    model_config = ConfigDict(frozen=True)

    strategy: str
    params: dict[str, Any]
    config: BacktestConfig
    metrics: Metrics
    symbol: str
    timeframe: str
    start: datetime
    end: datetime
    n_bars: int
    n_trades: int


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """One backtest run, from either path.

    Trades and fills come as kernel rows (float matrices, columns ``kernels.T_*`` / ``kernels.F_*``) and are
    turned into structured arrays (:data:`TRADE_DTYPE`, :data:`FILL_DTYPE`) on first access.
    """

    strategy: str
    params: dict[str, Any]
    config: BacktestConfig
    metrics: Metrics
    ts: TS = field(repr=False)
    equity: F64 = field(repr=False)
    positions: I8 = field(repr=False)
    trade_rows: F64_2D = field(repr=False)
    fill_rows: F64_2D = field(repr=False)
    symbol: str = ""
    timeframe: str = ""
    extras: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def final_equity(self) -> float:
        return float(self.equity[-1])

    @cached_property
    def trades(self) -> npt.NDArray[np.void]:
        """Every trade, closed ones first in exit order, a still-open one last (:data:`TRADE_DTYPE`)."""
        return trade_records(self.trade_rows, self.ts)

    @cached_property
    def fills(self) -> npt.NDArray[np.void]:
        """Every fill in time order (:data:`FILL_DTYPE`)."""
        return fill_records(self.fill_rows, self.ts)

    @property
    def closed_trades(self) -> npt.NDArray[np.void]:
        trades = self.trades
        closed: npt.NDArray[np.void] = trades[~trades["is_open"]]
        return closed

    def trades_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.trades)
        frame["exit_reason"] = np.asarray(REASONS, dtype=object)[frame["exit_reason"].to_numpy(np.int64)]
        return frame

    def fills_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.fills)
        frame["reason"] = np.asarray(REASONS, dtype=object)[frame["reason"].to_numpy(np.int64)]
        return frame

    def equity_series(self) -> pd.Series:
        return pd.Series(self.equity, index=pd.DatetimeIndex(self.ts, name="ts"), name="equity")

    def summary(self) -> BacktestSummary:
        return BacktestSummary(
            strategy=self.strategy,
            params=self.params,
            config=self.config,
            metrics=self.metrics,
            symbol=self.symbol,
            timeframe=self.timeframe,
            start=pd.Timestamp(self.ts[0]).to_pydatetime(),
            end=pd.Timestamp(self.ts[-1]).to_pydatetime(),
            n_bars=len(self.equity),
            n_trades=self.metrics.n_trades,
        )


def trade_records(rows: F64_2D, ts: TS) -> npt.NDArray[np.void]:
    """Kernel trade rows as a :data:`TRADE_DTYPE` array."""
    out = np.zeros(len(rows), dtype=TRADE_DTYPE)
    if len(rows) == 0:
        return out
    entry = rows[:, kernels.T_ENTRY_IDX].astype(np.int64)
    exit_ = rows[:, kernels.T_EXIT_IDX].astype(np.int64)
    out["entry_index"] = entry
    out["exit_index"] = exit_
    out["entry_ts"] = ts[entry]
    out["exit_ts"] = ts[exit_]
    out["side"] = rows[:, kernels.T_SIDE]
    out["qty"] = rows[:, kernels.T_QTY]
    out["entry_price"] = rows[:, kernels.T_ENTRY_PX]
    out["exit_price"] = rows[:, kernels.T_EXIT_PX]
    out["pnl"] = rows[:, kernels.T_PNL]
    out["return"] = rows[:, kernels.T_RETURN]
    out["fees"] = rows[:, kernels.T_FEES]
    out["exit_reason"] = rows[:, kernels.T_REASON]
    out["is_open"] = rows[:, kernels.T_OPEN] != 0.0
    return out


def fill_records(rows: F64_2D, ts: TS) -> npt.NDArray[np.void]:
    """Kernel fill rows as a :data:`FILL_DTYPE` array."""
    out = np.zeros(len(rows), dtype=FILL_DTYPE)
    if len(rows) == 0:
        return out
    index = rows[:, kernels.F_IDX].astype(np.int64)
    out["index"] = index
    out["ts"] = ts[index]
    out["qty"] = rows[:, kernels.F_QTY]
    out["price"] = rows[:, kernels.F_PX]
    out["fee"] = rows[:, kernels.F_FEE]
    out["reason"] = rows[:, kernels.F_REASON]
    return out
