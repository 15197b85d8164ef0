"""Prices for the paper venue: a small ``PriceFeed`` protocol, a feed over stored bars and a hand-fed one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import NamedTuple, Protocol, runtime_checkable

from engine.data.provider import MarketData
from engine.data.quote import Quote
from engine.data.store import BarStore
from engine.data.timeframes import timeframe_ms
from engine.data.timeparse import ms_to_utc
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


class QuotedBar(NamedTuple):
    """A bar and the quote its close is: series, observation time, age, replayed."""

    bar: PriceBar
    quote: Quote


@runtime_checkable
class PriceFeed(Protocol):
    """Where the paper venue reads the market: the latest closed bar of a symbol, and the quote it makes."""

    async def last_bar(self, symbol: str) -> PriceBar | None:
        """The latest bar of ``symbol`` (None when there is none)."""
        ...

    async def quoted_bar(self, symbol: str) -> QuotedBar | None:
        """The latest bar of ``symbol`` with the quote of its close (None when there is none)."""
        ...


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ManualPriceFeed:
    """Bars pushed by hand (tests, demos, a live bar builder): ``last_bar`` is the newest one pushed. Its
    quotes name the series ``manual:SYMBOL`` and are observed at the bar's time (age against ``clock``)."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self._bars: dict[str, PriceBar] = {}
        self._clock = clock or _utc_now

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

    async def quoted_bar(self, symbol: str) -> QuotedBar | None:
        bar = self._bars.get(symbol)
        if bar is None:
            return None
        now = self._clock()
        ts = min(ms_to_utc(bar.ts_ms), now)
        quote = Quote(
            symbol=symbol,
            price=bar.close,
            ts=ts,
            bar_open=ms_to_utc(bar.ts_ms),
            as_of=now,
            age_seconds=max((now - ts).total_seconds(), 0.0),
            series=f"manual:{symbol}",
            replayed=False,
        )
        return QuotedBar(bar, quote)


class StorePriceFeed:
    """The latest stored bar of a symbol in the bar store (replayed real data or live-built bars).

    The series is the market-data provider's choice for a price (``engine.data.provider``, purpose "quote"),
    narrowed by ``exchange`` and ``timeframe`` when given, made afresh on every read (a live series that
    starts later is picked up). With ``as_of_ms`` set the feed replays: it answers the last bar that had closed
    by then (looking back at most ``lookback_bars`` bars), so moving ``as_of_ms`` forward walks through history.
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

    def _read(self, symbol: str) -> QuotedBar | None:
        provider = MarketData(self.store)
        try:
            choice = provider.choose(symbol, timeframe=self.timeframe, exchange=self.exchange, purpose="quote")
        except (NotFoundError, ValidationFailedError):
            return None
        as_of = None if self.as_of_ms is None else ms_to_utc(self.as_of_ms)
        end_ms = None if self.as_of_ms is None else self.as_of_ms - timeframe_ms(choice.timeframe) + 1
        stored = provider.last_bar(choice, end_ms=end_ms, lookback_bars=self.lookback_bars)
        if stored is None:
            return None
        bar = PriceBar.of(stored)
        quote = provider.quote_of_bar(choice, stored, resolved_from=choice.resolved_from, as_of=as_of)
        return QuotedBar(bar, quote)

    async def last_bar(self, symbol: str) -> PriceBar | None:
        quoted = await self.quoted_bar(symbol)
        return None if quoted is None else quoted.bar

    async def quoted_bar(self, symbol: str) -> QuotedBar | None:
        return await asyncio.to_thread(self._read, symbol)
