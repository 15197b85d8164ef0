"""The bars a research run reads: which stored series, which time range, loaded as :class:`Bars`.

A run names a symbol and optionally a timeframe, an exchange and a ``[start, end)`` range in ms. Which series is
the market-data provider's decision (``engine.data.provider``, purpose "history"); an empty range is a clear
error naming the range and what is stored.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

from engine.backtest.bars import Bars
from engine.data.provider import MarketData
from engine.data.store import BarStore, SeriesInfo, make_key
from engine.errors import ValidationFailedError
from engine.store.database import Database


class DataSelection(BaseModel):
    """Which bars: a stored series and an optional ``[start_ms, end_ms)`` range (ms since epoch, UTC)."""

    model_config = ConfigDict(frozen=True)

    exchange: str
    symbol: str
    timeframe: str
    start_ms: int | None = None
    end_ms: int | None = None


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _describe_ms(ms: int | None) -> str:
    return "-" if ms is None else ms_to_datetime(ms).strftime("%Y-%m-%d %H:%M")


def select_series(db: Database, symbol: str, timeframe: str | None = None, exchange: str | None = None) -> SeriesInfo:
    """The stored series a run reads: the market-data provider's choice for history (``engine.data.provider``:
    the finest timeframe with enough bars, then the freshest, then the largest, unless ``timeframe`` or
    ``exchange`` narrow it). ``symbol`` and ``timeframe`` may be written as people do ("BTC", "hourly").

    Returns a :class:`~engine.data.provider.SeriesChoice` (a ``SeriesInfo`` with ``series``, ``resolved_from``,
    ``rule`` and ``alternatives``); errors name the field and list what is stored.
    """
    return MarketData(db).choose(symbol, timeframe=timeframe, exchange=exchange, purpose="history")


def load_bars(db: Database, selection: DataSelection) -> Bars:
    """The selected bars; ValidationFailedError naming the range when it holds no bars."""
    if selection.start_ms is not None and selection.end_ms is not None and selection.end_ms <= selection.start_ms:
        raise ValidationFailedError(
            f"empty data range: until ({_describe_ms(selection.end_ms)}) is not after since "
            f"({_describe_ms(selection.start_ms)})"
        )
    key = make_key(selection.exchange, selection.symbol, selection.timeframe)
    frame = BarStore(db).read_bars(key, selection.start_ms, selection.end_ms)
    if frame.empty:
        info = next(
            (
                s
                for s in BarStore(db).series()
                if (s.exchange, s.symbol, s.timeframe) == (key.exchange, key.symbol, key.timeframe)
            ),
            None,
        )
        stored = (
            f"stored: {_describe_ms(info.first_ts)} .. {_describe_ms(info.last_ts)}"
            if info is not None and info.rows
            else "nothing stored"
        )
        raise ValidationFailedError(
            f"empty data range: no {key} bars between since={_describe_ms(selection.start_ms)} and "
            f"until={_describe_ms(selection.end_ms)} ({stored})"
        )
    return Bars.from_frame(frame, timeframe=selection.timeframe, symbol=selection.symbol)


def resolve_and_load(
    db: Database,
    symbol: str,
    *,
    timeframe: str | None = None,
    exchange: str | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> tuple[DataSelection, Bars]:
    """Pick the series, load the range; the selection names the exact series for the run record."""
    info = select_series(db, symbol, timeframe, exchange)
    selection = DataSelection(
        exchange=info.exchange, symbol=info.symbol, timeframe=info.timeframe, start_ms=start_ms, end_ms=end_ms
    )
    return selection, load_bars(db, selection)


def bars_ms(bars: Bars) -> tuple[int, int]:
    """First and last bar open time in ms."""
    ms = bars.ts.astype("datetime64[ms]").astype("int64")
    return int(ms[0]), int(ms[-1])
