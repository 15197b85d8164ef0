"""The real ccxt binance client (async, and sync once) against the loopback, endpoint by endpoint."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import ccxt
import pytest

from tests.support.loopback import (
    SPOT_SYMBOLS,
    Balance,
    LoopbackConfig,
    LoopbackExchange,
    load_markets_fixture,
    make_ccxt_binance,
)
from tests.unit.loopback.helpers import MINUTE, T0, assert_all_calls_reached, flat_rows, ramp_rows

D = Decimal


async def test_load_markets_serves_the_fixture_spot_markets_with_one_request(
    exchange: LoopbackExchange, client: Any
) -> None:
    markets = await client.load_markets()
    assert sorted(markets) == sorted(SPOT_SYMBOLS)
    fixture = load_markets_fixture()
    for symbol in SPOT_SYMBOLS:
        got, want = markets[symbol], fixture[symbol]
        assert got["info"] == want["info"]
        assert (got["id"], got["base"], got["quote"], got["spot"]) == (want["id"], want["base"], want["quote"], True)
        # the fixture records precision in decimal places; ccxt 4.5 reports tick sizes
        assert got["precision"]["amount"] == pytest.approx(10 ** -want["precision"]["amount"])
        assert got["precision"]["price"] == pytest.approx(10 ** -want["precision"]["price"])
        for key in ("amount", "price", "cost"):
            assert got["limits"][key] == want["limits"][key]
    btc = markets["BTC/USDT"]
    assert btc["precision"]["amount"] == 1e-05 and btc["precision"]["price"] == 0.01
    assert [(r.method, r.path) for r in exchange.requests()] == [("GET", "/api/v3/exchangeInfo")]


async def test_time_and_ping(client: Any) -> None:
    before = int(time.time() * 1000)
    server_time = await client.fetch_time()
    assert before - 5_000 <= server_time <= int(time.time() * 1000) + 5_000
    assert await client.publicGetPing() == {}


async def test_fetch_ohlcv_pages_over_more_than_1000_bars(exchange: LoopbackExchange, client: Any) -> None:
    rows = ramp_rows(2500)
    exchange.state.load_bars("BTC/USDT", MINUTE, rows)
    await client.load_markets()
    collected: list[list[float]] = []
    since = T0
    while True:
        page = await client.fetch_ohlcv("BTC/USDT", "1m", since=since, limit=1000)
        if not page:
            break
        assert len(page) <= 1000
        collected.extend(page)
        since = page[-1][0] + MINUTE
    assert [c[0] for c in collected] == [r[0] for r in rows]
    assert [c[1:] for c in collected] == [[float(x) for x in r[1:]] for r in rows]
    klines = exchange.requests("GET", "/api/v3/klines")
    assert len(klines) == 4  # 1000 + 1000 + 500 + the empty page
    assert [k.params["limit"] for k in klines] == ["1000"] * 4
    assert klines[1].params["startTime"] == str(T0 + 1000 * MINUTE)
    default = await client.fetch_ohlcv("BTC/USDT", "1m")  # no since: Binance's newest 500
    assert len(default) == 500 and default[-1][0] == rows[-1][0]


async def test_fetch_ohlcv_hides_bars_after_the_clock_until_advanced(exchange: LoopbackExchange, client: Any) -> None:
    exchange.state.load_bars("ETH/USDT", MINUTE, ramp_rows(20), start_index=9)
    before = await client.fetch_ohlcv("ETH/USDT", "1m", since=T0)
    assert len(before) == 10
    exchange.state.advance(3)
    after = await client.fetch_ohlcv("ETH/USDT", "1m", since=T0)
    assert len(after) == 13 and after[-1][4] == 10_013.0
    hourly = await client.fetch_ohlcv("ETH/USDT", "1h", since=T0)
    assert hourly == [[T0, 10_000.0, 10_014.0, 9_999.0, 10_013.0, float(sum(range(1, 14)))]]


async def test_fetch_ticker_and_order_book_follow_the_current_bar(exchange: LoopbackExchange, client: Any) -> None:
    ticker = await client.fetch_ticker("BTC/USDT")
    bar = exchange.state.current_bar("BTC/USDT")
    assert bar is not None
    assert ticker["symbol"] == "BTC/USDT"
    assert ticker["last"] == float(bar.close) and ticker["close"] == float(bar.close)
    assert ticker["timestamp"] == exchange.state.clock_ms - 1
    day = exchange.state.bars("BTC/USDT")[-1440:]
    assert ticker["open"] == float(day[0].open)
    assert ticker["high"] == float(max(b.high for b in day)) and ticker["low"] == float(min(b.low for b in day))
    assert ticker["baseVolume"] == pytest.approx(float(sum(b.volume for b in day)))
    assert ticker["bid"] < ticker["ask"] == ticker["last"]
    book = await client.fetch_order_book("BTC/USDT", 5)
    assert len(book["bids"]) == 5 and len(book["asks"]) == 5
    assert book["asks"][0][0] == float(bar.close) and book["bids"][0][0] == pytest.approx(float(bar.close) - 0.01)
    assert [a[0] for a in book["asks"]] == sorted(a[0] for a in book["asks"])
    assert [b[0] for b in book["bids"]] == sorted((b[0] for b in book["bids"]), reverse=True)
    tickers = await client.fetch_tickers(["BTC/USDT", "ETH/USDT"])
    assert sorted(tickers) == ["BTC/USDT", "ETH/USDT"]


async def test_limit_order_lifecycle_partial_fill_fill_and_balances() -> None:
    cfg = LoopbackConfig(partial_fill_fraction=D("0.5"), initial_balances={"USDT": D("100000")})
    rows = [
        (T0, 20000, 20000, 20000, 20000, 10),
        (T0 + MINUTE, 20000, 20100, 19950, 20050, 10),
        (T0 + 2 * MINUTE, 20050, 20060, 19850, 19900, 1),
        (T0 + 3 * MINUTE, 19900, 19950, 19800, 19850, 1),
    ]
    with LoopbackExchange(cfg) as ex:
        ex.state.load_bars("BTC/USDT", MINUTE, rows, start_index=0)
        client = make_ccxt_binance(ex.url, ex.api_key, ex.secret, rate_limit_ms=1)
        try:
            order = await client.create_order("BTC/USDT", "limit", "buy", 0.8, 19900, {"clientOrderId": "lc-1"})
            assert (order["status"], order["filled"], order["clientOrderId"]) == ("open", 0.0, "lc-1")
            balance = await client.fetch_balance()
            assert balance["USDT"] == {"free": 84080.0, "used": 15920.0, "total": 100000.0}

            ex.state.advance(1)  # bar 1 stays above the limit
            assert (await client.fetch_order(order["id"], "BTC/USDT"))["filled"] == 0.0
            ex.state.advance(1)  # bar 2 crosses; volume cap 0.5 * 1 BTC
            partial = await client.fetch_order(order["id"], "BTC/USDT")
            assert partial["info"]["status"] == "PARTIALLY_FILLED"
            assert (partial["status"], partial["filled"], partial["remaining"]) == ("open", 0.5, pytest.approx(0.3))
            ex.state.advance(1)
            filled = await client.fetch_order(order["id"], "BTC/USDT")
            assert (filled["status"], filled["filled"], filled["average"]) == ("closed", 0.8, 19900.0)
            assert await client.fetch_open_orders("BTC/USDT") == []

            trades = await client.fetch_my_trades("BTC/USDT")
            assert [(t["amount"], t["price"], t["takerOrMaker"], t["side"]) for t in trades] == [
                (0.5, 19900.0, "maker", "buy"),
                (0.3, 19900.0, "maker", "buy"),
            ]
            assert [t["fee"] for t in trades] == [
                {"cost": 0.0005, "currency": "BTC"},
                {"cost": 0.0003, "currency": "BTC"},
            ]
            assert all(t["order"] == order["id"] for t in trades)

            sell = await client.create_order("BTC/USDT", "market", "sell", 0.5)
            assert (sell["status"], sell["filled"], sell["average"]) == ("closed", 0.5, 19850.0)
            assert sell["fee"] == {"cost": 9.925, "currency": "USDT"}
            balance = await client.fetch_balance()
            assert balance["BTC"]["free"] == pytest.approx(0.2992)
            assert balance["USDT"]["free"] == pytest.approx(93995.075)
            assert ex.state.balance("USDT") == Balance("USDT", D("93995.075"), D(0))
            assert ex.state.balance("BTC") == Balance("BTC", D("0.2992"), D(0))
        finally:
            await client.close()
        assert_all_calls_reached(ex, client)


async def test_market_buy_with_cost_uses_quote_order_qty(exchange: LoopbackExchange, client: Any) -> None:
    exchange.state.load_bars("BTC/USDT", MINUTE, flat_rows(2, price="25000"), start_index=0)
    order = await client.create_market_buy_order_with_cost("BTC/USDT", 500)
    assert (order["status"], order["filled"], order["cost"]) == ("closed", 0.02, 500.0)
    assert exchange.order_submissions()[-1].params["quoteOrderQty"] == "500"


async def test_cancel_and_open_orders(exchange: LoopbackExchange, client: Any) -> None:
    state = exchange.state
    state.load_bars("BTC/USDT", MINUTE, flat_rows(2, price="20000"), start_index=0)
    state.load_bars("ETH/USDT", MINUTE, flat_rows(2, price="2000"), start_index=0)
    btc = await client.create_order("BTC/USDT", "limit", "sell", 0.1, 25000)
    eth = await client.create_order("ETH/USDT", "limit", "buy", 1, 1500)
    assert [o["id"] for o in await client.fetch_open_orders("BTC/USDT")] == [btc["id"]]
    client.options["fetchOpenOrders"] = {"warnWithoutSymbol": False}
    assert sorted(o["id"] for o in await client.fetch_open_orders()) == sorted([btc["id"], eth["id"]])
    assert state.balance("BTC").locked == D("0.1")

    canceled = await client.cancel_order(btc["id"], "BTC/USDT")
    assert canceled["status"] == "canceled" and canceled["id"] == btc["id"]
    assert state.balance("BTC").locked == 0
    assert [o["id"] for o in await client.fetch_open_orders()] == [eth["id"]]
    with pytest.raises(ccxt.OrderNotFound):
        await client.cancel_order(btc["id"], "BTC/USDT")
    with pytest.raises(ccxt.OrderNotFound):
        await client.fetch_order("999999", "BTC/USDT")
    by_client_id = await client.cancel_order(None, "ETH/USDT", {"clientOrderId": eth["clientOrderId"]})
    assert by_client_id["id"] == eth["id"] and by_client_id["status"] == "canceled"
    history = await client.fetch_orders("BTC/USDT")
    assert [(o["id"], o["status"]) for o in history] == [(btc["id"], "canceled")]


async def test_duplicate_client_order_id_is_refused_and_found_by_client_id(
    exchange: LoopbackExchange, client: Any
) -> None:
    exchange.state.load_bars("BTC/USDT", MINUTE, flat_rows(2, price="20000"), start_index=0)
    first = await client.create_order("BTC/USDT", "limit", "buy", 0.1, 19000, {"clientOrderId": "approval-42"})
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        await client.create_order("BTC/USDT", "limit", "buy", 0.1, 19000, {"clientOrderId": "approval-42"})
    assert len(exchange.order_submissions()) == 2
    assert len(exchange.state.orders()) == 1
    found = await client.fetch_order(None, "BTC/USDT", {"clientOrderId": "approval-42"})
    assert found["id"] == first["id"] and found["clientOrderId"] == "approval-42"
    assert exchange.requests("GET", "/api/v3/order")[-1].params["origClientOrderId"] == "approval-42"


async def test_insufficient_funds(exchange: LoopbackExchange, client: Any) -> None:
    exchange.state.load_bars("BTC/USDT", MINUTE, flat_rows(2, price="20000"), start_index=0)
    with pytest.raises(ccxt.InsufficientFunds):
        await client.create_order("BTC/USDT", "market", "buy", 50)
    with pytest.raises(ccxt.InsufficientFunds):
        await client.create_order("BTC/USDT", "limit", "sell", 2, 21000)
    assert exchange.state.orders() == []


async def test_unknown_symbol_and_interval_are_refused_by_the_server(exchange: LoopbackExchange, client: Any) -> None:
    await client.load_markets()
    with pytest.raises(ccxt.BadSymbol):
        await client.publicGetTicker24hr({"symbol": "SOLUSDT"})
    with pytest.raises(ccxt.BadSymbol):
        await client.publicGetKlines({"symbol": "BTC/USDT", "interval": "1m"})
    with pytest.raises(ccxt.BadRequest, match="-1120"):
        await client.fetch_ohlcv("BTC/USDT", "7m")
    statuses = [(r.path, r.status) for r in exchange.requests()][1:]
    assert statuses == [("/api/v3/ticker/24hr", 400), ("/api/v3/klines", 400), ("/api/v3/klines", 400)]


async def test_fetch_balance_reports_every_asset(exchange: LoopbackExchange, client: Any) -> None:
    exchange.state.set_balance("ADA", "12.5", "2.5")
    balance = await client.fetch_balance()
    assert balance["ADA"] == {"free": 12.5, "used": 2.5, "total": 15.0}
    assert balance["USDT"]["free"] == 100000.0
    assert balance["info"]["accountType"] == "SPOT"
    assert {b["asset"] for b in balance["info"]["balances"]} >= {"BTC", "ETH", "USDT", "ADA", "DOGE"}


def test_sync_ccxt_binance_works_too() -> None:
    with LoopbackExchange() as ex:
        ex.state.load_bars("LTC/USDT", MINUTE, flat_rows(3, price="70"), start_index=1)
        ex.state.set_balance("LTC", "5")
        client = make_ccxt_binance(ex.url, ex.api_key, ex.secret, async_=False, rate_limit_ms=1)
        assert sorted(client.load_markets()) == sorted(SPOT_SYMBOLS)
        assert client.fetch_ticker("LTC/USDT")["last"] == 70.0
        order = client.create_order("LTC/USDT", "market", "sell", 1.5)
        assert (order["status"], order["filled"], order["cost"]) == ("closed", 1.5, 105.0)
        assert client.fetch_balance()["LTC"]["free"] == 3.5
        assert client.fetch_my_trades("LTC/USDT")[0]["fee"] == {"cost": 0.105, "currency": "USDT"}
        assert_all_calls_reached(ex, client)
