"""Live feed pieces that do not need the network: mapping, conversion, callbacks, bars, staleness.

cryptofeed *types* are built by hand here; no cryptofeed Feed is ever constructed (their constructors call
the exchange's REST API).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import ccxt
import pytest

from engine.data.live import (
    CCXT_TO_CRYPTOFEED,
    LiveFeed,
    LiveFeedConfig,
    StaleFeedDetector,
    convert_book,
    convert_ticker,
    convert_trade,
    cryptofeed_exchange,
    from_cryptofeed_symbol,
    to_cryptofeed_symbol,
    topic,
)
from engine.data.models import Bar, BookLevel, Ticker, Trade
from engine.errors import NotFoundError, ValidationFailedError

cf_types = pytest.importorskip("cryptofeed.types")
cf_callback = pytest.importorskip("cryptofeed.callback")
cf_exchanges = pytest.importorskip("cryptofeed.exchanges")

T0 = datetime(2024, 1, 1, tzinfo=UTC).timestamp()  # seconds, as cryptofeed gives them
MIN = 60


def cf_trade(symbol: str, price: str, amount: str, ts: float, tid: str | None = None, side: str = "buy") -> Any:
    return cf_types.Trade("BINANCE", symbol, side, Decimal(amount), Decimal(price), ts, id=tid, type=None, raw=None)


class Recorder:
    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []
        self.bars: list[Bar] = []

    async def publish(self, topic: str, payload: dict[str, Any]) -> str:
        self.published.append((topic, payload))
        return str(len(self.published))

    async def on_bar(self, bar: Bar) -> None:
        self.bars.append(bar)

    def topics(self) -> list[str]:
        return [t for t, _ in self.published]


def feed(rec: Recorder, **config: Any) -> LiveFeed:
    return LiveFeed(
        "binance",
        ["BTC/USDT", "ETH/USDT"],
        rec.publish,
        rec.on_bar,
        config=LiveFeedConfig(**config),
        clock=lambda: round(T0 * 1000),
    )


# --- mapping --------------------------------------------------------------------------------------


def test_symbol_mapping() -> None:
    assert to_cryptofeed_symbol("BTC/USDT") == "BTC-USDT"
    assert to_cryptofeed_symbol("BTC/USDT:USDT") == "BTC-USDT-PERP"
    assert to_cryptofeed_symbol("BTC/USD:BTC") == "BTC-USD-PERP"
    assert from_cryptofeed_symbol("BTC-USDT") == "BTC/USDT"
    assert from_cryptofeed_symbol("BTC-USDT-PERP") == "BTC/USDT:USDT"
    assert from_cryptofeed_symbol("BTC-USD-PERP", settle="BTC") == "BTC/USD:BTC"
    with pytest.raises(ValidationFailedError, match="only spot"):
        from_cryptofeed_symbol("BTC-USD-24M28")
    with pytest.raises(ValidationFailedError, match="did you mean 'BTC/USDT'"):
        to_cryptofeed_symbol("BTC-USDT")
    # the cryptofeed normalised form agrees with cryptofeed's own Symbol class
    from cryptofeed.defines import PERPETUAL
    from cryptofeed.symbols import Symbol as CfSymbol

    assert CfSymbol("BTC", "USDT").normalized == to_cryptofeed_symbol("BTC/USDT")
    assert CfSymbol("BTC", "USDT", type=PERPETUAL).normalized == to_cryptofeed_symbol("BTC/USDT:USDT")


def test_exchange_mapping_names_real_ids_on_both_sides() -> None:
    assert set(CCXT_TO_CRYPTOFEED) <= set(ccxt.exchanges)
    assert set(CCXT_TO_CRYPTOFEED.values()) <= set(cf_exchanges.EXCHANGE_MAP)
    assert cryptofeed_exchange("binance") == "BINANCE"
    with pytest.raises(NotFoundError, match="no live feed for exchange 'nope'; supported: binance"):
        cryptofeed_exchange("nope")


def test_topics() -> None:
    assert topic("trades", "binance", "BTC/USDT") == "md.trades.binance.BTC/USDT"


# --- conversion -----------------------------------------------------------------------------------


def test_convert_trade() -> None:
    t = convert_trade(
        cf_trade("BTC-USDT", "42000.5", "0.25", T0 + 1.2346, tid="987", side="sell"),
        exchange="binance",
        symbol="BTC/USDT",
        receipt_ts=T0 + 2,
    )
    assert t == Trade(
        exchange="binance",
        symbol="BTC/USDT",
        ts=round(T0 * 1000) + 1235,
        price=42000.5,
        amount=0.25,
        side="sell",
        trade_id="987",
    )
    no_id = convert_trade(cf_trade("BTC-USDT", "1", "1", T0), exchange="binance", symbol="BTC/USDT", receipt_ts=T0 + 2)
    assert no_id.trade_id is None


def test_receipt_time_stands_in_when_the_venue_sends_no_time() -> None:
    cf = cf_types.Ticker("BINANCE", "ETH-USDT", Decimal("1"), Decimal("2"), None, raw=None)
    assert convert_ticker(cf, exchange="binance", symbol="ETH/USDT", receipt_ts=T0 + 2).ts == round(T0 * 1000) + 2000
    ob = make_book()
    ob.timestamp = None
    assert (
        convert_book(ob, exchange="binance", symbol="BTC/USDT", depth=1, receipt_ts=T0 + 3).ts
        == round(T0 * 1000) + 3000
    )


def test_convert_ticker() -> None:
    cf = cf_types.Ticker("BINANCE", "ETH-USDT", Decimal("2200.1"), Decimal("2200.2"), T0, raw=None)
    assert convert_ticker(cf, exchange="binance", symbol="ETH/USDT", receipt_ts=T0 + 1) == Ticker(
        exchange="binance", symbol="ETH/USDT", ts=round(T0 * 1000), bid=2200.1, ask=2200.2
    )


def make_book(symbol: str = "BTC-USDT") -> Any:
    bids = {Decimal(p): Decimal("1") for p in ("100", "99", "98", "97")}
    asks = {Decimal(p): Decimal("2") for p in ("101", "102", "103")}
    ob = cf_types.OrderBook("BINANCE", symbol, bids=bids, asks=asks)
    ob.timestamp = T0 + 0.5
    ob.sequence_number = 77
    return ob


def test_convert_book_keeps_the_top_levels_best_first() -> None:
    snap = convert_book(make_book(), exchange="binance", symbol="BTC/USDT", depth=2, receipt_ts=T0 + 1)
    assert snap.bids == (BookLevel(price=100, amount=1), BookLevel(price=99, amount=1))
    assert snap.asks == (BookLevel(price=101, amount=2), BookLevel(price=102, amount=2))
    assert snap.ts == round(T0 * 1000) + 500 and snap.sequence == 77
    deep = convert_book(make_book(), exchange="binance", symbol="BTC/USDT", depth=10, receipt_ts=T0)
    assert (len(deep.bids), len(deep.asks)) == (4, 3)


# --- the feed's callbacks -------------------------------------------------------------------------


async def test_trades_are_published_and_built_into_bars() -> None:
    rec = Recorder()
    f = feed(rec)
    # wrapped exactly as cryptofeed wraps callbacks, and called as it calls them
    cb = cf_callback.TradeCallback(f.handle_trade)
    assert cb.is_async
    await cb(cf_trade("BTC-USDT", "100", "1", T0 + 1, tid="1"), T0 + 1.1)
    await cb(cf_trade("BTC-USDT", "101", "2", T0 + 30, tid="2"), T0 + 30.1)
    await cb(cf_trade("ETH-USDT", "10", "1", T0 + 31, tid="3"), T0 + 31.1)
    assert rec.topics() == ["md.trades.binance.BTC/USDT", "md.trades.binance.BTC/USDT", "md.trades.binance.ETH/USDT"]
    assert rec.published[0][1]["price"] == 100.0 and rec.published[0][1]["trade_id"] == "1"
    assert rec.bars == []
    await cb(cf_trade("BTC-USDT", "99", "1", T0 + MIN + 1, tid="4"), T0 + MIN + 1.1)  # closes BTC's first minute
    assert [(b.symbol, b.ts, b.open, b.high, b.low, b.close, b.volume) for b in rec.bars] == [
        ("BTC/USDT", round(T0 * 1000), 100.0, 101.0, 100.0, 101.0, 3.0)
    ]
    # ETH's minute closes on a flush, once the grace period after the minute's end has passed
    grace = f.config.flush_grace_ms
    assert await f.flush(round((T0 + MIN) * 1000) + grace - 1) == []
    closed = await f.flush(round((T0 + MIN) * 1000) + grace)
    assert [(b.symbol, b.close) for b in closed] == [("ETH/USDT", 10.0)]
    assert rec.bars[-1] == closed[0]


async def test_unknown_symbols_and_bad_messages_are_dropped_not_raised() -> None:
    rec = Recorder()
    f = feed(rec)
    await f.handle_trade(cf_trade("DOGE-USDT", "1", "1", T0), T0)
    assert f.dropped_unknown == 1
    await f.handle_trade(cf_trade("BTC-USDT", "1", "0", T0), T0)  # zero amount
    assert f.dropped_invalid == 1
    assert rec.published == []


async def test_ticker_and_book_callbacks() -> None:
    rec = Recorder()
    f = feed(rec, book_depth=2, book_interval_ms=1000)
    tcb = cf_callback.TickerCallback(f.handle_ticker)
    await tcb(cf_types.Ticker("BINANCE", "ETH-USDT", Decimal("1"), Decimal("2"), T0, raw=None), T0)
    assert rec.published[-1] == (
        "md.ticker.binance.ETH/USDT",
        {
            "exchange": "binance",
            "symbol": "ETH/USDT",
            "ts": round(T0 * 1000),
            "bid": 1.0,
            "ask": 2.0,
            "last": None,
            "bid_size": None,
            "ask_size": None,
        },
    )
    bcb = cf_callback.BookCallback(f.handle_book)
    await bcb(make_book(), T0)
    await bcb(make_book(), T0 + 0.5)  # within the interval: not published again
    await bcb(make_book(), T0 + 1.0)
    books = [p for t, p in rec.published if t == "md.book.binance.BTC/USDT"]
    assert len(books) == 2
    assert books[0]["bids"] == [{"price": 100.0, "amount": 1.0}, {"price": 99.0, "amount": 1.0}]
    assert books[0]["asks"] == [{"price": 101.0, "amount": 2.0}, {"price": 102.0, "amount": 2.0}]


async def test_stale_streams_are_published_once_per_episode() -> None:
    rec = Recorder()
    now = {"ms": round(T0 * 1000)}
    f = LiveFeed(
        "binance",
        ["BTC/USDT"],
        rec.publish,
        config=LiveFeedConfig(channels=("trades",), stale_after_ms=10_000),
        clock=lambda: now["ms"],
    )
    f.expect_streams()
    await f.tick()
    assert rec.published == []
    now["ms"] += 10_001
    await f.tick()
    await f.tick()
    stale_msgs = [p for t, p in rec.published if t == "md.stale.binance"]
    assert len(stale_msgs) == 1
    assert stale_msgs[0] == {
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "channel": "trades",
        "last_seen_ms": None,
        "silent_ms": 10_001,
        "threshold_ms": 10_000,
    }
    await f.handle_trade(cf_trade("BTC-USDT", "1", "1", now["ms"] / 1000), now["ms"] / 1000)
    assert await f.check_stale(now["ms"]) == []
    now["ms"] += 20_000
    assert len(await f.check_stale(now["ms"])) == 1
    assert len([t for t, _ in rec.published if t == "md.stale.binance"]) == 2


def test_feed_construction_checks_its_inputs() -> None:
    rec = Recorder()
    with pytest.raises(NotFoundError):
        LiveFeed("nope", ["BTC/USDT"], rec.publish)
    with pytest.raises(ValidationFailedError, match="at least one symbol"):
        LiveFeed("binance", [], rec.publish)
    with pytest.raises(ValidationFailedError, match="same cryptofeed symbol BTC-USD-PERP"):
        LiveFeed("deribit", ["BTC/USD:BTC", "BTC/USD:USD"], rec.publish)
    f = LiveFeed("binanceusdm", ["BTC/USDT:USDT"], rec.publish)
    assert f.cryptofeed_id == "BINANCE_FUTURES" and f.cryptofeed_symbols == ["BTC-USDT-PERP"]


# --- the stale detector ---------------------------------------------------------------------------


def test_stale_detector() -> None:
    d = StaleFeedDetector(5_000, per_channel_ms={"trades": 30_000})
    d.seen("binance", "BTC/USDT", "book", 1_000)
    d.seen("binance", "BTC/USDT", "trades", 1_000)
    d.expect("binance", "ETH/USDT", "book", 2_000)
    assert d.stale(6_000) == []
    stale = d.stale(7_001)
    assert [(s.symbol, s.channel, s.last_seen_ms, s.silent_ms) for s in stale] == [
        ("BTC/USDT", "book", 1_000, 6_001),
        ("ETH/USDT", "book", None, 5_001),
    ]
    d.seen("binance", "BTC/USDT", "book", 7_000)
    d.seen("binance", "BTC/USDT", "book", 6_500)  # an older stamp does not move the clock back
    assert d.last_seen("binance", "BTC/USDT", "book") == 7_000
    assert [s.channel for s in d.stale(31_001)] == ["book", "trades", "book"]
    d.forget("binance", "ETH/USDT", "book")
    assert [(s.symbol, s.channel) for s in d.stale(31_001)] == [("BTC/USDT", "book"), ("BTC/USDT", "trades")]
    with pytest.raises(ValidationFailedError):
        StaleFeedDetector(0)


# --- the wiring into cryptofeed, with a stand-in for the feed class (the real one calls the network) ----


class FakeFeed:
    """Records what LiveFeed passes to a cryptofeed feed class; start/stop/shutdown as FeedHandler calls them."""

    instances: list[FakeFeed] = []  # noqa: RUF012

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.id = "FAKE"
        self.started = False
        self.stopped = False
        FakeFeed.instances.append(self)

    def start(self, loop: Any) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    async def shutdown(self) -> None:
        return None


def test_build_handler_wires_channels_and_callbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    import inspect

    from cryptofeed.defines import L2_BOOK, TICKER, TRADES
    from cryptofeed.exchange import Exchange
    from cryptofeed.feed import Feed

    accepted = set(inspect.signature(Feed.__init__).parameters) | set(inspect.signature(Exchange.__init__).parameters)
    monkeypatch.setitem(cf_exchanges.EXCHANGE_MAP, "BINANCE", FakeFeed)
    FakeFeed.instances.clear()
    rec = Recorder()
    handler = feed(rec, book_depth=5).build_handler()
    (fake,) = FakeFeed.instances
    assert handler.feeds == [fake]
    assert set(fake.kwargs) <= accepted  # every keyword exists on the real cryptofeed Feed
    assert fake.kwargs["symbols"] == ["BTC-USDT", "ETH-USDT"]
    assert sorted(fake.kwargs["channels"]) == sorted([TRADES, TICKER, L2_BOOK])
    assert fake.kwargs["max_depth"] == 5
    callbacks = fake.kwargs["callbacks"]
    assert isinstance(callbacks[TRADES], cf_callback.TradeCallback) and callbacks[TRADES].is_async
    assert isinstance(callbacks[L2_BOOK], cf_callback.BookCallback)


async def test_run_starts_ticks_and_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    monkeypatch.setitem(cf_exchanges.EXCHANGE_MAP, "BINANCE", FakeFeed)
    FakeFeed.instances.clear()
    rec = Recorder()
    f = LiveFeed(
        "binance", ["BTC/USDT"], rec.publish, config=LiveFeedConfig(channels=("trades",), flush_interval_s=0.01)
    )
    ticks = 0
    ticked_twice = asyncio.Event()
    real_tick = f.tick

    async def counting_tick() -> None:
        nonlocal ticks
        ticks += 1
        if ticks >= 2:
            ticked_twice.set()
        await real_tick()

    monkeypatch.setattr(f, "tick", counting_tick)
    stop = asyncio.Event()
    task = asyncio.create_task(f.run(stop))
    await asyncio.wait_for(ticked_twice.wait(), timeout=10)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    (fake,) = FakeFeed.instances
    assert fake.started and fake.stopped
    assert ticks >= 2
