"""A price with its provenance: which series, which bar, when it was observed, how old it is, whether it is live.

Every price that values an order (risk checks), fills a paper order or answers "what is the last price" is a
:class:`Quote`. ``ts`` is when the price was observed: the close of its bar, or the time it was read if the bar
is still forming. ``age_seconds`` is ``as_of - ts``. A quote is ``replayed`` when it is history rather than the
market now: older than two bars of its series (at least two minutes), or read at a replay time (``as_of`` in
the past). ``sample`` marks the bundled sample series (``engine.data.sample.BUNDLED_SERIES``). A replayed quote
carries a ``note`` a person can read: "replayed sample price from 2020-01-17 (2,510 days old), series
bitstamp:BTC/USD:1d".
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from engine.data.bundled import BUNDLED_SERIES
from engine.data.timeframes import DAY_MS, MINUTE_MS, timeframe_ms
from engine.data.timeparse import ms_to_utc, to_utc

REPLAY_AFTER_BARS: Final = 2
"""A quote older than this many bars of its series is replayed history, not a live price."""
REPLAY_AFTER_MIN_MS: Final = 2 * MINUTE_MS


class Quote(BaseModel):
    """One price of one symbol, with where it came from and how old it is (Decimal at this boundary)."""

    model_config = ConfigDict(frozen=True)

    symbol: str = Field(description="the stored symbol the price is of, e.g. BTC/USD")
    price: Decimal = Field(gt=0, description="the close of the bar (quote currency)")
    ts: datetime = Field(description="when the price was observed: the bar's close (UTC)")
    bar_open: datetime = Field(description="open time of the bar the price closes")
    as_of: datetime = Field(description="when the quote was read (UTC)")
    age_seconds: float = Field(ge=0, description="as_of - ts")
    series: str = Field(description="exchange:symbol:timeframe, e.g. bitstamp:BTC/USD:1d")
    replayed: bool = Field(description="history, not the market now (see engine.data.quote)")
    sample: bool = Field(default=False, description="from the bundled sample history")
    note: str | None = Field(default=None, description="set when replayed: what a person should know")
    resolved_from: str | None = Field(default=None, description="how the symbol asked for became this series")

    @property
    def source(self) -> str:
        """The series (``exchange:symbol:timeframe``), the name older callers used."""
        return self.series

    @property
    def age(self) -> timedelta:
        return timedelta(seconds=self.age_seconds)


def describe_age(seconds: float) -> str:
    """``2,510 days``, ``5 hours``, ``3 minutes``, ``12 s``."""
    if seconds >= 2 * 86_400:
        return f"{int(seconds // 86_400):,} days"
    if seconds >= 2 * 3_600:
        return f"{int(seconds // 3_600)} hours"
    if seconds >= 120:
        return f"{int(seconds // 60)} minutes"
    return f"{seconds:.0f} s"


def _bar_time(open_ms: int, timeframe: str) -> str:
    moment = ms_to_utc(open_ms)
    return moment.strftime("%Y-%m-%d") if timeframe_ms(timeframe) >= DAY_MS else moment.strftime("%Y-%m-%d %H:%M UTC")


class Staleness(NamedTuple):
    """How old the close of one bar is at ``as_of``, and whether that makes it replayed history."""

    ts: datetime
    age_seconds: float
    replayed: bool
    sample: bool
    when: str
    """The bar's date (daily and weekly bars) or open time (intraday), for people."""


def staleness(
    *, exchange: str, symbol: str, timeframe: str, bar_open_ms: int, as_of: datetime, replay: bool = False
) -> Staleness:
    """The age and replay status of the close of the bar opening at ``bar_open_ms`` (module docstring)."""
    as_of = to_utc(as_of)
    step = timeframe_ms(timeframe)
    ts = min(ms_to_utc(bar_open_ms + step), as_of)
    age = max((as_of - ts).total_seconds(), 0.0)
    replayed = replay or age * 1000 > max(REPLAY_AFTER_BARS * step, REPLAY_AFTER_MIN_MS)
    sample = (exchange, symbol, timeframe) in BUNDLED_SERIES
    return Staleness(ts, age, replayed, sample, _bar_time(bar_open_ms, timeframe))


def history_note(exchange: str, symbol: str, timeframe: str, last_open_ms: int, as_of: datetime) -> str | None:
    """For bars: "replayed sample history: the last bar is from 2019-10-17 09:00 UTC (2,237 days old)", or
    None when the series is current."""
    seen = staleness(exchange=exchange, symbol=symbol, timeframe=timeframe, bar_open_ms=last_open_ms, as_of=as_of)
    if not seen.replayed:
        return None
    kind = "replayed sample history" if seen.sample else "replayed history"
    return f"{kind}: the last bar is from {seen.when} ({describe_age(seen.age_seconds)} old)"


def make_quote(
    *,
    exchange: str,
    symbol: str,
    timeframe: str,
    bar_open_ms: int,
    close: Decimal,
    as_of: datetime,
    replay: bool = False,
    resolved_from: str | None = None,
) -> Quote:
    """The quote of one bar's close read at ``as_of``; ``replay`` forces ``replayed`` (a replay clock)."""
    seen = staleness(
        exchange=exchange, symbol=symbol, timeframe=timeframe, bar_open_ms=bar_open_ms, as_of=as_of, replay=replay
    )
    series = f"{exchange}:{symbol}:{timeframe}"
    note = None
    if seen.replayed:
        kind = "replayed sample price" if seen.sample else "replayed price"
        note = f"{kind} from {seen.when} ({describe_age(seen.age_seconds)} old), series {series}"
    return Quote(
        symbol=symbol,
        price=close,
        ts=seen.ts,
        bar_open=ms_to_utc(bar_open_ms),
        as_of=to_utc(as_of),
        age_seconds=seen.age_seconds,
        series=series,
        replayed=seen.replayed,
        sample=seen.sample,
        note=note,
        resolved_from=resolved_from,
    )
