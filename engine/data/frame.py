"""The canonical in-memory bar frame, used everywhere bars travel in bulk.

A bar frame is a pandas DataFrame with exactly the columns :data:`BAR_COLUMNS`, in that order:

=========  =========  ==========================================================
column     dtype      meaning
=========  =========  ==========================================================
ts         int64      bucket open time, milliseconds since the epoch, UTC
open       float64    first trade price of the bucket
high       float64    highest trade price
low        float64    lowest trade price
close      float64    last trade price
volume     float64    traded amount in the base currency
=========  =========  ==========================================================

with ``ts`` strictly ascending (so unique) and a default RangeIndex when made here (the index carries no
meaning; a slice is still a bar frame). Which exchange, symbol and timeframe
a frame belongs to travels beside it (see ``engine.data.sample.SampleSeries``), not inside it.

:func:`validate_bar_frame` checks this structure only. Whether the values are sane (NaN, low > high,
negative volume, gaps) is the quality module's question (``engine.data.quality``), which also accepts
frames that break the ordering rules, so that it can report them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from engine.data.models import Bar
from engine.data.timeframes import Timeframe, validate_timeframe
from engine.errors import ValidationFailedError

BAR_COLUMNS: Final[tuple[str, ...]] = ("ts", "open", "high", "low", "close", "volume")
"""Column order of every bar frame."""

PRICE_COLUMNS: Final[tuple[str, ...]] = ("open", "high", "low", "close")
VALUE_COLUMNS: Final[tuple[str, ...]] = (*PRICE_COLUMNS, "volume")
TS_DTYPE: Final = np.dtype(np.int64)
VALUE_DTYPE: Final = np.dtype(np.float64)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class BarArrays:
    """The columns of a bar frame as numpy arrays (same length, ts ascending), for numeric kernels."""

    ts: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    def __len__(self) -> int:
        return int(self.ts.shape[0])


def empty_bar_frame() -> pd.DataFrame:
    """A bar frame with no rows (right columns and dtypes)."""
    return pd.DataFrame({c: np.empty(0, dtype=TS_DTYPE if c == "ts" else VALUE_DTYPE) for c in BAR_COLUMNS})


def check_bar_columns(df: pd.DataFrame) -> None:
    """Raise ValidationFailedError unless ``df`` has the bar columns with their dtypes (extras allowed)."""
    missing = [c for c in BAR_COLUMNS if c not in df.columns]
    if missing:
        raise ValidationFailedError(f"bar frame is missing column(s) {missing}; expected {list(BAR_COLUMNS)}")
    if df["ts"].dtype != TS_DTYPE:
        raise ValidationFailedError(f"bar frame column 'ts' must be int64 milliseconds, got {df['ts'].dtype}")
    wrong = {c: str(df[c].dtype) for c in VALUE_COLUMNS if df[c].dtype != VALUE_DTYPE}
    if wrong:
        raise ValidationFailedError(f"bar frame value columns must be float64, got {wrong}")


def _iso_ms(ms: int) -> str:
    return str(np.datetime64(int(ms), "ms").astype("datetime64[s]")) + "Z"


def invalid_bar(
    ts_ms: npt.ArrayLike,
    open: npt.ArrayLike,
    high: npt.ArrayLike,
    low: npt.ArrayLike,
    close: npt.ArrayLike,
    volume: npt.ArrayLike,
) -> str | None:
    """The first bar whose values no market can print, described (index, UTC time, rule), or None.

    Rules: every price > 0 (a zero open makes NaN equity, a negative close a silent -100 %), high >= low,
    volume >= 0. Non-finite values are the callers' own check (their messages count them). Open or close
    outside [low, high] is left to the quality report (``engine.data.quality``): real feeds print it.
    """
    o, h, lo, c, v = (np.asarray(x, dtype=np.float64) for x in (open, high, low, close, volume))
    with np.errstate(invalid="ignore"):
        rules = (
            (
                "a price <= 0",
                (o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0),
            ),
            ("high < low", h < lo),
            ("negative volume", v < 0),
        )
    first: tuple[int, str] | None = None
    for name, mask in rules:
        if mask.any():
            index = int(np.argmax(mask))
            if first is None or index < first[0]:
                first = (index, name)
    if first is None:
        return None
    i, name = first
    t = np.asarray(ts_ms, dtype=np.int64)
    when = _iso_ms(int(t[i])) if i < t.size else "?"
    values = ", ".join(f"{k}={float(x[i])!r}" for k, x in zip(VALUE_COLUMNS, (o, h, lo, c, v), strict=True))
    return f"bar {i} at {when} has {name} ({values})"


def check_bar_values(df: pd.DataFrame) -> None:
    """Raise ValidationFailedError naming the first bar of ``df`` that breaks :func:`invalid_bar`'s rules."""
    problem = invalid_bar(*(df[c].to_numpy() for c in BAR_COLUMNS))
    if problem is not None:
        raise ValidationFailedError(problem)


