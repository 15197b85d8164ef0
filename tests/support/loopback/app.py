"""The loopback exchange's HTTP app (aiohttp): Binance spot REST endpoints over an ExchangeState.

Every request is logged (signature removed), may be delayed or failed by the fault injector, counts
against a rolling-window rate limit (``X-MBX-USED-WEIGHT-1M`` on every answer, 429/-1003 with
``Retry-After`` over the limit), and signed endpoints check ``X-MBX-APIKEY``, the HMAC-SHA256
``signature`` of query string + body, ``timestamp`` and ``recvWindow`` as Binance does.

Endpoints served (all under ``/api/v3``):

====== ================ =======  =========================================================
method path             signed   notes
====== ================ =======  =========================================================
GET    /ping            no       ``{}``
GET    /time            no       wall-clock ``serverTime`` (request signing uses it)
GET    /exchangeInfo    no       fixture ``info`` entries; ``symbol``/``symbols`` filters
GET    /klines          no       also ``/uiKlines``; Binance paging semantics
GET    /depth           no       synthetic book around the last price
GET    /ticker/24hr     no       one symbol, ``symbols=[...]`` or all
POST   /order           yes      LIMIT, LIMIT_MAKER, MARKET; ACK/RESULT/FULL
GET    /order           yes      by ``orderId`` or ``origClientOrderId``
DELETE /order           yes
GET    /openOrders      yes      with or without ``symbol``
DELETE /openOrders      yes      cancel all of a symbol
GET    /allOrders       yes
GET    /account         yes
GET    /myTrades        yes
====== ================ =======  =========================================================

and ``GET /sapi/v1/account/apiRestrictions`` (signed; what the API key may do, from
``LoopbackConfig.api_key_restrictions``; not served, 404, when that is None).

Anything else answers 404 with a plain-text body (ccxt: ExchangeNotAvailable) and is logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import parse_qsl

from aiohttp import web

from engine.telemetry import get_logger
from tests.support.loopback import errors
from tests.support.loopback.config import LoopbackConfig
from tests.support.loopback.errors import BinanceApiError
from tests.support.loopback.models import (
    AccountInfo,
    AccountParams,
    AccountTrade,
    AllOrdersParams,
    ApiRestrictionsParams,
    ApiRestrictionsPayload,
    BalancePayload,
    CancelOpenOrdersParams,
    CancelOrderParams,
    CancelResult,
    CommissionRates,
    DepthParams,
    DepthPayload,
    ExchangeInfo,
    ExchangeInfoParams,
    KlinesParams,
    LoggedRequest,
    MyTradesParams,
    NewOrderParams,
    OpenOrdersParams,
    OrderAck,
    OrderFull,
    OrderQuery,
    OrderQueryParams,
    OrderResult,
    RateLimit,
    SignedParams,
    Ticker24hPayload,
    TickerParams,
    fmt,
    kline_row,
)
from tests.support.loopback.state import ExchangeState, OrderRequest, Side, TimeInForce

log = get_logger(__name__)

API_PREFIX = "/api/v3"
API_RESTRICTIONS_PATH = "/sapi/v1/account/apiRestrictions"
ORDER_PATH = f"{API_PREFIX}/order"
USED_WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
API_KEY_HEADER = "X-MBX-APIKEY"
DropMode = Literal["close", "status"]
_DropRuleMode = Literal["close", "status", "hold"]


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


# ---------------------------------------------------------------------------------------------------
# rate limit, request log, faults
# ---------------------------------------------------------------------------------------------------
class RollingWindowLimiter:
    """Counts requests in a rolling window; thread-safe."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._hits: deque[float] = deque()
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        while self._hits and self._hits[0] <= now - self.window_s:
            self._hits.popleft()

    def acquire(self) -> tuple[bool, int, int]:
        """Count one request if allowed: (allowed, used in window, seconds until a slot frees)."""
        now = time.monotonic()
        with self._lock:
            self._expire(now)
            if len(self._hits) >= self.limit:
                retry_after = max(1, int(self._hits[0] + self.window_s - now + 0.999))
                return False, len(self._hits), retry_after
            self._hits.append(now)
            return True, len(self._hits), 0

    def used(self) -> int:
        with self._lock:
            self._expire(time.monotonic())
            return len(self._hits)

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()


