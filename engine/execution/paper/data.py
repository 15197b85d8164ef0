"""Prices for the paper venue: a small ``PriceFeed`` protocol, a feed over stored bars and a hand-fed one."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal
from typing import NamedTuple, Protocol, runtime_checkable

from engine.data.store import BarStore, SeriesInfo, SeriesKey, make_key
from engine.data.timeframes import timeframe_ms
from engine.errors import NotFoundError, ValidationFailedError
from engine.execution.models import is_symbol

Number = Decimal | int | float | str


def to_decimal(value: Number) -> Decimal:
    """A price or amount as Decimal; floats go through their shortest repr (``0.1`` -> ``Decimal("0.1")``)."""
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, float):
        result = Decimal(repr(value))
    else:
        result = Decimal(value)
    if not result.is_finite():
        raise ValidationFailedError(f"not a finite number: {value!r}")
    return result


class PriceBar(NamedTuple):
    """One OHLCV bar: ``ts_ms`` is its open time (ms, UTC); prices in the quote currency, volume in the base."""

    ts_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal

    @classmethod
    def of(cls, row: Sequence[Number]) -> PriceBar:
        """From ``(ts_ms, open, high, low, close, volume)``, checking that the bar is sane."""
        if len(row) != len(cls._fields):
            raise ValidationFailedError(f"a bar is (ts_ms, open, high, low, close, volume), got {row!r}")
        o, h, lo, c, v = (to_decimal(x) for x in row[1:])
        bar = cls(int(row[0]), o, h, lo, c, v)
        if lo <= 0 or h < max(o, c) or lo > min(o, c) or v < 0:
            raise ValidationFailedError(
                f"inconsistent bar at {bar.ts_ms}: open={o} high={h} low={lo} close={c} volume={v}"
            )
        return bar


@runtime_checkable
class PriceFeed(Protocol):
    """Where the paper venue reads the market: the latest closed bar of a symbol."""

    async def last_bar(self, symbol: str) -> PriceBar | None:
        """The latest bar of ``symbol`` (None when there is none)."""
        ...


class ManualPriceFeed:
    """Bars pushed by hand (tests, demos, a live bar builder): ``last_bar`` is the newest one pushed."""

    def __init__(self) -> None:
        self._bars: dict[str, PriceBar] = {}

    def push(self, symbol: str, bar: PriceBar | Sequence[Number]) -> PriceBar:
        """Record ``bar`` as ``symbol``'s latest; bars must move forward in time."""
        if not is_symbol(symbol):
            raise ValidationFailedError(f"not a unified symbol: {symbol!r} (e.g. BTC/USDT)")
        bar = PriceBar.of(bar)
        previous = self._bars.get(symbol)
        if previous is not None and bar.ts_ms <= previous.ts_ms:
            raise ValidationFailedError(f"{symbol}: bar at {bar.ts_ms} is not after the last one ({previous.ts_ms})")
        self._bars[symbol] = bar
        return bar

    async def last_bar(self, symbol: str) -> PriceBar | None:
        return self._bars.get(symbol)


class StorePriceFeed:
    """The latest stored bar of a symbol in the bar store (replayed real data).

    ``exchange`` and ``timeframe`` pick the series; left out, the feed uses the symbol's series with the newest
    bar (the shortest timeframe on a tie), chosen once per symbol. With ``as_of_ms`` set the feed replays: it
    answers the last bar that had closed by then (looking back at most ``lookback_bars`` bars), so moving
    ``as_of_ms`` forward walks through history.
    """

    def __init__(
        self,
        store: BarStore,
        exchange: str | None = None,
        timeframe: str | None = None,
        *,
        as_of_ms: int | None = None,
        lookback_bars: int = 1_000,
    ) -> None:
        if lookback_bars < 1:
            raise ValidationFailedError("lookback_bars must be at least 1")
        if timeframe is not None:
            timeframe_ms(timeframe)  # validates
        self.store = store
        self.exchange = exchange
        self.timeframe = timeframe
        self.as_of_ms = as_of_ms
        self.lookback_bars = lookback_bars
        self._keys: dict[str, SeriesKey] = {}

    def _key(self, symbol: str) -> SeriesKey | None:
        if self.exchange is not None and self.timeframe is not None:
            return make_key(self.exchange, symbol, self.timeframe)
        key = self._keys.get(symbol)
        if key is None:
            candidates = [
                s
                for s in self.store.series()
                if s.symbol == symbol
                and s.rows > 0
                and s.last_ts is not None
                and (self.exchange is None or s.exchange == self.exchange.lower())
                and (self.timeframe is None or s.timeframe == self.timeframe)
            ]
            if not candidates:
                return None

            def newest_close(s: SeriesInfo) -> tuple[int, int]:
                step = timeframe_ms(s.timeframe)
                assert s.last_ts is not None
                return (s.last_ts + step, -step)

            best = max(candidates, key=newest_close)
            key = self._keys[symbol] = make_key(best.exchange, best.symbol, best.timeframe)
        return key

    def _read(self, symbol: str) -> PriceBar | None:
        key = self._key(symbol)
        if key is None:
            return None
        step = timeframe_ms(key.timeframe)
        if self.as_of_ms is None:
            last = self.store.last_ts(key)
            if last is None:
                return None
            start, end = last, last + 1
        else:
            end = self.as_of_ms - step + 1  # bars that had closed by as_of_ms
            start = end - self.lookback_bars * step
        try:
            frame = self.store.read_bars(key, start, end)
        except NotFoundError:
            return None
        if frame.empty:
            return None
        row = frame.iloc[-1]
        return PriceBar.of(
            (int(row["ts"]), float(row["open"]), float(row["high"]), float(row["low"]), float(row["close"]),
             float(row["volume"]))
        )  # fmt: skip

    async def last_bar(self, symbol: str) -> PriceBar | None:
        return await asyncio.to_thread(self._read, symbol)
