"""Pydantic models of the loopback's HTTP boundary: request parameters in, Binance-shaped payloads out.

Field names are Binance's wire names (camelCase, including Binance's ``cummulativeQuoteQty``) and their
order follows the recorded responses in ``fixtures/binance.response.json``. Types follow the live API:
prices and quantities are strings with 8 decimals, ids and timestamps are integers.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from tests.support.loopback import errors
from tests.support.loopback.config import ApiKeyRestrictions
from tests.support.loopback.state import Balance, Fill, Kline, Order, OrderBook, Ticker24h

_DECIMAL = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
_INTEGER = re.compile(r"^-?[0-9]{1,20}$")


def _decimal(value: Any) -> Any:
    if isinstance(value, str) and not _DECIMAL.match(value):
        raise ValueError("not a Binance decimal")
    return value


def _integer(value: Any) -> Any:
    if isinstance(value, str) and not _INTEGER.match(value):
        raise ValueError("not an integer")
    return value


BinanceDecimal = Annotated[Decimal, BeforeValidator(_decimal)]
BinanceInt = Annotated[int, BeforeValidator(_integer)]


def fmt(value: Decimal, decimals: int = 8) -> str:
    """Binance's decimal strings: fixed point, 8 decimals by default."""
    return f"{value:.{decimals}f}"


