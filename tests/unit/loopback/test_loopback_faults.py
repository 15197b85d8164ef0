"""Authentication, rate limiting, fault injection and the loopback-only guard, seen through ccxt and raw HTTP."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import ccxt
import httpx
import pytest

from tests.support.loopback import LoopbackConfig, LoopbackExchange, loopback_guard, make_ccxt_binance
from tests.unit.loopback.helpers import MINUTE, assert_all_calls_reached, flat_rows


def _signed_query(secret: str, **params: Any) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    signature = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    return f"{query}&signature={signature}"


def _now() -> int:
    return int(time.time() * 1000)


async def test_wrong_secret_is_an_authentication_error_and_signatures_are_not_logged(
    exchange: LoopbackExchange,
) -> None:
    client = make_ccxt_binance(exchange.url, exchange.api_key, "not-the-secret", rate_limit_ms=1)
    try:
        with pytest.raises(ccxt.AuthenticationError, match="-1022"):
            await client.fetch_balance()
    finally:
        await client.close()
    account = exchange.requests("GET", "/api/v3/account")
    assert [r.status for r in account] == [400]
    assert "signature" not in account[0].params and "timestamp" in account[0].params
    assert_all_calls_reached(exchange, client)


async def test_wrong_api_key_is_an_authentication_error(exchange: LoopbackExchange) -> None:
    client = make_ccxt_binance(exchange.url, "someone-else", exchange.secret, rate_limit_ms=1)
    try:
        await client.load_markets()
        with pytest.raises(ccxt.AuthenticationError, match="-2015"):
            await client.fetch_open_orders("BTC/USDT")
    finally:
        await client.close()
    assert exchange.requests("GET", "/api/v3/openOrders")[0].status == 401
    assert exchange.state.orders() == []


async def test_stale_timestamp_is_outside_the_recv_window(exchange: LoopbackExchange) -> None:
    client = make_ccxt_binance(exchange.url, exchange.api_key, exchange.secret, rate_limit_ms=1)
    client.options["timeDifference"] = 120_000  # ccxt signs with a timestamp two minutes in the past
    try:
        with pytest.raises(ccxt.InvalidNonce, match="-1021"):
            await client.fetch_balance()
    finally:
        await client.close()


def test_raw_signed_requests_check_key_signature_and_window(exchange: LoopbackExchange) -> None:
    secret = exchange.secret
    with httpx.Client(base_url=exchange.url, trust_env=False) as http:
        no_key = http.get(f"/api/v3/account?{_signed_query(secret, timestamp=_now())}")
        assert (no_key.status_code, no_key.json()["code"]) == (401, -2014)
        headers = {"X-MBX-APIKEY": exchange.api_key}
        ok = http.get(f"/api/v3/account?{_signed_query(secret, timestamp=_now())}", headers=headers)
        assert ok.status_code == 200 and ok.json()["accountType"] == "SPOT"
        unsigned = http.get(f"/api/v3/account?timestamp={_now()}", headers=headers)
        assert (unsigned.status_code, unsigned.json()["code"]) == (400, -1102)
        tampered = _signed_query(secret, timestamp=_now()).replace("timestamp=", "timestamp=1")
        assert http.get(f"/api/v3/account?{tampered}", headers=headers).json()["code"] == -1022
        future = http.get(f"/api/v3/account?{_signed_query(secret, timestamp=_now() + 60_000)}", headers=headers)
        assert future.json()["code"] == -1021
        wide = http.get(
            f"/api/v3/account?{_signed_query(secret, timestamp=_now(), recvWindow=70_000)}", headers=headers
        )
        assert wide.json()["code"] == -1131
        # query string + body are signed together (Binance's totalParams)
        query = f"symbol=BTCUSDT&side=BUY&type=MARKET&timestamp={_now()}"
        body = "quantity=0.001"
        sig = hmac.new(secret.encode(), (query + body).encode(), hashlib.sha256).hexdigest()
        mixed = http.post(
            f"/api/v3/order?{query}",
            content=f"{body}&signature={sig}",
            headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert mixed.status_code == 200 and mixed.json()["status"] == "FILLED"
        extra = http.get(f"/api/v3/account?{_signed_query(secret, timestamp=_now(), bogus=1)}", headers=headers)
        assert extra.json() == {
            "code": -1104,
            "msg": "Not all sent parameters were read; read '1' parameter(s) but was sent '2'.",
        }


async def test_rate_limit_answers_429_with_retry_after_and_ccxt_raises_ddos_protection() -> None:
    with LoopbackExchange(LoopbackConfig(rate_limit_requests=3, rate_limit_window_s=30)) as ex:
        async with httpx.AsyncClient(base_url=ex.url, trust_env=False) as http:
            answers = [await http.get("/api/v3/ping") for _ in range(3)]
            assert [a.headers["X-MBX-USED-WEIGHT-1M"] for a in answers] == ["1", "2", "3"]
            limited = await http.get("/api/v3/ping")
            assert limited.status_code == 429 and limited.json()["code"] == -1003
            assert 1 <= int(limited.headers["Retry-After"]) <= 30
            assert limited.headers["X-MBX-USED-WEIGHT-1M"] == "3"
        client = make_ccxt_binance(ex.url, ex.api_key, ex.secret, rate_limit_ms=1)
        try:
            # ccxt's binance.handle_errors raises DDoSProtection on 429 before looking at the -1003 code
            with pytest.raises(ccxt.DDoSProtection, match="429"):
                await client.fetch_time()
            ex.reset_rate_limit()
            assert await client.fetch_time() > 0
        finally:
            await client.close()


async def test_injected_503_is_exchange_not_available_and_then_recovers(
    exchange: LoopbackExchange, client: Any
) -> None:
    exchange.fail_next(2, 503)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await client.fetch_time()
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await client.fetch_time()
    assert await client.fetch_time() > 0
    exchange.fail_next(1, 504, path="/api/v3/depth")
    await client.load_markets()
    with pytest.raises(ccxt.RequestTimeout):
        await client.fetch_order_book("BTC/USDT")
    exchange.fail_next(1, 400, code=-1013, msg="Filter failure: LOT_SIZE", method="POST")
    with pytest.raises(ccxt.InvalidOrder):
        await client.create_order("BTC/USDT", "market", "buy", 0.001)
    assert exchange.state.orders() == []
    assert [r.status for r in exchange.requests()] == [503, 503, 200, 200, 504, 400]


@pytest.mark.parametrize(
    ("mode", "status", "error"), [("close", None, ccxt.NetworkError), ("status", 502, ccxt.ExchangeNotAvailable)]
)
async def test_drop_after_submit_keeps_the_order_and_a_retry_never_doubles_it(
    exchange: LoopbackExchange, client: Any, mode: str, status: int | None, error: type[Exception]
) -> None:
    exchange.state.load_bars("BTC/USDT", MINUTE, flat_rows(2, price="20000"), start_index=0)
    exchange.drop_after_submit_next(mode=mode)  # type: ignore[arg-type]
    with pytest.raises(error):
        await client.create_order("BTC/USDT", "market", "buy", 0.01, None, {"clientOrderId": "appr-7"})
    assert [o.status for o in exchange.state.orders()] == ["FILLED"]  # the exchange did take it
    assert exchange.order_submissions()[0].status == status
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):  # a blind retry is refused
        await client.create_order("BTC/USDT", "market", "buy", 0.01, None, {"clientOrderId": "appr-7"})
    recovered = await client.fetch_order(None, "BTC/USDT", {"clientOrderId": "appr-7"})
    assert (recovered["status"], recovered["filled"]) == ("closed", 0.01)
    assert len(exchange.order_submissions()) == 2 and len(exchange.state.orders()) == 1


async def test_injected_latency_times_out_the_client(exchange: LoopbackExchange) -> None:
    client = make_ccxt_binance(exchange.url, exchange.api_key, exchange.secret, rate_limit_ms=1, timeout_ms=150)
    exchange.set_latency(0.6, n=1, path="/api/v3/time")
    try:
        with pytest.raises(ccxt.RequestTimeout):  # 150 ms allowed, the answer comes after 600 ms
            await client.fetch_time()
        assert await client.fetch_time() > 0
    finally:
        await client.close()


async def test_guard_refuses_non_loopback_urls_and_unknown_endpoints_are_404(
    exchange: LoopbackExchange, client: Any
) -> None:
    with pytest.raises(ccxt.NotSupported, match="refuses"):
        await client.fetch("https://api.binance.com/api/v3/ping")
    guard = loopback_guard(client)
    assert guard.refused == ["https://api.binance.com/api/v3/ping"]
    assert exchange.requests() == []
    guard.refused.clear()
    assert all(v.startswith(exchange.url) for v in client.urls["api"].values())
    with pytest.raises(ccxt.ExchangeNotAvailable, match="404"):
        await client.sapiGetCapitalConfigGetall()
    assert [(r.path, r.status) for r in exchange.requests()] == [("/sapi/v1/capital/config/getall", 404)]


def test_loopback_config_refuses_non_loopback_hosts() -> None:
    with pytest.raises(ValueError, match="loopback"):
        LoopbackConfig(host="0.0.0.0")
    assert LoopbackConfig(host="::1").host == "::1"


def test_server_lifecycle_frees_the_port() -> None:
    ex = LoopbackExchange().start()
    url = ex.url
    assert httpx.get(f"{url}/api/v3/ping", trust_env=False).json() == {}
    ex.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/api/v3/ping", trust_env=False, timeout=1)
    with pytest.raises(RuntimeError):
        LoopbackExchange().port  # noqa: B018


async def test_a_failing_handler_answers_binance_internal_error(
    exchange: LoopbackExchange, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(symbol: str) -> None:
        raise RuntimeError(f"bug for {symbol}")

    monkeypatch.setattr(exchange.state, "ticker_24h", boom)
    await client.load_markets()
    with pytest.raises(ccxt.OperationFailed, match="-1000"):
        await client.fetch_ticker("BTC/USDT")
    assert exchange.requests("GET", "/api/v3/ticker/24hr")[0].status == 500
    assert await client.fetch_time() > 0  # the server keeps serving
