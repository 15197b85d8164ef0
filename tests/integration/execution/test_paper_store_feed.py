"""The paper venue on stored bars (PostgreSQL): the latest bar, replay by ``as_of_ms``, and a fill at its close."""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from engine.data.frame import frame_from_arrays
from engine.data.store import BarStore, make_key
from engine.execution.broker import _release
from engine.execution.models import OrderIntent, OrderSide, OrderType
from engine.execution.paper import PaperBroker, PaperBrokerConfig, PriceBar, StorePriceFeed
from engine.store.database import Database

D = Decimal
T0 = 1_704_067_200_000
MINUTE = 60_000
HOUR = 60 * MINUTE


def _store_series(store: BarStore, exchange: str, timeframe: str, step: int, closes: list[float]) -> None:
    n = len(closes)
    c = np.asarray(closes)
    frame = frame_from_arrays(
        ts=T0 + step * np.arange(n), open=c, high=c + 5, low=c - 5, close=c, volume=np.full(n, 2.5)
    )
    store.upsert_bars(make_key(exchange, "BTC/USDT", timeframe), frame)


async def test_the_store_feed_serves_the_latest_bar_and_replays(db: Database, unique: str) -> None:
    store = BarStore(db)
    exchange = f"feed{unique}"
    _store_series(store, exchange, "1m", MINUTE, [42000.5, 42010.25, 42020.1])
    _store_series(store, exchange, "1h", HOUR, [41000.0, 43000.0])  # newer close time, but on the hour grid

    latest = await StorePriceFeed(store, exchange, "1m").last_bar("BTC/USDT")
    assert latest == PriceBar(T0 + 2 * MINUTE, D("42020.1"), D("42025.1"), D("42015.1"), D("42020.1"), D("2.5"))
    assert await StorePriceFeed(store, exchange, "1m").last_bar("ETH/USDT") is None

    chosen = await StorePriceFeed(store, exchange).last_bar("BTC/USDT")  # the series whose bar closed last
    assert chosen is not None and chosen.ts_ms == T0 + HOUR and chosen.close == D(43000)

    replay = StorePriceFeed(store, exchange, "1m", as_of_ms=T0 + 2 * MINUTE)  # two bars had closed by then
    bar = await replay.last_bar("BTC/USDT")
    assert bar is not None and (bar.ts_ms, bar.close) == (T0 + MINUTE, D("42010.25"))
    replay.as_of_ms = T0 + MINUTE - 1  # before the first bar closed
    assert await replay.last_bar("BTC/USDT") is None

    broker = PaperBroker(PaperBrokerConfig(slippage_fraction=D(0)), StorePriceFeed(store, exchange, "1m"))
    intent = OrderIntent(
        account="paper", symbol="BTC/USDT", side=OrderSide.BUY, type=OrderType.MARKET, quantity=D("0.1")
    )
    placed = await broker.submit(_release(intent, f"store-feed-{unique}"))
    assert placed.fills[0].price == D("42020.1") and placed.fills[0].fee == D("4.20201")