# ---------------------------------------------------------------------------------------------------
# requests
# ---------------------------------------------------------------------------------------------------
class Params(BaseModel):
    """Base of every request-parameter model: unknown parameters are refused like Binance (-1104)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def parse(cls, params: dict[str, str]) -> Any:
        """Validate ``params`` (empty values count as not sent); raise the matching BinanceApiError."""
        present = {k: v for k, v in params.items() if v != ""}
        try:
            return cls.model_validate(present)
        except ValidationError as exc:
            first = exc.errors()[0]
            name = str(first["loc"][0]) if first["loc"] else "?"
            if first["type"] == "missing":
                raise errors.mandatory_parameter(name) from None
            if first["type"] == "extra_forbidden":
                known = sum(1 for k in present if k in cls.model_fields)
                raise errors.unread_parameters(known, len(present)) from None
            raise errors.illegal_parameter(name) from None


class SignedParams(Params):
    timestamp: BinanceInt
    recvWindow: BinanceInt | None = None


class ExchangeInfoParams(Params):
    symbol: str | None = None
    symbols: str | None = None
    permissions: str | None = None
    showPermissionSets: str | None = None
    symbolStatus: str | None = None


class KlinesParams(Params):
    symbol: str
    interval: str
    startTime: BinanceInt | None = None
    endTime: BinanceInt | None = None
    limit: BinanceInt | None = None
    timeZone: str | None = None


class DepthParams(Params):
    symbol: str
    limit: BinanceInt | None = None


class TickerParams(Params):
    symbol: str | None = None
    symbols: str | None = None
    type: Literal["FULL", "MINI"] | None = None
    symbolStatus: str | None = None


class NewOrderParams(SignedParams):
    symbol: str
    side: str
    type: str
    timeInForce: str | None = None
    quantity: BinanceDecimal | None = None
    quoteOrderQty: BinanceDecimal | None = None
    price: BinanceDecimal | None = None
    newClientOrderId: str | None = Field(default=None, max_length=36)
    strategyId: BinanceInt | None = None
    strategyType: BinanceInt | None = None
    stopPrice: BinanceDecimal | None = None
    trailingDelta: BinanceInt | None = None
    icebergQty: BinanceDecimal | None = None
    newOrderRespType: Literal["ACK", "RESULT", "FULL"] | None = None
    selfTradePreventionMode: Literal["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT"] | None = None


class OrderQueryParams(SignedParams):
    symbol: str
    orderId: BinanceInt | None = None
    origClientOrderId: str | None = None


class CancelOrderParams(OrderQueryParams):
    newClientOrderId: str | None = None
    cancelRestrictions: Literal["ONLY_NEW", "ONLY_PARTIALLY_FILLED"] | None = None


class OpenOrdersParams(SignedParams):
    symbol: str | None = None


class CancelOpenOrdersParams(SignedParams):
    symbol: str


class AllOrdersParams(SignedParams):
    symbol: str
    orderId: BinanceInt | None = None
    startTime: BinanceInt | None = None
    endTime: BinanceInt | None = None
    limit: BinanceInt | None = None


class MyTradesParams(SignedParams):
    symbol: str
    orderId: BinanceInt | None = None
    startTime: BinanceInt | None = None
    endTime: BinanceInt | None = None
    fromId: BinanceInt | None = None
    limit: BinanceInt | None = None


class AccountParams(SignedParams):
    omitZeroBalances: Literal["true", "false"] | None = None


class ApiRestrictionsParams(SignedParams):
    """GET /sapi/v1/account/apiRestrictions takes only the signed fields."""


# ---------------------------------------------------------------------------------------------------
# responses
# ---------------------------------------------------------------------------------------------------
class Payload(BaseModel):
    model_config = ConfigDict(frozen=True)

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class RateLimit(Payload):
    rateLimitType: str
    interval: str
    intervalNum: int
    limit: int


class ExchangeInfo(Payload):
    timezone: str = "UTC"
    serverTime: int
    rateLimits: list[RateLimit]
    exchangeFilters: list[dict[str, Any]] = Field(default_factory=list)
    symbols: list[dict[str, Any]]


class OrderFillPayload(Payload):
    price: str
    qty: str
    commission: str
    commissionAsset: str
    tradeId: int

    @classmethod
    def of(cls, fill: Fill) -> OrderFillPayload:
        return cls(
            price=fmt(fill.price),
            qty=fmt(fill.qty),
            commission=fmt(fill.commission),
            commissionAsset=fill.commission_asset,
            tradeId=fill.id,
        )


class OrderAck(Payload):
    """POST /api/v3/order with newOrderRespType=ACK."""

    symbol: str
    orderId: int
    orderListId: int = -1
    clientOrderId: str
    transactTime: int

    @classmethod
    def of(cls, order: Order) -> OrderAck:
        return cls(
            symbol=order.symbol, orderId=order.order_id, clientOrderId=order.client_order_id, transactTime=order.time
        )


class OrderResult(Payload):
    """POST /api/v3/order with newOrderRespType=RESULT."""

    symbol: str
    orderId: int
    orderListId: int = -1
    clientOrderId: str
    transactTime: int
    price: str
    origQty: str
    executedQty: str
    origQuoteOrderQty: str
    cummulativeQuoteQty: str
    status: str
    timeInForce: str
    type: str
    side: str
    workingTime: int
    selfTradePreventionMode: str

    @classmethod
    def of(cls, order: Order) -> OrderResult:
        return cls(**_order_fields(order), transactTime=order.time, workingTime=order.time)


class OrderFull(Payload):
    """POST /api/v3/order with newOrderRespType=FULL (ccxt's default for MARKET and LIMIT)."""

    symbol: str
    orderId: int
    orderListId: int = -1
    clientOrderId: str
    transactTime: int
    price: str
    origQty: str
    executedQty: str
    origQuoteOrderQty: str
    cummulativeQuoteQty: str
    status: str
    timeInForce: str
    type: str
    side: str
    workingTime: int
    fills: list[OrderFillPayload]
    selfTradePreventionMode: str

    @classmethod
    def of(cls, order: Order) -> OrderFull:
        return cls(
            **_order_fields(order),
            transactTime=order.time,
            workingTime=order.time,
            fills=[OrderFillPayload.of(f) for f in order.fills],
        )


class OrderQuery(Payload):
    """GET /api/v3/order, rows of GET /api/v3/openOrders and /api/v3/allOrders."""

    symbol: str
    orderId: int
    orderListId: int = -1
    clientOrderId: str
    price: str
    origQty: str
    executedQty: str
    cummulativeQuoteQty: str
    status: str
    timeInForce: str
    type: str
    side: str
    stopPrice: str = fmt(Decimal(0))
    icebergQty: str = fmt(Decimal(0))
    time: int
    updateTime: int
    isWorking: bool = True
    workingTime: int
    origQuoteOrderQty: str
    selfTradePreventionMode: str

    @classmethod
    def of(cls, order: Order) -> OrderQuery:
        return cls(**_order_fields(order), time=order.time, updateTime=order.update_time, workingTime=order.time)


class CancelResult(Payload):
    """DELETE /api/v3/order (and rows of DELETE /api/v3/openOrders)."""

    symbol: str
    origClientOrderId: str
    orderId: int
    orderListId: int = -1
    clientOrderId: str
    transactTime: int
    price: str
    origQty: str
    executedQty: str
    origQuoteOrderQty: str
    cummulativeQuoteQty: str
    status: str
    timeInForce: str
    type: str
    side: str
    selfTradePreventionMode: str

    @classmethod
    def of(cls, order: Order, cancel_client_order_id: str) -> CancelResult:
        fields = _order_fields(order)
        fields["clientOrderId"] = cancel_client_order_id
        return cls(**fields, origClientOrderId=order.client_order_id, transactTime=order.update_time)


def _order_fields(order: Order) -> dict[str, Any]:
    return {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "clientOrderId": order.client_order_id,
        "price": fmt(order.price),
        "origQty": fmt(order.orig_qty),
        "executedQty": fmt(order.executed_qty),
        "origQuoteOrderQty": fmt(order.orig_quote_order_qty),
        "cummulativeQuoteQty": fmt(order.cummulative_quote_qty),
        "status": order.status,
        "timeInForce": order.time_in_force,
        "type": order.type,
        "side": order.side,
        "selfTradePreventionMode": order.self_trade_prevention_mode,
    }


class AccountTrade(Payload):
    """A row of GET /api/v3/myTrades."""

    symbol: str
    id: int
    orderId: int
    orderListId: int = -1
    price: str
    qty: str
    quoteQty: str
    commission: str
    commissionAsset: str
    time: int
    isBuyer: bool
    isMaker: bool
    isBestMatch: bool = True

    @classmethod
    def of(cls, fill: Fill) -> AccountTrade:
        return cls(
            symbol=fill.symbol,
            id=fill.id,
            orderId=fill.order_id,
            price=fmt(fill.price),
            qty=fmt(fill.qty),
            quoteQty=fmt(fill.quote_qty),
            commission=fmt(fill.commission),
            commissionAsset=fill.commission_asset,
            time=fill.time,
            isBuyer=fill.is_buyer,
            isMaker=fill.is_maker,
        )


class CommissionRates(Payload):
    maker: str
    taker: str
    buyer: str
    seller: str


class BalancePayload(Payload):
    asset: str
    free: str
    locked: str

    @classmethod
    def of(cls, balance: Balance) -> BalancePayload:
        return cls(asset=balance.asset, free=fmt(balance.free), locked=fmt(balance.locked))


class AccountInfo(Payload):
    """GET /api/v3/account."""

    makerCommission: int
    takerCommission: int
    buyerCommission: int = 0
    sellerCommission: int = 0
    commissionRates: CommissionRates
    canTrade: bool = True
    canWithdraw: bool = True
    canDeposit: bool = True
    brokered: bool = False
    requireSelfTradePrevention: bool = False
    preventSor: bool = False
    updateTime: int
    accountType: str = "SPOT"
    balances: list[BalancePayload]
    permissions: list[str] = Field(default_factory=lambda: ["SPOT"])
    uid: int


class ApiRestrictionsPayload(Payload):
    """GET /sapi/v1/account/apiRestrictions (fields and order as in Binance's API documentation)."""

    ipRestrict: bool
    createTime: int
    enableReading: bool
    enableWithdrawals: bool
    enableInternalTransfer: bool
    enableMargin: bool
    enableFutures: bool
    permitsUniversalTransfer: bool
    enableVanillaOptions: bool
    enableSpotAndMarginTrading: bool

    @classmethod
    def of(cls, r: ApiKeyRestrictions) -> ApiRestrictionsPayload:
        return cls(
            ipRestrict=r.ip_restrict,
            createTime=r.create_time_ms,
            enableReading=r.enable_reading,
            enableWithdrawals=r.enable_withdrawals,
            enableInternalTransfer=r.enable_internal_transfer,
            enableMargin=r.enable_margin,
            enableFutures=r.enable_futures,
            permitsUniversalTransfer=r.permits_universal_transfer,
            enableVanillaOptions=r.enable_vanilla_options,
            enableSpotAndMarginTrading=r.enable_spot_and_margin_trading,
        )


class Ticker24hPayload(Payload):
    """GET /api/v3/ticker/24hr (type=FULL)."""

    symbol: str
    priceChange: str
    priceChangePercent: str
    weightedAvgPrice: str
    prevClosePrice: str
    lastPrice: str
    lastQty: str
    bidPrice: str
    bidQty: str
    askPrice: str
    askQty: str
    openPrice: str
    highPrice: str
    lowPrice: str
    volume: str
    quoteVolume: str
    openTime: int
    closeTime: int
    firstId: int
    lastId: int
    count: int

    @classmethod
    def of(cls, t: Ticker24h) -> Ticker24hPayload:
        change = t.last - t.open
        percent = change / t.open * 100 if t.open else Decimal(0)
        vwap = t.quote_volume / t.volume if t.volume else Decimal(0)
        return cls(
            symbol=t.symbol,
            priceChange=fmt(change),
            priceChangePercent=fmt(percent, 3),
            weightedAvgPrice=fmt(vwap),
            prevClosePrice=fmt(t.prev_close),
            lastPrice=fmt(t.last),
            lastQty=fmt(t.last_qty),
            bidPrice=fmt(t.bid),
            bidQty=fmt(t.bid_qty),
            askPrice=fmt(t.ask),
            askQty=fmt(t.ask_qty),
            openPrice=fmt(t.open),
            highPrice=fmt(t.high),
            lowPrice=fmt(t.low),
            volume=fmt(t.volume),
            quoteVolume=fmt(t.quote_volume),
            openTime=t.open_time,
            closeTime=t.close_time,
            firstId=t.first_id,
            lastId=t.last_id,
            count=t.count,
        )


class DepthPayload(Payload):
    """GET /api/v3/depth."""

    lastUpdateId: int
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]

    @classmethod
    def of(cls, book: OrderBook) -> DepthPayload:
        return cls(
            lastUpdateId=book.last_update_id,
            bids=[(fmt(p), fmt(q)) for p, q in book.bids],
            asks=[(fmt(p), fmt(q)) for p, q in book.asks],
        )


def kline_row(k: Kline) -> list[Any]:
    """A row of GET /api/v3/klines: open time, OHLCV, close time, quote volume, trades, taker-buy volumes."""
    return [
        k.open_time,
        fmt(k.open),
        fmt(k.high),
        fmt(k.low),
        fmt(k.close),
        fmt(k.volume),
        k.close_time,
        fmt(k.quote_volume),
        k.trades,
        fmt(k.volume / 2),
        fmt(k.quote_volume / 2),
        "0",
    ]


class LoggedRequest(BaseModel):
    """One request the loopback received (the signature is never kept)."""

    model_config = ConfigDict(frozen=True)

    seq: int
    method: str
    path: str
    params: dict[str, str]
    api_key_sent: bool
    status: int | None
    """HTTP status answered; None if the connection was dropped on purpose."""
    wall_time_ms: int