def validate_bar_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Check that ``df`` is a canonical bar frame and return it.

    Raises ValidationFailedError naming the first broken rule: columns (exactly :data:`BAR_COLUMNS`, in
    order), dtypes (ts int64, the rest float64), ts strictly ascending. The index carries no meaning
    (frames made here have a default RangeIndex; a slice of one is still a valid frame).
    """
    if not isinstance(df, pd.DataFrame):
        raise ValidationFailedError(f"a bar frame must be a pandas DataFrame, got {type(df).__name__}")
    check_bar_columns(df)
    if tuple(df.columns) != BAR_COLUMNS:
        raise ValidationFailedError(f"bar frame columns must be exactly {list(BAR_COLUMNS)}, got {list(df.columns)}")
    ts = df["ts"].to_numpy()
    if ts.size > 1:
        steps = np.diff(ts)
        if (steps <= 0).any():
            first = int(np.flatnonzero(steps <= 0)[0]) + 1
            kind = "duplicate" if steps[first - 1] == 0 else "out-of-order"
            raise ValidationFailedError(
                f"bar frame ts must be strictly ascending: {kind} ts {int(ts[first])} at row {first}"
            )
    return df


def frame_from_arrays(
    *,
    ts: npt.ArrayLike,
    open: npt.ArrayLike,
    high: npt.ArrayLike,
    low: npt.ArrayLike,
    close: npt.ArrayLike,
    volume: npt.ArrayLike,
) -> pd.DataFrame:
    """Build a bar frame from column arrays (converted to the canonical dtypes, not validated)."""
    return pd.DataFrame(
        {
            "ts": np.asarray(ts, dtype=TS_DTYPE),
            "open": np.asarray(open, dtype=VALUE_DTYPE),
            "high": np.asarray(high, dtype=VALUE_DTYPE),
            "low": np.asarray(low, dtype=VALUE_DTYPE),
            "close": np.asarray(close, dtype=VALUE_DTYPE),
            "volume": np.asarray(volume, dtype=VALUE_DTYPE),
        }
    )


def to_arrays(df: pd.DataFrame) -> BarArrays:
    """The columns of a canonical bar frame as numpy arrays (validated first; no copies when avoidable)."""
    validate_bar_frame(df)
    return BarArrays(
        ts=df["ts"].to_numpy(dtype=TS_DTYPE),
        open=df["open"].to_numpy(dtype=VALUE_DTYPE),
        high=df["high"].to_numpy(dtype=VALUE_DTYPE),
        low=df["low"].to_numpy(dtype=VALUE_DTYPE),
        close=df["close"].to_numpy(dtype=VALUE_DTYPE),
        volume=df["volume"].to_numpy(dtype=VALUE_DTYPE),
    )


def from_arrays(arrays: BarArrays) -> pd.DataFrame:
    """A bar frame from :class:`BarArrays`, validated."""
    return validate_bar_frame(
        frame_from_arrays(
            ts=arrays.ts, open=arrays.open, high=arrays.high, low=arrays.low, close=arrays.close, volume=arrays.volume
        )
    )


def bars_to_frame(bars: Iterable[Bar]) -> pd.DataFrame:
    """A bar frame from Bar models (one exchange/symbol/timeframe, ascending ts); validated."""
    rows: Sequence[Bar] = list(bars)
    if not rows:
        return empty_bar_frame()
    keys = {(b.exchange, b.symbol, b.timeframe) for b in rows}
    if len(keys) > 1:
        raise ValidationFailedError(f"bars of several series cannot share one frame: {sorted(keys)}")
    return validate_bar_frame(
        frame_from_arrays(
            ts=[b.ts for b in rows],
            open=[b.open for b in rows],
            high=[b.high for b in rows],
            low=[b.low for b in rows],
            close=[b.close for b in rows],
            volume=[b.volume for b in rows],
        )
    )


def frame_to_bars(df: pd.DataFrame, *, exchange: str, symbol: str, timeframe: str) -> list[Bar]:
    """Bar models from a bar frame (for small frames at API boundaries; use arrays for bulk work)."""
    tf: Timeframe = validate_timeframe(timeframe)
    a = to_arrays(df)
    return [
        Bar(
            exchange=exchange,
            symbol=symbol,
            timeframe=tf,
            ts=int(t),
            open=float(o),
            high=float(h),
            low=float(lo),
            close=float(c),
            volume=float(v),
        )
        for t, o, h, lo, c, v in zip(
            a.ts.tolist(),
            a.open.tolist(),
            a.high.tolist(),
            a.low.tolist(),
            a.close.tolist(),
            a.volume.tolist(),
            strict=True,
        )
    ]
