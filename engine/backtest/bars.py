"""OHLCV bars as the backtests take them: validated, ascending, float64 arrays the kernels are compiled for."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from engine.data.frame import invalid_bar
from engine.data.timeframes import timeframe_ms
from engine.errors import ValidationFailedError
from engine.strategies.base import F64, kernel_array

TS = npt.NDArray[np.datetime64]

_COLUMNS = ("open", "high", "low", "close", "volume")
_MS_PER_S = 1000
_SECONDS_PER_DAY = 86_400


def timeframe_seconds(timeframe: str) -> int:
    """Seconds per bar of a supported timeframe (``engine.data.timeframes``: 1m, 5m, 15m, 1h, 4h, 1d, 1w)."""
    return timeframe_ms(timeframe) // _MS_PER_S


def bars_per_year(timeframe: str, days_per_year: float) -> float:
    """Bars in a year of ``days_per_year`` days (crypto trades every day: 365 -> 8,760 hourly bars)."""
    return days_per_year * _SECONDS_PER_DAY / timeframe_seconds(timeframe)


@dataclass(frozen=True, eq=False)
class Bars:
    """Bars in ascending time order. Arrays are C-contiguous float64 (do not mutate them in place).

    Construction validates once: equal lengths, at least one bar, finite prices and volumes, prices > 0,
    high >= low, volume >= 0 (``engine.data.frame.invalid_bar``; the error names the bar's index and time),
    strictly increasing timestamps. Backtests then trust the arrays.
    """

    ts: TS
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64
    timeframe: str = "1h"
    symbol: str = ""

    def __post_init__(self) -> None:
        for name in _COLUMNS:
            object.__setattr__(self, name, kernel_array(getattr(self, name)))
        ts = np.asarray(self.ts)
        if not np.issubdtype(ts.dtype, np.datetime64):
            ts = pd.to_datetime(ts, utc=True).tz_convert(None).to_numpy()
        object.__setattr__(self, "ts", ts.astype("datetime64[ns]"))
        timeframe_seconds(self.timeframe)
        n = len(self.close)
        if n == 0:
            raise ValidationFailedError(f"data{self._label()}: empty range (no bars)")
        for name in ("ts", *_COLUMNS):
            if len(getattr(self, name)) != n:
                raise ValidationFailedError(
                    f"data{self._label()}: column '{name}' has {len(getattr(self, name))} values, close has {n}"
                )
        for name in _COLUMNS:
            bad = ~np.isfinite(getattr(self, name))
            if bad.any():
                raise ValidationFailedError(
                    f"data{self._label()}: column '{name}' has {int(bad.sum())} missing or non-finite values "
                    f"(first at bar {int(np.argmax(bad))})"
                )
        problem = invalid_bar(
            self.ts.astype("datetime64[ms]").astype(np.int64), self.open, self.high, self.low, self.close, self.volume
        )
        if problem is not None:
            raise ValidationFailedError(f"data{self._label()}: {problem}")
        if n > 1:
            steps = np.diff(self.ts.view(np.int64))
            if (steps <= 0).any():
                raise ValidationFailedError(
                    f"data{self._label()}: timestamps must be strictly increasing "
                    f"(bar {int(np.argmax(steps <= 0)) + 1} is not after the one before)"
                )

    def _label(self) -> str:
        return f" {self.symbol}" if self.symbol else ""

    def __len__(self) -> int:
        return len(self.close)

    @classmethod
    def from_arrays(
        cls,
        open_: npt.ArrayLike,
        high: npt.ArrayLike,
        low: npt.ArrayLike,
        close: npt.ArrayLike,
        volume: npt.ArrayLike | None = None,
        ts: npt.ArrayLike | None = None,
        *,
        timeframe: str = "1h",
        symbol: str = "",
    ) -> Bars:
        """Bars from arrays; without ``ts`` the bars are stamped from the epoch at the timeframe's spacing,
        without ``volume`` it is zero."""
        n = len(np.asarray(close))
        if ts is None:
            ts = (np.arange(n, dtype=np.int64) * np.int64(timeframe_ms(timeframe))).astype("datetime64[ms]")
        vol = np.zeros(n) if volume is None else volume
        return cls(
            ts=np.asarray(ts),
            open=kernel_array(open_),
            high=kernel_array(high),
            low=kernel_array(low),
            close=kernel_array(close),
            volume=kernel_array(vol),
            timeframe=timeframe,
            symbol=symbol,
        )

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, *, timeframe: str = "1h", symbol: str = "") -> Bars:
        """Bars from a frame with open/high/low/close[/volume] columns (any case) and timestamps: a canonical
        bar frame's ``ts`` column (int64 ms UTC, ``engine.data.frame``), a DatetimeIndex, or a
        ``ts``/``timestamp``/``date`` column of datetimes."""
        columns = {str(c).lower(): c for c in frame.columns}
        missing = [c for c in _COLUMNS[:4] if c not in columns]
        if missing:
            raise ValidationFailedError(f"data: missing column(s) {', '.join(missing)}")
        ts: Any
        key = next((columns[c] for c in ("ts", "timestamp", "date", "datetime") if c in columns), None)
        if key is not None and pd.api.types.is_integer_dtype(frame[key]):
            ts = frame[key].to_numpy(np.int64).astype("datetime64[ms]").astype("datetime64[ns]")
        elif key is not None:
            index = pd.DatetimeIndex(pd.to_datetime(frame[key], utc=True))
            ts = index.tz_convert("UTC").tz_localize(None).to_numpy()
        elif isinstance(frame.index, pd.DatetimeIndex):
            index = frame.index
            ts = (index.tz_convert("UTC").tz_localize(None) if index.tz is not None else index).to_numpy()
        else:
            raise ValidationFailedError("data: no timestamps (a ts column or a DatetimeIndex)")
        volume = frame[columns["volume"]].to_numpy() if "volume" in columns else None
        return cls.from_arrays(
            frame[columns["open"]].to_numpy(),
            frame[columns["high"]].to_numpy(),
            frame[columns["low"]].to_numpy(),
            frame[columns["close"]].to_numpy(),
            volume=volume,
            ts=ts,
            timeframe=timeframe,
            symbol=symbol,
        )

    def slice(self, start: int | None = None, stop: int | None = None) -> Bars:
        """Bars ``start..stop-1`` (copies, so the result owns C-contiguous arrays)."""
        part = slice(start, stop)
        return Bars(
            ts=self.ts[part].copy(),
            open=self.open[part].copy(),
            high=self.high[part].copy(),
            low=self.low[part].copy(),
            close=self.close[part].copy(),
            volume=self.volume[part].copy(),
            timeframe=self.timeframe,
            symbol=self.symbol,
        )

    def to_frame(self) -> pd.DataFrame:
        """The bars as a canonical bar frame (``engine.data.frame``: ts int64 ms UTC, then the values)."""
        ms = self.ts.astype("datetime64[ms]").astype(np.int64)
        return pd.DataFrame({"ts": ms, **{c: getattr(self, c) for c in _COLUMNS}})

    def checksum(self) -> str:
        """SHA-256 of the timestamps and values (for run records: the exact data a result came from)."""
        digest = hashlib.sha256()
        for name in ("ts", *_COLUMNS):
            digest.update(np.ascontiguousarray(getattr(self, name)).tobytes())
        return digest.hexdigest()

    @property
    def buy_and_hold_return(self) -> float:
        """Last close over first close, minus one: the benchmark every run is compared with."""
        return float(self.close[-1] / self.close[0] - 1.0)