class RequestLog:
    """Every request received, in arrival order, without signatures; thread-safe.

    An entry is added when a request arrives (``status=None``) and completed when it is answered, so a
    request that is still in flight, or whose connection was dropped on purpose, shows ``status=None``.
    """

    def __init__(self) -> None:
        self._entries: dict[int, LoggedRequest] = {}
        self._lock = threading.Lock()
        self._seq = 0

    def open(self, method: str, path: str, params: dict[str, str], api_key_sent: bool) -> int:
        with self._lock:
            self._seq += 1
            self._entries[self._seq] = LoggedRequest(
                seq=self._seq,
                method=method,
                path=path,
                params=params,
                api_key_sent=api_key_sent,
                status=None,
                wall_time_ms=wall_ms(),
            )
            return self._seq

    def close(self, seq: int, status: int | None) -> None:
        with self._lock:
            entry = self._entries.get(seq)
            if entry is not None:
                self._entries[seq] = entry.model_copy(update={"status": status})

    def entries(self, method: str | None = None, path: str | None = None) -> list[LoggedRequest]:
        with self._lock:
            return [
                e
                for e in self._entries.values()
                if (method is None or e.method == method.upper()) and (path is None or e.path == path)
            ]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


@dataclass
class _Failure:
    remaining: int
    status: int
    code: int | None
    msg: str | None
    method: str | None
    path: str | None
    retry_after_s: int | None


@dataclass
class _Drop:
    remaining: int
    mode: _DropRuleMode
    status: int
    hold_s: float = 0.0


@dataclass
class _Canned:
    remaining: int
    payload: Any
    status: int
    method: str
    path: str


@dataclass
class _Latency:
    seconds: float
    remaining: int | None
    method: str | None
    path: str | None


def _matches(method: str | None, path: str | None, req_method: str, req_path: str) -> bool:
    return (method is None or method.upper() == req_method) and (path is None or path == req_path)


class FaultInjector:
    """Programmable failures for tests; thread-safe. Rules apply in the order they were added."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: list[_Failure] = []
        self._drops: list[_Drop] = []
        self._latencies: list[_Latency] = []
        self._canned: list[_Canned] = []
        self._holds_released = threading.Event()

    def fail_next(
        self,
        n: int = 1,
        status: int = HTTPStatus.SERVICE_UNAVAILABLE,
        *,
        code: int | None = None,
        msg: str | None = None,
        method: str | None = None,
        path: str | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        """Answer the next ``n`` matching requests with ``status`` instead of processing them.

        Without ``code`` the body is plain text (like a gateway error) so ccxt maps the HTTP status
        (503 -> ExchangeNotAvailable, 504 -> RequestTimeout, 429 -> DDoSProtection). With ``code`` the
        body is Binance's ``{"code": code, "msg": msg}`` and ccxt maps the code.
        """
        with self._lock:
            self._failures.append(_Failure(n, int(status), code, msg, method, path, retry_after_s))

    def drop_after_submit_next(
        self, n: int = 1, *, mode: DropMode = "close", status: int = HTTPStatus.BAD_GATEWAY
    ) -> None:
        """For the next ``n`` orders the exchange *accepts* (POST /api/v3/order), keep the order but lose the
        answer: ``mode="close"`` aborts the connection (ccxt: ExchangeNotAvailable / NetworkError),
        ``mode="status"`` answers ``status`` with a plain-text body."""
        with self._lock:
            self._drops.append(_Drop(n, mode, int(status)))

    def hold_after_submit_next(self, seconds: float, n: int = 1) -> None:
        """For the next ``n`` orders the exchange *accepts* (POST /api/v3/order), keep the order and hold the
        answer ``seconds`` before sending it: the order is live at the venue while its submitter still waits
        (a client killed meanwhile never learns the outcome). The request log shows ``status=None`` while held."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        with self._lock:
            self._drops.append(_Drop(n, "hold", 0, float(seconds)))

    def set_latency(
        self, seconds: float, *, n: int | None = None, method: str | None = None, path: str | None = None
    ) -> None:
        """Delay matching requests by ``seconds`` (the next ``n`` of them, or all while set)."""
        with self._lock:
            self._latencies.append(_Latency(seconds, n, method, path))

    def serve_next(self, payload: Any, *, method: str, path: str, n: int = 1, status: int = HTTPStatus.OK) -> None:
        """Answer the next ``n`` requests to ``method path`` with ``payload`` verbatim (JSON) instead of the
        computed answer, after the usual checks (rate limit, signature). Replays recorded responses."""
        with self._lock:
            self._canned.append(_Canned(n, payload, int(status), method.upper(), path))

    def release_holds(self) -> None:
        """Answer every held order now (and stop holding later ones): the server is stopping."""
        self._holds_released.set()

    async def hold(self, seconds: float) -> None:
        """Wait ``seconds``, or less if ``release_holds`` is called meanwhile."""
        deadline = time.monotonic() + seconds
        while not self._holds_released.is_set() and (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, 0.05))

    def clear(self) -> None:
        with self._lock:
            self._failures.clear()
            self._drops.clear()
            self._latencies.clear()
            self._canned.clear()

    def take_canned(self, method: str, path: str) -> _Canned | None:
        with self._lock:
            for rule in self._canned:
                if rule.remaining > 0 and rule.method == method and rule.path == path:
                    rule.remaining -= 1
                    return rule
            self._canned = [r for r in self._canned if r.remaining > 0]
            return None

    def take_failure(self, method: str, path: str) -> _Failure | None:
        with self._lock:
            for rule in self._failures:
                if rule.remaining > 0 and _matches(rule.method, rule.path, method, path):
                    rule.remaining -= 1
                    return rule
            self._failures = [r for r in self._failures if r.remaining > 0]
            return None

    def take_drop(self) -> _Drop | None:
        with self._lock:
            for rule in self._drops:
                if rule.remaining > 0:
                    rule.remaining -= 1
                    return rule
            self._drops = [r for r in self._drops if r.remaining > 0]
            return None

    def take_latency(self, method: str, path: str) -> float:
        with self._lock:
            total = 0.0
            for rule in self._latencies:
                if (rule.remaining is None or rule.remaining > 0) and _matches(rule.method, rule.path, method, path):
                    total += rule.seconds
                    if rule.remaining is not None:
                        rule.remaining -= 1
            self._latencies = [r for r in self._latencies if r.remaining is None or r.remaining > 0]
            return total


