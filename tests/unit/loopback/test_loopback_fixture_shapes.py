"""The loopback's payloads are shaped like the recorded real Binance replies in the bundled ccxt fixtures."""

from __future__ import annotations

import hashlib
from decimal import Decimal, InvalidOperation
from importlib import resources
from typing import Any

import pytest

from tests.support.loopback import LoopbackExchange, load_markets_fixture, load_responses_fixture
from tests.unit.loopback.helpers import MINUTE, flat_rows

FIXTURE_SHA256 = {
    "binance.markets.json": "64c970fcd3484aa7373752fdf3394234b4c991a5ae121b2364f6ccfddb3657c5",
    "binance.response.json": "984ee63fdc9e91d98b5848ae715d2a7de72102f436ff3d4735e83fc2f60f16a1",
}

# (unified method, case description, HTTP method, path) of the spot cases the loopback serves
SPOT_CASES = [
    ("fetchOHLCV", "Spot OHLCV with since and limit", "GET", "/api/v3/klines"),
    ("fetchTicker", "public spot ticker", "GET", "/api/v3/ticker/24hr"),
    ("fetchOrderBook", "spot orderbook", "GET", "/api/v3/depth"),
    ("fetchBalance", "Spot balance", "GET", "/api/v3/account"),
    ("fetchMyTrades", "Spot private trade", "GET", "/api/v3/myTrades"),
    ("fetchOrder", "Fetch spot closed order", "GET", "/api/v3/order"),
    ("fetchOpenOrders", "Fetch spot open orders", "GET", "/api/v3/openOrders"),
    ("fetchOrders", "fetch spot orders", "GET", "/api/v3/allOrders"),
]


def _case(method: str, description: str) -> dict[str, Any]:
    cases = load_responses_fixture()["methods"][method]
    return next(c for c in cases if c["description"] == description)


def _matches(expected: Any, actual: Any, where: str = "$") -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict), where
        for key, value in expected.items():
            assert key in actual, f"{where}.{key} missing"
            _matches(value, actual[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), where
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            _matches(e, a, f"{where}[{i}]")
    elif isinstance(expected, float | int) and not isinstance(expected, bool):
        assert actual == pytest.approx(expected, rel=1e-12), where
    else:
        assert actual == expected, where


def _kind(value: Any) -> str:
    """JSON kind, with numeric strings and numbers alike (the fixture stores most ids as strings)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        try:
            Decimal(value)
        except InvalidOperation:
            return "string"
        return "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "null"


def _same_shape(ours: dict[str, Any], recorded: dict[str, Any], *, except_keys: tuple[str, ...] = ()) -> None:
    expected_keys = [k for k in recorded if k not in except_keys]
    assert list(ours) == expected_keys
    for key in expected_keys:
        assert _kind(ours[key]) == _kind(recorded[key]), key


def test_bundled_fixtures_are_the_verbatim_copies() -> None:
    folder = resources.files("tests.support.loopback").joinpath("fixtures")
    for name, digest in FIXTURE_SHA256.items():
        assert hashlib.sha256(folder.joinpath(name).read_bytes()).hexdigest() == digest
    assert "ccxt/ccxt" in folder.joinpath("SOURCES.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(("method", "description", "http_method", "path"), SPOT_CASES)
async def test_recorded_replies_served_verbatim_parse_to_the_recorded_ccxt_structures(
    exchange: LoopbackExchange, client: Any, method: str, description: str, http_method: str, path: str
) -> None:
    case = _case(method, description)
    await client.load_markets()
    exchange.serve_next(case["httpResponse"], method=http_method, path=path)
    parsed = await getattr(client, method)(*case["input"])
    _matches(case["parsedResponse"], parsed)
    served = exchange.requests(http_method, path)
    assert len(served) == 1 and served[0].status == 200


async def test_computed_payloads_have_the_recorded_shapes(exchange: LoopbackExchange, client: Any) -> None:
    await client.load_markets()

    klines = await client.publicGetKlines({"symbol": "BTCUSDT", "interval": "1h", "limit": 3})
    recorded_klines = _case("fetchOHLCV", "Spot OHLCV with since and limit")["httpResponse"]
    assert len(klines) == 3
    for row in klines:
        assert [type(v) for v in row] == [type(v) for v in recorded_klines[0]]
        assert row[6] - row[0] == 3_600_000 - 1

    ticker = await client.publicGetTicker24hr({"symbol": "BTCUSDT"})
    _same_shape(ticker, _case("fetchTicker", "public spot ticker")["httpResponse"])

    depth = await client.publicGetDepth({"symbol": "BTCUSDT", "limit": 2})
    recorded_depth = _case("fetchOrderBook", "spot orderbook")["httpResponse"]
    _same_shape(depth, recorded_depth)
    assert [[_kind(x) for x in level] for level in depth["bids"]] == [["number", "number"]] * 2

    exchange.state.load_bars("LTC/USDT", MINUTE, flat_rows(3, price="70"), start_index=0)
    exchange.state.set_balance("LTC", "3")
    account = await client.privateGetAccount()
    recorded_account = _case("fetchBalance", "Spot balance")["httpResponse"]
    _same_shape(account, recorded_account)
    _same_shape(account["commissionRates"], recorded_account["commissionRates"])
    _same_shape(account["balances"][0], recorded_account["balances"][0])

    created = await client.privatePostOrder(
        {"symbol": "LTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.1", "newOrderRespType": "FULL"}
    )
    # the recorded order was an iceberg order: icebergQty is only sent for those
    _same_shape(
        created, _case("createOrder", "spot +selfTradePrevention +iceberg")["httpResponse"], except_keys=("icebergQty",)
    )
    assert list(created["fills"][0]) == ["price", "qty", "commission", "commissionAsset", "tradeId"]

    queried = await client.privateGetOrder({"symbol": "LTCUSDT", "orderId": created["orderId"]})
    _same_shape(queried, _case("fetchOrder", "Fetch spot closed order")["httpResponse"])
    assert (queried["status"], queried["type"], queried["side"]) == ("FILLED", "MARKET", "SELL")

    resting = await client.privatePostOrder(
        {"symbol": "LTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.2", "price": "50"}
    )
    open_orders = await client.privateGetOpenOrders({"symbol": "LTCUSDT"})
    assert [o["orderId"] for o in open_orders] == [resting["orderId"]]
    _same_shape(open_orders[0], _case("fetchOpenOrders", "Fetch spot open orders")["httpResponse"][0])
    all_orders = await client.privateGetAllOrders({"symbol": "LTCUSDT"})
    _same_shape(all_orders[0], _case("fetchOrders", "fetch spot orders")["httpResponse"][0])

    trades = await client.privateGetMyTrades({"symbol": "LTCUSDT"})
    _same_shape(trades[0], _case("fetchMyTrades", "Spot private trade")["httpResponse"][0])
    assert (trades[0]["price"], trades[0]["qty"], trades[0]["commissionAsset"]) == ("70.00000000", "0.10000000", "USDT")

    info = await client.publicGetExchangeInfo()
    markets = load_markets_fixture()
    assert info["symbols"] == [
        markets[s]["info"]
        for s in ("BTC/USDT", "ETH/USDT", "ADA/USDT", "LTC/USDT", "XRP/USDT", "DOGE/USDT", "TRX/USDT")
    ]
    assert info["rateLimits"] == [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 1200}
    ]
    one = await client.publicGetExchangeInfo({"symbol": "ETHUSDT"})
    assert [s["symbol"] for s in one["symbols"]] == ["ETHUSDT"]
