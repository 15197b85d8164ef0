"""Live market data through cryptofeed websockets: trades, tickers and L2 book tops onto the bus, trades into
1-minute bars, and a stale-feed detector.

Only :meth:`LiveFeed.build_handler` and :meth:`LiveFeed.run` touch the network (a cryptofeed feed object loads
the exchange's symbol list over REST when it is constructed). Everything else here is pure and tested offline:
symbol and exchange mapping, the conversion of cryptofeed objects into ``engine.data.models``, the callbacks,
bar building and the stale detector. cryptofeed is an optional dependency (the ``live`` extra); it is only
imported inside :meth:`LiveFeed.build_handler`.

Bus topics (payloads are the models' JSON dumps):

* ``md.trades.<exchange>.<symbol>``: every trade (:class:`~engine.data.models.Trade`);
* ``md.ticker.<exchange>.<symbol>``: every ticker (:class:`~engine.data.models.Ticker`);
* ``md.book.<exchange>.<symbol>``: the top ``book_depth`` levels
  (:class:`~engine.data.models.OrderBookSnapshot`), at most one per ``book_interval_ms`` per symbol;
* ``md.stale.<exchange>``: a stream went quiet for longer than its threshold (:class:`StaleStream`).

``<symbol>`` is the ccxt unified symbol verbatim (``BTC/USDT``, ``BTC/USDT:USDT``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Final, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.data.bar_builder import TradeBarBuilder
from engine.data.models import Bar, BookLevel, OrderBookSnapshot, Ticker, Trade, parse_symbol
from engine.errors import NotFoundError, ValidationFailedError
from engine.telemetry import get_logger

log = get_logger(__name__)

Publish = Callable[[str, dict[str, Any]], Awaitable[object]]
"""``async publish(topic, payload)``: the bus's publish (its return value is ignored)."""
OnBar = Callable[[Bar], Awaitable[object]]
"""``async on_bar(bar)``: receives each completed 1-minute bar."""

Channel = Literal["trades", "ticker", "book"]
CHANNELS: Final[tuple[Channel, ...]] = ("trades", "ticker", "book")
TOPIC_PREFIX: Final = "md"
MS_PER_S: Final = 1000

DEFAULT_BOOK_DEPTH: Final = 10
DEFAULT_BOOK_INTERVAL_MS: Final = 1_000
DEFAULT_FLUSH_INTERVAL_S: Final = 1.0
DEFAULT_FLUSH_GRACE_MS: Final = 2_000
"""How long after a minute ends we still wait for its trades before a flush closes it (exchange delivery lag)."""
DEFAULT_STALE_AFTER_MS: Final = 60_000

CCXT_TO_CRYPTOFEED: Final[dict[str, str]] = {
    "binance": "BINANCE",
    "binanceus": "BINANCE_US",
    "binanceusdm": "BINANCE_FUTURES",
    "binancecoinm": "BINANCE_DELIVERY",
    "bitfinex": "BITFINEX",
    "bitflyer": "BITFLYER",
    "bitget": "BITGET",
    "bithumb": "BITHUMB",
    "bitstamp": "BITSTAMP",
    "bybit": "BYBIT",
    "coinbase": "COINBASE",
    "cryptocom": "CRYPTO.COM",
    "deribit": "DERIBIT",
    "gate": "GATEIO",
    "gemini": "GEMINI",
    "htx": "HUOBI",
    "independentreserve": "INDEPENDENT_RESERVE",
    "kraken": "KRAKEN",
    "krakenfutures": "KRAKEN_FUTURES",
    "kucoin": "KUCOIN",
    "okx": "OKX",
    "phemex": "PHEMEX",
    "poloniex": "POLONIEX",
    "upbit": "UPBIT",
}
"""ccxt exchange id -> cryptofeed exchange id, for the venues both libraries know."""

CRYPTOFEED_SEPARATOR: Final = "-"
CRYPTOFEED_PERPETUAL: Final = "PERP"


# --- mapping -------------------------------------------------------------------------------------


def cryptofeed_exchange(exchange: str) -> str:
    """The cryptofeed id of a ccxt exchange id; NotFoundError if there is no live feed for it."""
    try:
        return CCXT_TO_CRYPTOFEED[exchange]
    except KeyError:
        raise NotFoundError(
            f"no live feed for exchange {exchange!r}; supported: {', '.join(sorted(CCXT_TO_CRYPTOFEED))}"
        ) from None