# ---------------------------------------------------------------------------------------------------
# the app
# ---------------------------------------------------------------------------------------------------
Handler = Callable[[dict[str, str]], Any]


@dataclass(frozen=True)
class _Route:
    handler: Handler
    signed: bool


def _split_signature(raw: str) -> tuple[str, str | None]:
    """(raw without the signature parameter, the signature) keeping the original order and encoding."""
    kept: list[str] = []
    signature: str | None = None
    for part in raw.split("&") if raw else []:
        if part.startswith("signature="):
            signature = part[len("signature=") :]
        else:
            kept.append(part)
    return "&".join(kept), signature


def _symbols_param(raw: str) -> list[str]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise errors.illegal_parameter("symbols") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise errors.illegal_parameter("symbols")
    return value


def _side(value: str) -> Side:
    if value == "BUY":
        return "BUY"
    if value == "SELL":
        return "SELL"
    raise errors.invalid_side()


def _time_in_force(value: str | None) -> TimeInForce | None:
    if value is None:
        return None
    if value in ("GTC", "IOC", "FOK"):
        return value  # type: ignore[return-value]
    raise errors.invalid_time_in_force()


_KNOWN_ORDER_TYPES = frozenset(
    {"LIMIT", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT", "LIMIT_MAKER"}
)
_SUPPORTED_ORDER_TYPES = frozenset({"LIMIT", "MARKET", "LIMIT_MAKER"})


class LoopbackApp:
    """Builds the aiohttp application serving ``state``."""

    def __init__(
        self,
        state: ExchangeState,
        *,
        request_log: RequestLog | None = None,
        faults: FaultInjector | None = None,
        limiter: RollingWindowLimiter | None = None,
    ) -> None:
        self.state = state
        self.config: LoopbackConfig = state.config
        self.request_log = request_log or RequestLog()
        self.faults = faults or FaultInjector()
        self.limiter = limiter or RollingWindowLimiter(self.config.rate_limit_requests, self.config.rate_limit_window_s)
        self._secret = self.config.api_secret.get_secret_value().encode()
        p = API_PREFIX
        self.routes: dict[tuple[str, str], _Route] = {
            ("GET", f"{p}/ping"): _Route(lambda _: {}, signed=False),
            ("GET", f"{p}/time"): _Route(lambda _: {"serverTime": wall_ms()}, signed=False),
            ("GET", f"{p}/exchangeInfo"): _Route(self._exchange_info, signed=False),
            ("GET", f"{p}/klines"): _Route(self._klines, signed=False),
            ("GET", f"{p}/uiKlines"): _Route(self._klines, signed=False),
            ("GET", f"{p}/depth"): _Route(self._depth, signed=False),
            ("GET", f"{p}/ticker/24hr"): _Route(self._ticker_24hr, signed=False),
            ("POST", ORDER_PATH): _Route(self._new_order, signed=True),
            ("GET", ORDER_PATH): _Route(self._get_order, signed=True),
            ("DELETE", ORDER_PATH): _Route(self._cancel_order, signed=True),
            ("GET", f"{p}/openOrders"): _Route(self._open_orders, signed=True),
            ("DELETE", f"{p}/openOrders"): _Route(self._cancel_open_orders, signed=True),
            ("GET", f"{p}/allOrders"): _Route(self._all_orders, signed=True),
            ("GET", f"{p}/account"): _Route(self._account, signed=True),
            ("GET", f"{p}/myTrades"): _Route(self._my_trades, signed=True),
        }
        if self.config.api_key_restrictions is not None:
            self.routes[("GET", API_RESTRICTIONS_PATH)] = _Route(self._api_restrictions, signed=True)

    def build(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    # --- request pipeline --------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        method = request.method.upper()
        path = request.path
        raw_query = request.rel_url.raw_query_string
        body = await request.text() if request.can_read_body else ""
        params: dict[str, str] = {}
        for raw in (raw_query, body):
            params.update(parse_qsl(raw, keep_blank_values=True))
        logged_params = {k: v for k, v in params.items() if k != "signature"}
        seq = self.request_log.open(method, path, logged_params, bool(request.headers.get(API_KEY_HEADER)))
        status: int | None = None
        try:
            response = await self._respond(request, method, path, raw_query, body, params)
            status = response.status
            if method == "POST" and path == ORDER_PATH and response.status == HTTPStatus.OK:
                drop = self.faults.take_drop()
                if drop is not None and drop.mode == "hold":
                    status = None  # in flight: the order is placed, the answer is not sent yet
                    log.info("loopback.hold_answer", path=path, seq=seq, seconds=drop.hold_s)
                    await self.faults.hold(drop.hold_s)
                    status = response.status
                    return response
                if drop is not None and drop.mode == "close":
                    status = None
                    log.info("loopback.drop_connection", path=path, seq=seq)
                    if request.transport is not None:
                        request.transport.abort()
                    raise web.HTTPInternalServerError()  # never reaches the client: the socket is gone
                if drop is not None:
                    status = drop.status
                    weight = {USED_WEIGHT_HEADER: response.headers.get(USED_WEIGHT_HEADER, "0")}
                    return self._plain(drop.status, "loopback: order accepted, answer lost", weight)
            return response
        finally:
            self.request_log.close(seq, status)

    async def _respond(
        self, request: web.Request, method: str, path: str, raw_query: str, body: str, params: dict[str, str]
    ) -> web.Response:
        delay = self.faults.take_latency(method, path)
        if delay > 0:
            await asyncio.sleep(delay)
        allowed, used, retry_after = self.limiter.acquire()
        headers = {USED_WEIGHT_HEADER: str(used)}
        if not allowed:
            err = errors.too_many_requests(self.config.rate_limit_requests, self.config.rate_limit_window_s)
            return self._error(err, {**headers, "Retry-After": str(retry_after)})
        failure = self.faults.take_failure(method, path)
        if failure is not None:
            if failure.retry_after_s is not None:
                headers["Retry-After"] = str(failure.retry_after_s)
            if failure.code is not None:
                err = BinanceApiError(failure.code, failure.msg or "Injected failure.", failure.status)
                return self._error(err, headers)
            return self._plain(failure.status, failure.msg or "loopback: injected failure", headers)
        route = self.routes.get((method, path))
        if route is None:
            return self._plain(HTTPStatus.NOT_FOUND, f"loopback: no endpoint {method} {path}", headers)
        try:
            if route.signed:
                self._authenticate(request, raw_query, body, params)
            canned = self.faults.take_canned(method, path)
            payload = canned.payload if canned is not None else route.handler(params)
        except BinanceApiError as exc:
            return self._error(exc, headers)
        except Exception:  # a loopback bug: answer like Binance's internal error, keep serving
            log.exception("loopback.handler_failed", method=method, path=path)
            return self._error(errors.unknown_error(), headers)
        return web.Response(
            status=canned.status if canned is not None else HTTPStatus.OK,
            text=json.dumps(payload, separators=(",", ":")),
            content_type="application/json",
            headers=headers,
        )

    @staticmethod
    def _error(exc: BinanceApiError, headers: dict[str, str]) -> web.Response:
        return web.Response(
            status=exc.http_status,
            text=json.dumps(exc.payload(), separators=(",", ":")),
            content_type="application/json",
            headers=headers,
        )

    @staticmethod
    def _plain(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(status=status, text=text, content_type="text/plain", headers=headers)

    def _authenticate(self, request: web.Request, raw_query: str, body: str, params: dict[str, str]) -> None:
        api_key = request.headers.get(API_KEY_HEADER, "")
        if not api_key:
            raise errors.api_key_format_invalid()
        if not hmac.compare_digest(api_key.encode(), self.config.api_key.encode()):
            raise errors.invalid_api_key()
        query_unsigned, query_sig = _split_signature(raw_query)
        body_unsigned, body_sig = _split_signature(body)
        signature = query_sig if query_sig is not None else body_sig
        if "timestamp" not in params or params["timestamp"] == "":
            raise errors.mandatory_parameter("timestamp")
        if not signature:
            raise errors.mandatory_parameter("signature")
        expected = hmac.new(self._secret, (query_unsigned + body_unsigned).encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise errors.bad_signature()
        SignedParams.parse({k: params[k] for k in ("timestamp", "recvWindow") if k in params})
        timestamp = int(params["timestamp"])
        recv_window = int(params.get("recvWindow") or self.config.default_recv_window_ms)
        if recv_window > self.config.max_recv_window_ms:
            raise errors.recv_window_too_large(self.config.max_recv_window_ms)
        now = wall_ms()
        if timestamp >= now + self.config.max_clock_ahead_ms or now - timestamp > recv_window:
            raise errors.outside_recv_window()

    @staticmethod
    def _unsigned(params: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in params.items() if k != "signature"}

    # --- public endpoints --------------------------------------------------------------------------
    def _rate_limits(self) -> list[RateLimit]:
        window = self.config.rate_limit_window_s
        if window >= 60 and window % 60 == 0:
            interval, num = "MINUTE", int(window // 60)
        else:
            interval, num = "SECOND", max(1, int(window))
        return [RateLimit(rateLimitType="REQUEST_WEIGHT", interval=interval, intervalNum=num,
                          limit=self.config.rate_limit_requests)]  # fmt: skip

    def _exchange_info(self, params: dict[str, str]) -> Any:
        q: ExchangeInfoParams = ExchangeInfoParams.parse(params)
        if q.symbol is not None and q.symbols is not None:
            raise errors.BinanceApiError(-1106, "Parameter 'symbols' sent when not required.")
        wanted = [q.symbol] if q.symbol is not None else _symbols_param(q.symbols) if q.symbols is not None else None
        if wanted is None:
            specs = list(self.state.markets)
        else:
            specs = [self.state.markets.get(self._market_id(s)) for s in wanted]
        info = ExchangeInfo(serverTime=wall_ms(), rateLimits=self._rate_limits(), symbols=[s.info for s in specs])
        return info.wire()

    def _market_id(self, symbol: str) -> str:
        """Binance ids only on the wire (``BTC/USDT`` is an invalid symbol there)."""
        spec = self.state.markets.find(symbol)
        if spec is None or spec.id != symbol:
            raise errors.invalid_symbol()
        return spec.id

    def _klines(self, params: dict[str, str]) -> Any:
        q: KlinesParams = KlinesParams.parse(params)
        symbol = self._market_id(q.symbol)
        rows = self.state.klines(symbol, q.interval, q.startTime, q.endTime, q.limit)
        return [kline_row(k) for k in rows]

    def _depth(self, params: dict[str, str]) -> Any:
        q: DepthParams = DepthParams.parse(params)
        return DepthPayload.of(self.state.order_book(self._market_id(q.symbol), q.limit)).wire()

    def _ticker_24hr(self, params: dict[str, str]) -> Any:
        q: TickerParams = TickerParams.parse(params)
        if q.symbol is not None and q.symbols is not None:
            raise errors.BinanceApiError(-1106, "Parameter 'symbols' sent when not required.")
        if q.symbol is not None:
            return Ticker24hPayload.of(self.state.ticker_24h(self._market_id(q.symbol))).wire()
        ids = [self._market_id(s) for s in _symbols_param(q.symbols)] if q.symbols else self.state.markets.ids
        return [Ticker24hPayload.of(self.state.ticker_24h(i)).wire() for i in ids]

    # --- signed endpoints --------------------------------------------------------------------------
    def _new_order(self, params: dict[str, str]) -> Any:
        q: NewOrderParams = NewOrderParams.parse(self._unsigned(params))
        symbol = self._market_id(q.symbol)
        side = _side(q.side)
        if q.type not in _KNOWN_ORDER_TYPES:
            raise errors.invalid_order_type()
        if q.type not in _SUPPORTED_ORDER_TYPES:
            raise errors.unsupported_order_type(q.type)
        for name in ("stopPrice", "trailingDelta", "icebergQty"):
            if getattr(q, name) is not None:
                raise errors.parameter_not_required(name)
        order = self.state.place_order(
            OrderRequest(
                symbol=symbol,
                side=side,
                type=q.type,  # type: ignore[arg-type]
                quantity=q.quantity,
                quote_order_qty=q.quoteOrderQty,
                price=q.price,
                time_in_force=_time_in_force(q.timeInForce),
                client_order_id=q.newClientOrderId,
                self_trade_prevention_mode=q.selfTradePreventionMode,
            )
        )
        kind = q.newOrderRespType or "FULL"
        if kind == "ACK":
            return OrderAck.of(order).wire()
        if kind == "RESULT":
            return OrderResult.of(order).wire()
        return OrderFull.of(order).wire()

    def _get_order(self, params: dict[str, str]) -> Any:
        q: OrderQueryParams = OrderQueryParams.parse(self._unsigned(params))
        order = self.state.get_order(self._market_id(q.symbol), q.orderId, q.origClientOrderId)
        return OrderQuery.of(order).wire()

    def _cancel_order(self, params: dict[str, str]) -> Any:
        q: CancelOrderParams = CancelOrderParams.parse(self._unsigned(params))
        order = self.state.cancel_order(self._market_id(q.symbol), q.orderId, q.origClientOrderId)
        cancel_id = q.newClientOrderId or f"cancel{order.order_id}"
        return CancelResult.of(order, cancel_id).wire()

    def _open_orders(self, params: dict[str, str]) -> Any:
        q: OpenOrdersParams = OpenOrdersParams.parse(self._unsigned(params))
        symbol = None if q.symbol is None else self._market_id(q.symbol)
        return [OrderQuery.of(o).wire() for o in self.state.open_orders(symbol)]

    def _cancel_open_orders(self, params: dict[str, str]) -> Any:
        q: CancelOpenOrdersParams = CancelOpenOrdersParams.parse(self._unsigned(params))
        orders = self.state.cancel_open_orders(self._market_id(q.symbol))
        return [CancelResult.of(o, f"cancel{o.order_id}").wire() for o in orders]

    def _all_orders(self, params: dict[str, str]) -> Any:
        q: AllOrdersParams = AllOrdersParams.parse(self._unsigned(params))
        orders = self.state.all_orders(self._market_id(q.symbol), q.orderId, q.startTime, q.endTime, q.limit)
        return [OrderQuery.of(o).wire() for o in orders]

    def _my_trades(self, params: dict[str, str]) -> Any:
        q: MyTradesParams = MyTradesParams.parse(self._unsigned(params))
        fills = self.state.my_trades(self._market_id(q.symbol), q.orderId, q.startTime, q.endTime, q.fromId, q.limit)
        return [AccountTrade.of(f).wire() for f in fills]

    def _account(self, params: dict[str, str]) -> Any:
        q: AccountParams = AccountParams.parse(self._unsigned(params))
        cfg = self.config
        balances = self.state.balances()
        if q.omitZeroBalances == "true":
            balances = [b for b in balances if b.total != 0]
        bps = Decimal(10_000)
        info = AccountInfo(
            makerCommission=int(cfg.maker_fee_rate * bps),
            takerCommission=int(cfg.taker_fee_rate * bps),
            commissionRates=CommissionRates(
                maker=fmt(cfg.maker_fee_rate),
                taker=fmt(cfg.taker_fee_rate),
                buyer=fmt(Decimal(0)),
                seller=fmt(Decimal(0)),
            ),
            updateTime=self.state.clock_ms,
            balances=[BalancePayload.of(b) for b in balances],
            uid=cfg.uid,
        )
        return info.wire()

    def _api_restrictions(self, params: dict[str, str]) -> Any:
        ApiRestrictionsParams.parse(self._unsigned(params))
        restrictions = self.config.api_key_restrictions
        if restrictions is None:  # the route is only registered when set
            raise errors.unknown_error()
        return ApiRestrictionsPayload.of(restrictions).wire()
