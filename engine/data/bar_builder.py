"""Trades -> 1-minute bars (streaming and batch), and 1-minute bars -> higher timeframes.

Bar rules, identical in the streaming and the batch builder:

* A trade belongs to the minute ``floor(ts / 60 s)``; the bar's ``ts`` is that minute's open time.
* Within a minute, trades are ordered by ``(ts, trade id)``: ``open`` is the price of the first,
  ``close`` of the last; ``high``/``low`` are the extreme prices; ``volume`` sums the amounts.
  Trade ids compare as integers when they are numeric; trades without ids keep arrival order on ties.
* Streaming: a minute closes when a trade of a later minute arrives, or on ``flush(now_ms)`` once
  ``now_ms`` has reached the minute's end. A trade for a closed minute is late: it is dropped and counted
  (``late_trades``), since the bar has already been handed on.
* Minutes without trades produce no bar, unless ``fill_empty=True``: then, when trading resumes, each
  silent minute in between gets a flat bar at the previous close with zero volume (the kline convention of
  Binance and others). A flush never invents bars: silence before a flush may be an outage on our side,
  which a quality check should see as a gap and a targeted backfill should repair.

Rolling up (1m -> 5m, 15m, 1h, 4h, 1d, or any supported multiple): open of the first source bar, max of
highs, min of lows, close of the last, sum of volumes. By default only complete buckets are returned:
buckets that lie entirely inside the span the input covers (the first and last bucket are usually cut
off). ``require_all_bars=True`` also drops buckets that lack any source bar; ``complete_only=False``
returns every bucket.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from engine.data.frame import BAR_COLUMNS, empty_bar_frame, frame_from_arrays, to_arrays
from engine.data.models import Bar, Trade, parse_symbol
from engine.data.timeframes import (
    MINUTE_MS,
    Timeframe,
    floor_ts,
    floor_ts_array,
    rollup_factor,
    timeframe_ms,
    validate_timeframe,
)
from engine.errors import ValidationFailedError
from engine.telemetry import get_logger

log = get_logger(__name__)

BASE_TIMEFRAME: Final[Timeframe] = "1m"

# (ts, numeric id, text id): numeric ids compare as numbers, others as text, missing ids tie.
_OrderKey = tuple[int, int, str]


def _order_key(ts: int, trade_id: str | None) -> _OrderKey:
    if trade_id is None:
        return (ts, 0, "")
    if trade_id.isdigit():
        return (ts, int(trade_id), "")
    return (ts, 0, trade_id)


@dataclass(slots=True)
class _Forming:
    minute: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    open_key: _OrderKey
    close_key: _OrderKey
    trades: int = 1


class TradeBarBuilder:
    """Streaming trades -> 1-minute bars for one (exchange, symbol); the rules are in the module docstring."""

    def __init__(self, exchange: str, symbol: str, *, fill_empty: bool = False) -> None:
        self.exchange = exchange
        self.symbol = parse_symbol(symbol).unified
        self.fill_empty = fill_empty
        self.late_trades = 0
        self._forming: _Forming | None = None
        self._closed_before: int | None = None  # every minute starting before this is closed
        self._last_emitted: int | None = None
        self._last_close: float | None = None

    @property
    def closed_before(self) -> int | None:
        """Minutes that start before this time (ms) are closed; trades for them are late."""
        return self._closed_before

    def current(self) -> Bar | None:
        """The bar still forming (not complete), if any."""
        return None if self._forming is None else self._bar(self._forming)

    def add(self, trade: Trade) -> list[Bar]:
        """Take one trade; return the bars it completed (oldest first; often none)."""
        if trade.exchange != self.exchange or trade.symbol != self.symbol:
            raise ValidationFailedError(
                f"trade for {trade.exchange} {trade.symbol} given to the bar builder of {self.exchange} {self.symbol}"
            )
        minute = floor_ts(trade.ts, BASE_TIMEFRAME)
        if self._closed_before is not None and minute < self._closed_before:
            self.late_trades += 1
            log.warning(
                "late_trade_dropped",
                exchange=self.exchange,
                symbol=self.symbol,
                ts=trade.ts,
                closed_before=self._closed_before,
            )
            return []
        done = self._close_through(minute, fill=True)
        key = _order_key(trade.ts, trade.trade_id)
        f = self._forming
        if f is None:
            self._forming = _Forming(minute, trade.price, trade.price, trade.price, trade.price, trade.amount, key, key)
            return done
        f.high = max(f.high, trade.price)
        f.low = min(f.low, trade.price)
        f.volume += trade.amount
        f.trades += 1
        if key < f.open_key:
            f.open, f.open_key = trade.price, key
        if key >= f.close_key:
            f.close, f.close_key = trade.price, key
        return done

    def flush(self, now_ms: int) -> list[Bar]:
        """Close the forming bar if its minute has ended by ``now_ms``; return it (or nothing)."""
        return self._close_through(floor_ts(now_ms, BASE_TIMEFRAME), fill=False)

    def _close_through(self, watermark: int, *, fill: bool) -> list[Bar]:
        """Close every minute starting before ``watermark``; with ``fill``, add flat bars for silent ones."""
        out: list[Bar] = []
        f = self._forming
        if f is not None and f.minute < watermark:
            out.append(self._bar(f))
            self._last_emitted, self._last_close = f.minute, f.close
            self._forming = None
        if fill and self.fill_empty and self._last_emitted is not None and self._last_close is not None:
            price = self._last_close
            for minute in range(self._last_emitted + MINUTE_MS, watermark, MINUTE_MS):
                out.append(
                    Bar(
                        exchange=self.exchange,
                        symbol=self.symbol,
                        timeframe=BASE_TIMEFRAME,
                        ts=minute,
                        open=price,
                        high=price,
                        low=price,
                        close=price,
                        volume=0.0,
                    )
                )
                self._last_emitted = minute
        if self._closed_before is None or watermark > self._closed_before:
            self._closed_before = watermark
        return out

    def _bar(self, f: _Forming) -> Bar:
        return Bar(
            exchange=self.exchange,
            symbol=self.symbol,
            timeframe=BASE_TIMEFRAME,
            ts=f.minute,
            open=f.open,
            high=f.high,
            low=f.low,
            close=f.close,
            volume=f.volume,
        )


def trades_to_bars(
    ts: npt.ArrayLike,
    price: npt.ArrayLike,
    amount: npt.ArrayLike,
    trade_id: npt.ArrayLike | None = None,
    *,
    fill_empty: bool = False,
) -> pd.DataFrame:
    """Batch trades -> 1-minute bar frame (vectorised). Same rules as :class:`TradeBarBuilder`.

    ``trade_id``, if given, must be integer ids (used to order trades with equal ts); without it, ties keep
    the input order. Every trade's minute is treated as complete (the batch has no notion of "now").
    """
    t = np.asarray(ts, dtype=np.int64)
    p = np.asarray(price, dtype=np.float64)
    a = np.asarray(amount, dtype=np.float64)
    if not (t.shape == p.shape == a.shape) or t.ndim != 1:
        raise ValidationFailedError(
            f"ts, price and amount must be 1-d and the same length: {t.shape}, {p.shape}, {a.shape}"
        )
    if t.size == 0:
        return empty_bar_frame()
    if not (np.isfinite(p).all() and (p > 0).all()):
        raise ValidationFailedError("every trade price must be finite and > 0")
    if not (np.isfinite(a).all() and (a > 0).all()):
        raise ValidationFailedError("every trade amount must be finite and > 0")
    if (t < 0).any():
        raise ValidationFailedError("trade timestamps must be >= 0 (ms since the epoch)")
    if trade_id is None:
        order = np.argsort(t, kind="stable")
    else:
        ids = np.asarray(trade_id)
        if ids.shape != t.shape or not np.issubdtype(ids.dtype, np.integer):
            raise ValidationFailedError("trade_id must be an integer array of the same length as ts")
        order = np.lexsort((ids, t))
    t, p, a = t[order], p[order], a[order]
    minute = floor_ts_array(t, BASE_TIMEFRAME)
    starts = np.flatnonzero(np.r_[True, minute[1:] != minute[:-1]])
    ends = np.r_[starts[1:], minute.size]
    bars = frame_from_arrays(
        ts=minute[starts],
        open=p[starts],
        high=np.maximum.reduceat(p, starts),
        low=np.minimum.reduceat(p, starts),
        close=p[ends - 1],
        volume=np.add.reduceat(a, starts),
    )
    return _fill_flat(bars, MINUTE_MS) if fill_empty else bars


def _fill_flat(bars: pd.DataFrame, step: int) -> pd.DataFrame:
    """Insert flat zero-volume bars at the previous close for missing buckets between the first and last."""
    ts = bars["ts"].to_numpy()
    full = np.arange(ts[0], ts[-1] + step, step, dtype=np.int64)
    if full.size == ts.size:
        return bars
    pos = np.searchsorted(full, ts)
    have = np.zeros(full.size, dtype=bool)
    have[pos] = True
    last_real = np.cumsum(have) - 1  # row of the last real bar at or before each slot (slot 0 is real)
    close = bars["close"].to_numpy()[last_real]
    out = {c: np.empty(full.size, dtype=np.float64) for c in BAR_COLUMNS[1:]}
    for c in ("open", "high", "low", "close"):
        out[c][:] = close
        out[c][pos] = bars[c].to_numpy()
    out["volume"][:] = 0.0
    out["volume"][pos] = bars["volume"].to_numpy()
    return frame_from_arrays(ts=full, **out)


def trades_frame_to_bars(trades: pd.DataFrame, *, fill_empty: bool = False) -> pd.DataFrame:
    """:func:`trades_to_bars` over a frame with columns ts, price, amount and optionally integer trade_id."""
    missing = [c for c in ("ts", "price", "amount") if c not in trades.columns]
    if missing:
        raise ValidationFailedError(f"trades frame is missing column(s) {missing}")
    ids = trades["trade_id"].to_numpy() if "trade_id" in trades.columns else None
    return trades_to_bars(
        trades["ts"].to_numpy(),
        trades["price"].to_numpy(),
        trades["amount"].to_numpy(),
        ids,
        fill_empty=fill_empty,
    )


def rollup(
    frame: pd.DataFrame,
    source: str,
    target: str,
    *,
    complete_only: bool = True,
    require_all_bars: bool = False,
) -> pd.DataFrame:
    """Aggregate a canonical bar frame of timeframe ``source`` to ``target`` (vectorised).

    ``complete_only`` keeps buckets that lie entirely inside [first ts, last ts + one source bar);
    ``require_all_bars`` also drops buckets that miss any of their source bars.
    """
    factor = rollup_factor(source, target)
    src_ms, dst_ms = timeframe_ms(source), timeframe_ms(target)
    a = to_arrays(frame)
    if len(a) == 0:
        return empty_bar_frame()
    bucket = floor_ts_array(a.ts, target)
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], bucket.size]
    keep = np.ones(starts.size, dtype=bool)
    if complete_only:
        b0 = bucket[starts]
        keep &= (b0 >= a.ts[0]) & (b0 + dst_ms <= a.ts[-1] + src_ms)
    if require_all_bars:
        keep &= (ends - starts) == factor
    out = frame_from_arrays(
        ts=bucket[starts],
        open=a.open[starts],
        high=np.maximum.reduceat(a.high, starts),
        low=np.minimum.reduceat(a.low, starts),
        close=a.close[ends - 1],
        volume=np.add.reduceat(a.volume, starts),
    )
    return out.loc[keep].reset_index(drop=True)


@dataclass(slots=True)
class _Bucket:
    start: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    count: int
    from_start: bool  # did we see this bucket from its first source slot on?


@dataclass
class BarRollup:
    """Streaming rollup of completed bars (ascending ts) of ``source`` to ``target`` for one series.

    A bucket is emitted when its last source bar arrives, when a bar of a later bucket arrives, or on
    ``flush(now_ms)`` once the bucket has ended. Complete-only by default: a first bucket joined midway is
    not emitted; with ``require_all_bars`` neither is one that lacks a source bar. ``complete_only=False``
    emits every bucket.
    """

    exchange: str
    symbol: str
    target: Timeframe
    source: Timeframe = BASE_TIMEFRAME
    complete_only: bool = True
    require_all_bars: bool = False
    _bucket: _Bucket | None = field(default=None, init=False, repr=False)
    _last_ts: int | None = field(default=None, init=False, repr=False)
    _seen_any: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        self.target = validate_timeframe(self.target)
        self.source = validate_timeframe(self.source)
        self._factor = rollup_factor(self.source, self.target)
        self._src_ms = timeframe_ms(self.source)
        self._dst_ms = timeframe_ms(self.target)

    def add(self, bar: Bar) -> list[Bar]:
        """Take one completed source bar; return the target bars it completed."""
        if (bar.exchange, bar.symbol, bar.timeframe) != (self.exchange, self.symbol, self.source):
            raise ValidationFailedError(
                f"{bar.exchange} {bar.symbol} {bar.timeframe} bar given to the {self.exchange} {self.symbol} "
                f"{self.source}->{self.target} rollup"
            )
        if self._last_ts is not None and bar.ts <= self._last_ts:
            raise ValidationFailedError(f"bars must arrive in ascending ts order: {bar.ts} after {self._last_ts}")
        self._last_ts = bar.ts
        start = floor_ts(bar.ts, self.target)
        out: list[Bar] = []
        b = self._bucket
        if b is not None and b.start != start:
            out.extend(self._emit(b))
            b = self._bucket = None
        if b is None:
            from_start = self._seen_any or bar.ts == start
            b = self._bucket = _Bucket(start, bar.open, bar.high, bar.low, bar.close, bar.volume, 1, from_start)
        else:
            b.high = max(b.high, bar.high)
            b.low = min(b.low, bar.low)
            b.close = bar.close
            b.volume += bar.volume
            b.count += 1
        self._seen_any = True
        if bar.ts + self._src_ms == b.start + self._dst_ms:
            out.extend(self._emit(b))
            self._bucket = None
        return out

    def flush(self, now_ms: int) -> list[Bar]:
        """Emit the open bucket if it has ended by ``now_ms``."""
        b = self._bucket
        if b is None or b.start + self._dst_ms > now_ms:
            return []
        self._bucket = None
        return self._emit(b)

    def _emit(self, b: _Bucket) -> list[Bar]:
        if self.complete_only and not b.from_start:
            return []
        if self.require_all_bars and b.count != self._factor:
            return []
        return [
            Bar(
                exchange=self.exchange,
                symbol=self.symbol,
                timeframe=self.target,
                ts=b.start,
                open=b.open,
                high=b.high,
                low=b.low,
                close=b.close,
                volume=b.volume,
            )
        ]