def to_cryptofeed_symbol(symbol: str) -> str:
    """ccxt unified -> cryptofeed: ``BTC/USDT`` -> ``BTC-USDT``; ``BTC/USDT:USDT`` -> ``BTC-USDT-PERP``.

    cryptofeed's perpetual form does not carry the settlement currency: ``BTC/USD:BTC`` (inverse) and a
    hypothetical ``BTC/USD:USD`` both become ``BTC-USD-PERP``; the venue decides which one it lists.
    """
    s = parse_symbol(symbol)
    spot = f"{s.base}{CRYPTOFEED_SEPARATOR}{s.quote}"
    return spot if s.settle is None else f"{spot}{CRYPTOFEED_SEPARATOR}{CRYPTOFEED_PERPETUAL}"


def from_cryptofeed_symbol(symbol: str, *, settle: str | None = None) -> str:
    """cryptofeed -> ccxt unified. A ``-PERP`` symbol settles in its quote unless ``settle`` says otherwise."""
    parts = symbol.split(CRYPTOFEED_SEPARATOR)
    if len(parts) == 2:
        return parse_symbol(f"{parts[0]}/{parts[1]}").unified
    if len(parts) == 3 and parts[2] == CRYPTOFEED_PERPETUAL:
        return parse_symbol(f"{parts[0]}/{parts[1]}:{settle or parts[1]}").unified
    raise ValidationFailedError(
        f"cannot map cryptofeed symbol {symbol!r}: only spot (BTC-USDT) and perpetual (BTC-USDT-PERP) are supported"
    )


def topic(kind: str, exchange: str, symbol: str) -> str:
    """Bus topic for a kind of market data: ``md.<kind>.<exchange>.<symbol>``."""
    return f"{TOPIC_PREFIX}.{kind}.{exchange}.{symbol}"


# --- conversion of cryptofeed objects (duck-typed: cryptofeed is optional) -----------------------


class CryptofeedTrade(Protocol):
    symbol: str
    side: str
    amount: Decimal
    price: Decimal
    id: str | None
    timestamp: float


class CryptofeedTicker(Protocol):
    symbol: str
    bid: Decimal | None
    ask: Decimal | None
    timestamp: float | None


class CryptofeedBook(Protocol):
    symbol: str
    book: Any
    timestamp: float | None
    sequence_number: int | None


def _ms(exchange_ts: float | None, receipt_ts: float) -> int:
    """Exchange time in ms if the venue sent one, else our receipt time."""
    seconds = exchange_ts if exchange_ts is not None else receipt_ts
    return round(seconds * MS_PER_S)


def _opt_float(x: Decimal | float | None) -> float | None:
    return None if x is None else float(x)


def convert_trade(t: CryptofeedTrade, *, exchange: str, symbol: str, receipt_ts: float) -> Trade:
    """A cryptofeed Trade as a :class:`Trade` (``exchange``/``symbol`` in ccxt form)."""
    return Trade(
        exchange=exchange,
        symbol=symbol,
        ts=_ms(t.timestamp, receipt_ts),
        price=float(t.price),
        amount=float(t.amount),
        side=t.side,  # validated by pydantic: "buy" or "sell"
        trade_id=None if t.id is None else str(t.id),
    )


def convert_ticker(t: CryptofeedTicker, *, exchange: str, symbol: str, receipt_ts: float) -> Ticker:
    """A cryptofeed Ticker (best bid/ask only in cryptofeed 2.4) as a :class:`Ticker`."""
    return Ticker(
        exchange=exchange,
        symbol=symbol,
        ts=_ms(t.timestamp, receipt_ts),
        bid=_opt_float(t.bid),
        ask=_opt_float(t.ask),
    )


def _levels(side: Any, depth: int) -> tuple[BookLevel, ...]:
    # cryptofeed's order_book.SortedDict: index(0) is the best level on either side
    n = min(depth, len(side))
    return tuple(BookLevel(price=float(p), amount=float(a)) for p, a in (side.index(i) for i in range(n)))


