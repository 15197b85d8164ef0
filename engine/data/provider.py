"""The one market-data provider: which stored series a request means, its bars, and its last price as a Quote.

Every consumer asks here: the data tools and ``iqts data`` (ticker, bars, quality), the risk checks' market
snapshot and the portfolio valuation, the paper venue's fills, the inbox chart, and research's series choice.

**Resolution of what people write.** ``symbol`` may be a base asset (``BTC``, ``bitcoin``, ``xbt``, ``ether``,
``litecoin``) or a pair in any usual spelling (``BTC/USD``, ``btc-usd``, ``BTCUSDT``); see
``engine.data.symbols``. A base alone means its dollar-quoted pairs (USD, USDT, USDC) when any is stored, else
every stored pair of that base. A dollar quote that is not stored is served by another stored dollar quote
(USD ~ USDT ~ USDC), and the result says so. ``timeframe`` may be ``1h``, ``hourly``, ``1 hour``, ``60m``,
``daily``, ``1D`` ... (``engine.data.timeframes.parse_timeframe``); ``exchange`` is a ccxt id. Every choice
states ``series`` (``bitstamp:BTC/USD:1d``), ``resolved_from`` (``"BTC" -> "BTC/USD"``) and ``rule``. When
nothing matches, the error names the field and lists what is stored.

**The default rule (when the request leaves a choice), one per purpose:**

* ``purpose="quote"`` (the last price, risk checks, portfolio valuation, paper fills): the series whose
  price was observed most recently (last bar's close, capped at now), then the finest timeframe, then the
  most bars. A price should be the newest one known, whatever bar it closes.
* ``purpose="history"`` (bars, backtests, indicators, ``get_ohlcv``): the finest timeframe among series with
  at least ``MIN_HISTORY_BARS`` bars (all series when none has that many), then the freshest, then the most
  bars. A backtest wants resolution and length; a short fresh live series of 1m bars must not displace years
  of hourly history.

On the bundled sample the two agree on ETH and LTC (Bitstamp daily, the only series) and differ on BTC: the
last price is Bitstamp daily (to 2020-01-17), the history Coinbase hourly (to 2019-10-17). Every result names
its series, so the difference is always visible; pass ``timeframe``/``exchange`` to pin one series for all.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Final, Literal, NamedTuple

from pydantic import Field

from engine.data.quote import Quote, history_note, make_quote
from engine.data.store import BarStore, SeriesInfo, make_key
from engine.data.symbols import USD_LIKE, SymbolQuery, matching_symbols, parse_symbol_query, split_symbol
from engine.data.timeframes import parse_timeframe, timeframe_ms
from engine.data.timeparse import datetime_to_ms
from engine.errors import NotFoundError, ValidationFailedError
from engine.store.database import Database

if TYPE_CHECKING:
    import pandas as pd

    from engine.data.quality import QualityReport

Purpose = Literal["quote", "history"]
MIN_HISTORY_BARS: Final = 500
"""A series with fewer bars is chosen for history only when no series of the symbol has this many."""
_CLOSE_LOOKBACK_BARS: Final = 16
"""How far back the quote looks for the last bar with a finite close (the sample has a few empty cells)."""

RULES: Final[dict[str, str]] = {
    "quote": "the most recently observed price (then the finest timeframe, then the most bars)",
    "history": (f"the finest timeframe with at least {MIN_HISTORY_BARS} bars (then the freshest, then the most bars)"),
}
"""The default rule of each purpose, as results state it."""


class StoredBar(NamedTuple):
    """One stored bar (floats, as stored); ``ts_ms`` is its open time."""

    ts_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class SeriesChoice(SeriesInfo):
    """The stored series a request resolved to (a ``SeriesInfo`` plus how it was chosen)."""

    series: str = Field(description="exchange:symbol:timeframe, e.g. bitstamp:BTC/USD:1d")
    purpose: Purpose
    requested: str = Field(description="the symbol as it was asked for")
    resolved_from: str | None = Field(
        default=None, description='how the request became this series, e.g. "BTC" -> "BTC/USD"; None when exact'
    )
    rule: str = Field(description="why this series among the matching ones")
    alternatives: list[str] = Field(default_factory=list, description="other stored series that matched")


def _series_text(s: SeriesInfo) -> str:
    return f"{s.exchange}:{s.symbol}:{s.timeframe}"


def _close_ms(s: SeriesInfo, now_ms: int) -> int:
    assert s.last_ts is not None
    return min(s.last_ts + timeframe_ms(s.timeframe), now_ms)


def _pick(candidates: list[SeriesInfo], purpose: Purpose, now_ms: int) -> SeriesInfo:
    if purpose == "quote":
        return max(candidates, key=lambda s: (_close_ms(s, now_ms), -timeframe_ms(s.timeframe), s.rows))
    enough = [s for s in candidates if s.rows >= MIN_HISTORY_BARS] or candidates
    return min(enough, key=lambda s: (timeframe_ms(s.timeframe), -(s.last_ts or 0), -s.rows))


def _listing(series: Iterable[SeriesInfo]) -> str:
    """``BTC/USD (1h coinbase; 1d bitstamp, coinbase), ETH/USD (1d bitstamp)``."""
    by_symbol: dict[str, dict[str, list[str]]] = {}
    for s in series:
        by_symbol.setdefault(s.symbol, {}).setdefault(s.timeframe, []).append(s.exchange)
    parts = []
    for symbol in sorted(by_symbol):
        per_tf = by_symbol[symbol]
        tfs = "; ".join(f"{tf} {', '.join(sorted(per_tf[tf]))}" for tf in sorted(per_tf, key=timeframe_ms))
        parts.append(f"{symbol} ({tfs})")
    return ", ".join(parts) or "none (run `iqts data load-sample` or a backfill)"


class MarketData:
    """The provider over one database. Cheap to make; it reads the list of stored series once (``refresh``)."""

    def __init__(self, source: Database | BarStore, *, clock: Callable[[], datetime] | None = None) -> None:
        self.store = source if isinstance(source, BarStore) else BarStore(source)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._series: list[SeriesInfo] | None = None

    # ---- what is stored --------------------------------------------------------------------------------------

    def series(self) -> list[SeriesInfo]:
        """Every stored series with bars (cached for this provider's life; see :meth:`refresh`)."""
        if self._series is None:
            self._series = [s for s in self.store.series() if s.rows > 0 and s.last_ts is not None]
        return self._series

    def refresh(self) -> None:
        self._series = None

    # ---- resolution ------------------------------------------------------------------------------------------

    def _symbols(self, query: SymbolQuery) -> tuple[list[str], str | None]:
        """Stored symbols matching the query, and why when they are not exactly what was written."""
        return matching_symbols(query, (s.symbol for s in self.series()))

    def choose(
        self,
        symbol: str,
        *,
        timeframe: str | None = None,
        exchange: str | None = None,
        purpose: Purpose = "history",
    ) -> SeriesChoice:
        """The stored series ``symbol`` (as written) means, by the module's rule for ``purpose``.

        Raises ValidationFailedError for malformed input and NotFoundError when nothing stored matches; both
        name the field (``symbol: ...``, ``timeframe: ...``, ``exchange: ...``) and list what is stored.
        """
        stored = self.series()
        steps: list[str] = []
        tf = None
        if timeframe is not None and str(timeframe).strip():
            tf = parse_timeframe(timeframe)
            if tf != timeframe.strip():
                steps.append(f'timeframe "{timeframe.strip()}" -> "{tf}"')
        venue = None
        if exchange is not None and exchange.strip():
            venue = exchange.strip().lower()
            if not venue.isidentifier():
                raise ValidationFailedError(f"exchange: {exchange!r} is not a ccxt exchange id (e.g. 'binance')")
        query = parse_symbol_query(
            symbol,
            bases={split_symbol(s.symbol)[0] for s in stored},
            quotes={split_symbol(s.symbol)[1] for s in stored},
        )
        symbols, why = self._symbols(query)
        if not symbols:
            name = query.unified or query.base
            written = f" (from {query.text!r})" if name != query.text.upper() else ""
            raise NotFoundError(f"symbol: no stored data for {name}{written}; stored: {_listing(stored)}")
        of_symbols = [s for s in stored if s.symbol in symbols]
        on_venue = [s for s in of_symbols if venue is None or s.exchange == venue]
        if not on_venue:
            venues = ", ".join(sorted({s.exchange for s in of_symbols}))
            raise NotFoundError(f"exchange: no {' / '.join(symbols)} data on {venue}; stored on: {venues}")
        candidates = [s for s in on_venue if tf is None or s.timeframe == tf]
        if not candidates:
            where = f" on {venue}" if venue else ""
            raise NotFoundError(
                f"timeframe: no stored data for {' / '.join(symbols)} {tf}{where}; stored: {_listing(on_venue)}"
            )
        now_ms = datetime_to_ms(self._clock())
        best = _pick(candidates, purpose, now_ms)
        if best.symbol != query.text:
            reason = f" ({why})" if why else (f" (of {', '.join(symbols)})" if len(symbols) > 1 else "")
            steps.insert(0, f'"{query.text}" -> "{best.symbol}"{reason}')
        rule = (
            f"the only stored series matching {query.text}"
            if len(candidates) == 1
            else f"{RULES[purpose]}, among {len(candidates)} matching series"
        )
        return SeriesChoice(
            **best.model_dump(),
            series=_series_text(best),
            purpose=purpose,
            requested=query.text,
            resolved_from="; ".join(steps) or None,
            rule=rule,
            alternatives=[_series_text(s) for s in candidates if s is not best],
        )

    def matching(
        self, symbol: str | None = None, *, timeframe: str | None = None, exchange: str | None = None
    ) -> list[SeriesInfo]:
        """Every stored series the request means (all of them without one), in listing order; the same errors as
        :meth:`choose` when nothing matches."""
        if symbol is None and timeframe is None and exchange is None:
            return list(self.series())
        if symbol is None:
            tf = parse_timeframe(timeframe) if timeframe else None
            venue = exchange.strip().lower() if exchange else None
            found = [s for s in self.series() if (tf is None or s.timeframe == tf) and (venue in (None, s.exchange))]
            if not found:
                raise NotFoundError(f"no stored series match; stored: {_listing(self.series())}")
            return found
        best = self.choose(symbol, timeframe=timeframe, exchange=exchange)
        wanted = {best.series, *best.alternatives}
        return [s for s in self.series() if _series_text(s) in wanted]

    def defaults(self) -> dict[str, list[Purpose]]:
        """For each stored series, the purposes it is the default of for its symbol ("quote", "history")."""
        out: dict[str, list[Purpose]] = {_series_text(s): [] for s in self.series()}
        now_ms = datetime_to_ms(self._clock())
        by_symbol: dict[str, list[SeriesInfo]] = {}
        for s in self.series():
            by_symbol.setdefault(s.symbol, []).append(s)
        for candidates in by_symbol.values():
            for purpose in ("quote", "history"):
                out[_series_text(_pick(candidates, purpose, now_ms))].append(purpose)
        return out

    def quality(
        self, symbol: str | None = None, *, timeframe: str | None = None, exchange: str | None = None
    ) -> list[QualityReport]:
        """The quality report (gaps, duplicates, bad rows, spikes) of every series the request means."""
        from engine.data.quality import check_bars

        return [
            check_bars(
                self.store.read_bars(make_key(s.exchange, s.symbol, s.timeframe)),
                exchange=s.exchange,
                symbol=s.symbol,
                timeframe=s.timeframe,
            )
            for s in self.matching(symbol, timeframe=timeframe, exchange=exchange)
        ]

    def history_note(self, choice: SeriesInfo) -> str | None:
        """Says when a series' bars are replayed history, not current (see ``engine.data.quote``)."""
        assert choice.last_ts is not None
        return history_note(choice.exchange, choice.symbol, choice.timeframe, choice.last_ts, self._clock())

    # ---- prices ----------------------------------------------------------------------------------------------

    def last_bar(
        self, choice: SeriesInfo, *, end_ms: int | None = None, lookback_bars: int = _CLOSE_LOOKBACK_BARS
    ) -> StoredBar | None:
        """The newest bar of a series with finite, positive prices (opening before ``end_ms`` when given),
        looking back at most ``lookback_bars`` bars; None when there is none."""
        assert choice.last_ts is not None
        step = timeframe_ms(choice.timeframe)
        stop = choice.last_ts + 1 if end_ms is None else min(end_ms, choice.last_ts + 1)
        if stop <= (choice.first_ts or 0):
            return None
        frame = self.store.read_bars(
            make_key(choice.exchange, choice.symbol, choice.timeframe), stop - lookback_bars * step, stop
        )
        rows = frame.to_numpy()
        for row in rows[::-1]:
            ts, o, h, lo, c, v = (float(x) for x in row)
            if all(math.isfinite(x) and x > 0 for x in (o, h, lo, c)) and math.isfinite(v) and v >= 0:
                return StoredBar(int(ts), o, h, lo, c, v)
        return None

    def quote_of(self, choice: SeriesInfo, *, resolved_from: str | None = None, as_of: datetime | None = None) -> Quote:
        """The last price of one series: the close of its newest bar with valid prices. With ``as_of`` (a
        replay clock) it is the last bar closed by then, and the quote is marked replayed."""
        end_ms = None
        if as_of is not None:
            end_ms = datetime_to_ms(as_of) - timeframe_ms(choice.timeframe) + 1
        bar = self.last_bar(choice, end_ms=end_ms)
        if bar is None:
            raise NotFoundError(f"symbol: {_series_text(choice)} has no bar with valid prices near that time")
        return self.quote_of_bar(choice, bar, resolved_from=resolved_from, as_of=as_of)

    def quote_of_bar(
        self,
        choice: SeriesInfo,
        bar: StoredBar,
        *,
        resolved_from: str | None = None,
        as_of: datetime | None = None,
    ) -> Quote:
        """The quote of one stored bar's close (``as_of`` set: a replay, marked so)."""
        return make_quote(
            exchange=choice.exchange,
            symbol=choice.symbol,
            timeframe=choice.timeframe,
            bar_open_ms=bar.ts_ms,
            close=Decimal(repr(bar.close)),
            as_of=as_of if as_of is not None else self._clock(),
            replay=as_of is not None,
            resolved_from=resolved_from,
        )

    def quote(self, symbol: str, *, timeframe: str | None = None, exchange: str | None = None) -> Quote:
        """The last price of what ``symbol`` means (purpose "quote"), with its age and provenance."""
        choice = self.choose(symbol, timeframe=timeframe, exchange=exchange, purpose="quote")
        return self.quote_of(choice, resolved_from=choice.resolved_from)

    def quotable(self) -> list[str]:
        """Every symbol a price can be given for: the stored ones and, for each stored spot pair quoted in a dollar
        (USD, USDT, USDC), the same base in the other dollar quotes (served by the stored pair, and saying so). A
        market snapshot holds all of them, so a risk check prices ``BTC/USDT`` as the ticker and the paper venue
        do when only ``BTC/USD`` is stored."""
        stored = {s.symbol for s in self.series()}
        out = set(stored)
        for symbol in stored:
            base, quote, settle = split_symbol(symbol)
            if settle is None and quote in USD_LIKE:
                out.update(f"{base}/{dollar}" for dollar in USD_LIKE)
        return sorted(out)

    def quotes(self, symbols: Iterable[str] | None = None) -> dict[str, Quote]:
        """Last prices keyed by the symbol asked for (every :meth:`quotable` symbol by default); a symbol nothing
        stored matches is left out (valuation reports it as unvalued), never an error. Each series is read once."""
        wanted = self.quotable() if symbols is None else list(dict.fromkeys(symbols))
        read: dict[str, Quote] = {}
        out: dict[str, Quote] = {}
        for symbol in wanted:
            try:
                choice = self.choose(symbol, purpose="quote")
                if choice.series not in read:
                    read[choice.series] = self.quote_of(choice)
            except (NotFoundError, ValidationFailedError):
                continue
            out[symbol] = read[choice.series].model_copy(update={"resolved_from": choice.resolved_from})
        return out

    # ---- bars ------------------------------------------------------------------------------------------------

    def bars(
        self,
        symbol: str,
        *,
        timeframe: str | None = None,
        exchange: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> tuple[SeriesChoice, pd.DataFrame]:
        """The bars of what ``symbol`` means (purpose "history") with ``start_ms <= ts < end_ms``."""
        if start_ms is not None and end_ms is not None and end_ms <= start_ms:
            raise ValidationFailedError("end: must be after start")
        choice = self.choose(symbol, timeframe=timeframe, exchange=exchange, purpose="history")
        frame = self.store.read_bars(make_key(choice.exchange, choice.symbol, choice.timeframe), start_ms, end_ms)
        return choice, frame


def choose_series(
    db: Database,
    symbol: str,
    *,
    timeframe: str | None = None,
    exchange: str | None = None,
    purpose: Purpose = "history",
) -> SeriesChoice:
    """``MarketData(db).choose(...)``: the series a request means, by the documented rule."""
    return MarketData(db).choose(symbol, timeframe=timeframe, exchange=exchange, purpose=purpose)


def market_symbol(db: Database, symbol: str) -> tuple[str, str | None]:
    """The market an order for ``symbol`` means, and how it was read (None when it was already one).

    A symbol written as a market (``BASE/QUOTE``, as ccxt lists it) is never changed: an order is for exactly the
    market named (a malformed one such as ``BTC/`` is left for the order's validation to refuse). A bare asset or
    name ("BTC", "bitcoin") is read as the market with a known price it means, by the quote rule
    (``choose(purpose="quote")``); nothing stored for it is the NotFoundError listing what is.
    """
    from engine.execution.models import SYMBOL_PATTERN

    written = symbol.strip()
    if re.fullmatch(SYMBOL_PATTERN, written) or "/" in written:
        return written, None  # a market, or a malformed one: the order's validation names the problem
    choice = MarketData(db).choose(written, purpose="quote")
    return choice.symbol, f"symbol {written!r} read as {choice.symbol}"


def get_quote(db: Database, symbol: str, *, timeframe: str | None = None, exchange: str | None = None) -> Quote:
    """``MarketData(db).quote(...)``: the last price of what ``symbol`` means, with its age."""
    return MarketData(db).quote(symbol, timeframe=timeframe, exchange=exchange)