def convert_book(ob: CryptofeedBook, *, exchange: str, symbol: str, depth: int, receipt_ts: float) -> OrderBookSnapshot:
    """The top ``depth`` levels of a cryptofeed OrderBook as an :class:`OrderBookSnapshot`."""
    return OrderBookSnapshot(
        exchange=exchange,
        symbol=symbol,
        ts=_ms(ob.timestamp, receipt_ts),
        bids=_levels(ob.book.bids, depth),
        asks=_levels(ob.book.asks, depth),
        sequence=ob.sequence_number,
    )


# --- stale-feed detection ------------------------------------------------------------------------

StreamKey = tuple[str, str, str]


class StaleStream(BaseModel):
    """A (exchange, symbol, channel) stream that has been silent for longer than its threshold."""

    model_config = ConfigDict(frozen=True)

    exchange: str
    symbol: str
    channel: str
    last_seen_ms: int | None
    """None: never seen since it was expected."""
    silent_ms: int
    threshold_ms: int


class StaleFeedDetector:
    """Remembers when each (exchange, symbol, channel) was last heard from; pure (the caller gives the time).

    ``threshold_ms`` applies to every channel unless ``per_channel_ms`` overrides it (trades on a quiet
    market are naturally sparser than book updates). A stream registered with :meth:`expect` and never
    heard from goes stale ``threshold`` after it was expected.
    """

    def __init__(self, threshold_ms: int, per_channel_ms: Mapping[str, int] | None = None) -> None:
        if threshold_ms <= 0 or any(v <= 0 for v in (per_channel_ms or {}).values()):
            raise ValidationFailedError("stale thresholds must be > 0 ms")
        self.threshold_ms = threshold_ms
        self.per_channel_ms = dict(per_channel_ms or {})
        self._last: dict[StreamKey, int | None] = {}
        self._since: dict[StreamKey, int] = {}

    def threshold_for(self, channel: str) -> int:
        return self.per_channel_ms.get(channel, self.threshold_ms)

    def expect(self, exchange: str, symbol: str, channel: str, now_ms: int) -> None:
        """Start watching a stream that has not delivered anything yet."""
        key = (exchange, symbol, channel)
        if key not in self._since:
            self._since[key] = now_ms
            self._last.setdefault(key, None)

    def seen(self, exchange: str, symbol: str, channel: str, ts_ms: int) -> None:
        """Record that the stream delivered something at ``ts_ms`` (our clock)."""
        key = (exchange, symbol, channel)
        self._since.setdefault(key, ts_ms)
        previous = self._last.get(key)
        if previous is None or ts_ms > previous:
            self._last[key] = ts_ms

    def forget(self, exchange: str, symbol: str, channel: str) -> None:
        key = (exchange, symbol, channel)
        self._last.pop(key, None)
        self._since.pop(key, None)

    def last_seen(self, exchange: str, symbol: str, channel: str) -> int | None:
        return self._last.get((exchange, symbol, channel))

    def stale(self, now_ms: int) -> list[StaleStream]:
        """Every watched stream silent for longer than its threshold at ``now_ms``, sorted by key."""
        out: list[StaleStream] = []
        for key in sorted(self._since):
            last = self._last.get(key)
            reference = last if last is not None else self._since[key]
            silent = now_ms - reference
            threshold = self.threshold_for(key[2])
            if silent > threshold:
                out.append(
                    StaleStream(
                        exchange=key[0],
                        symbol=key[1],
                        channel=key[2],
                        last_seen_ms=last,
                        silent_ms=silent,
                        threshold_ms=threshold,
                    )
                )
        return out


# --- the feed ------------------------------------------------------------------------------------


class LiveFeedConfig(BaseModel):
    """Knobs of one live feed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    channels: tuple[Channel, ...] = CHANNELS
    book_depth: int = Field(DEFAULT_BOOK_DEPTH, ge=1)
    book_interval_ms: int = Field(DEFAULT_BOOK_INTERVAL_MS, ge=0)
    flush_interval_s: float = Field(DEFAULT_FLUSH_INTERVAL_S, gt=0)
    flush_grace_ms: int = Field(DEFAULT_FLUSH_GRACE_MS, ge=0)
    fill_empty: bool = False
    """Flat bars for silent minutes between trades (see engine.data.bar_builder)."""
    stale_after_ms: int = Field(DEFAULT_STALE_AFTER_MS, gt=0)
    stale_per_channel_ms: dict[str, int] = Field(default_factory=dict)


def _now_ms() -> int:
    return round(time.time() * MS_PER_S)


class LiveFeed:
    """One exchange, some symbols: cryptofeed callbacks -> models -> ``publish``; trades -> bars -> ``on_bar``.

    Constructing a LiveFeed touches nothing outside the process; :meth:`run` (through :meth:`build_handler`)
    connects to the exchange.
    """

    def __init__(
        self,
        exchange: str,
        symbols: Sequence[str],
        publish: Publish,
        on_bar: OnBar | None = None,
        *,
        config: LiveFeedConfig | None = None,
        stale: StaleFeedDetector | None = None,
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        if not symbols:
            raise ValidationFailedError("a live feed needs at least one symbol")
        self.exchange = exchange
        self.cryptofeed_id = cryptofeed_exchange(exchange)
        self.symbols = [parse_symbol(s).unified for s in symbols]
        self.config = config or LiveFeedConfig()
        self.publish = publish
        self.on_bar = on_bar
        self.clock = clock
        self.stale = stale or StaleFeedDetector(self.config.stale_after_ms, self.config.stale_per_channel_ms)
        self._to_cf = {s: to_cryptofeed_symbol(s) for s in self.symbols}
        self._from_cf: dict[str, str] = {}
        for unified, cf in self._to_cf.items():
            if cf in self._from_cf:
                raise ValidationFailedError(
                    f"{self._from_cf[cf]} and {unified} are the same cryptofeed symbol {cf}; subscribe to one"
                )
            self._from_cf[cf] = unified
        self.builders = {s: TradeBarBuilder(exchange, s, fill_empty=self.config.fill_empty) for s in self.symbols}
        self._last_book_ms: dict[str, int] = {}
        self._stale_keys: set[StreamKey] = set()
        self.dropped_unknown = 0
        self.dropped_invalid = 0

    @property
    def cryptofeed_symbols(self) -> list[str]:
        return [self._to_cf[s] for s in self.symbols]

    def _unified(self, cf_symbol: str) -> str | None:
        unified = self._from_cf.get(cf_symbol)
        if unified is None:
            self.dropped_unknown += 1
            log.warning("live_unknown_symbol", exchange=self.exchange, cryptofeed_symbol=cf_symbol)
        return unified

    def _invalid(self, channel: Channel, symbol: str, exc: ValidationError) -> None:
        # a malformed message must not raise into cryptofeed (it would drop and reconnect the socket)
        self.dropped_invalid += 1
        log.warning("live_invalid_message", exchange=self.exchange, symbol=symbol, channel=channel, error=str(exc))

    def _seen(self, symbol: str, channel: Channel, receipt_ts: float) -> None:
        self.stale.seen(self.exchange, symbol, channel, round(receipt_ts * MS_PER_S))

    # cryptofeed calls these as ``await cb(obj, receipt_timestamp)`` (seconds, float)

    async def handle_trade(self, t: CryptofeedTrade, receipt_timestamp: float) -> None:
        symbol = self._unified(t.symbol)
        if symbol is None:
            return
        self._seen(symbol, "trades", receipt_timestamp)
        try:
            trade = convert_trade(t, exchange=self.exchange, symbol=symbol, receipt_ts=receipt_timestamp)
        except ValidationError as exc:
            self._invalid("trades", symbol, exc)
            return
        await self.publish(topic("trades", self.exchange, symbol), trade.model_dump(mode="json"))
        await self._emit(self.builders[symbol].add(trade))

    async def handle_ticker(self, t: CryptofeedTicker, receipt_timestamp: float) -> None:
        symbol = self._unified(t.symbol)
        if symbol is None:
            return
        self._seen(symbol, "ticker", receipt_timestamp)
        try:
            ticker = convert_ticker(t, exchange=self.exchange, symbol=symbol, receipt_ts=receipt_timestamp)
        except ValidationError as exc:
            self._invalid("ticker", symbol, exc)
            return
        await self.publish(topic("ticker", self.exchange, symbol), ticker.model_dump(mode="json"))

    async def handle_book(self, ob: CryptofeedBook, receipt_timestamp: float) -> None:
        symbol = self._unified(ob.symbol)
        if symbol is None:
            return
        self._seen(symbol, "book", receipt_timestamp)
        now = round(receipt_timestamp * MS_PER_S)
        last = self._last_book_ms.get(symbol)
        if last is not None and now - last < self.config.book_interval_ms:
            return
        try:
            snap = convert_book(
                ob, exchange=self.exchange, symbol=symbol, depth=self.config.book_depth, receipt_ts=receipt_timestamp
            )
        except ValidationError as exc:
            self._invalid("book", symbol, exc)
            return
        self._last_book_ms[symbol] = now
        await self.publish(topic("book", self.exchange, symbol), snap.model_dump(mode="json"))

    async def _emit(self, bars: Iterable[Bar]) -> None:
        if self.on_bar is None:
            return
        for bar in bars:
            await self.on_bar(bar)

    async def flush(self, now_ms: int) -> list[Bar]:
        """Close every bar whose minute ended ``flush_grace_ms`` before ``now_ms``; hand them to ``on_bar``."""
        closed: list[Bar] = []
        for builder in self.builders.values():
            closed.extend(builder.flush(now_ms - self.config.flush_grace_ms))
        await self._emit(closed)
        return closed

    async def check_stale(self, now_ms: int) -> list[StaleStream]:
        """Publish ``md.stale.<exchange>`` for streams that newly went stale; return all stale streams."""
        stale = self.stale.stale(now_ms)
        keys = {(s.exchange, s.symbol, s.channel) for s in stale}
        for s in stale:
            if (s.exchange, s.symbol, s.channel) not in self._stale_keys:
                log.warning("live_stream_stale", **s.model_dump())
                await self.publish(f"{TOPIC_PREFIX}.stale.{self.exchange}", s.model_dump(mode="json"))
        for key in self._stale_keys - keys:
            log.info("live_stream_recovered", exchange=key[0], symbol=key[1], channel=key[2])
        self._stale_keys = keys
        return stale

    async def tick(self) -> None:
        """One housekeeping round: flush bars and check for stale streams (``run`` calls it periodically)."""
        now = self.clock()
        await self.flush(now)
        await self.check_stale(now)

    def expect_streams(self) -> None:
        """Start the stale clock for every subscribed stream."""
        now = self.clock()
        for symbol in self.symbols:
            for channel in self.config.channels:
                self.stale.expect(self.exchange, symbol, channel, now)

    # --- network ---------------------------------------------------------------------------------

    def build_handler(self) -> Any:
        """A cryptofeed FeedHandler with this exchange's feed and our callbacks (REST call to load symbols)."""
        from cryptofeed import FeedHandler
        from cryptofeed.callback import BookCallback, TickerCallback, TradeCallback
        from cryptofeed.defines import L2_BOOK, TICKER, TRADES
        from cryptofeed.exchanges import EXCHANGE_MAP

        wiring = {
            "trades": (TRADES, TradeCallback(self.handle_trade)),
            "ticker": (TICKER, TickerCallback(self.handle_ticker)),
            "book": (L2_BOOK, BookCallback(self.handle_book)),
        }
        callbacks = {wiring[c][0]: wiring[c][1] for c in self.config.channels}
        handler = FeedHandler(config={"uvloop": False, "log": {"disabled": True}})
        feed_cls = EXCHANGE_MAP[self.cryptofeed_id]
        handler.add_feed(
            feed_cls(
                symbols=self.cryptofeed_symbols,
                channels=list(callbacks),
                callbacks=callbacks,
                max_depth=self.config.book_depth,
                config=handler.config,
            )
        )
        return handler

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, stream until ``stop`` is set, flushing bars and checking staleness every flush interval."""
        handler = self.build_handler()
        handler.run(start_loop=False, install_signal_handlers=False)
        self.expect_streams()
        log.info("live_feed_started", exchange=self.exchange, symbols=self.symbols, channels=self.config.channels)
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.config.flush_interval_s)
                await self.tick()
        finally:
            await handler.stop_async()
            log.info("live_feed_stopped", exchange=self.exchange)
