"""The ccxt venue adapter: one exchange account (sandbox or live), orders keyed by the derived client order id.

Submission never sends an order twice:

1. before sending, the venue is asked for the client order id (Binance refuses a reused id only while that
   order is open, so a filled order would otherwise be sent again by a restarted worker);
2. a "duplicate client order id" refusal returns the order the venue already holds;
3. when the outcome of a send is unknown (network error, timeout, 5xx, rate limit), the order is looked up by
   client order id; it is sent again only when the venue provably does not hold it (``OrderNotFound``), and if the
   venue cannot be asked either, ``VenueUnavailableError`` tells the caller to reconcile later.

Amounts and prices are sent as exact decimal strings; an order whose quantity or price does not fit the market's
precision is refused here rather than silently rounded into an order nobody approved. Venue structures are read
from the raw strings of the venue's answer where ccxt keeps them (``info``), so no amount passes through a float.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any, Final, TypeVar

import ccxt
from pydantic import BaseModel

from engine.data.exchanges import make_async_exchange, point_api_at, rerouted_options
from engine.errors import IQTSError
from engine.execution.broker import (
    CLIENT_ORDER_ID_PREFIX,
    ApprovedOrder,
    OrderNotCancellableError,
    VenueOrder,
    VenueUnavailableError,
    require_released,
)
from engine.execution.ccxt.config import CcxtBrokerConfig
from engine.execution.ccxt.errors import (
    CcxtRejectedError,
    WithdrawalKeyError,
    is_duplicate_client_order_id,
    is_not_served,
    is_unknown_outcome,
    map_error,
)
from engine.execution.models import (
    Fill,
    Liquidity,
    OrderIntent,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
    base_currency,
    canonical_decimal,
    quote_currency,
)
from engine.telemetry import get_logger, register_secrets

log = get_logger(__name__)

T = TypeVar("T")
ZERO: Final = Decimal(0)

VENUE_ERRORS: Final = (ccxt.BaseError, OSError)

_BINANCE_STATUS: Final[dict[str, OrderStatus]] = {
    "NEW": OrderStatus.SUBMITTED,
    "PENDING_NEW": OrderStatus.SUBMITTED,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELLED,
    "PENDING_CANCEL": OrderStatus.CANCELLED,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
}
_UNIFIED_STATUS: Final[dict[str, OrderStatus]] = {
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELLED,
    "cancelled": OrderStatus.CANCELLED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}
_TIME_IN_FORCE: Final[dict[TimeInForce, str]] = {
    TimeInForce.GTC: "GTC",
    TimeInForce.IOC: "IOC",
    TimeInForce.FOK: "FOK",
}


class KeyPermissions(BaseModel):
    """What the exchange reports about the API key (``reported=False``: it did not say)."""

    reported: bool
    can_withdraw: bool | None = None
    can_trade: bool | None = None
    detail: str


def _decimal(*candidates: object) -> Decimal | None:
    """The first candidate that is a number: raw strings first (exact), then ccxt's floats (via repr)."""
    for value in candidates:
        if value is None or isinstance(value, bool) or value == "":
            continue
        try:
            number = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
        except InvalidOperation:
            continue
        if number.is_finite():
            return number
    return None


def _ms_to_datetime(ms: object) -> datetime | None:
    if isinstance(ms, int | float) and not isinstance(ms, bool) and ms > 0:
        return datetime.fromtimestamp(ms / 1000, UTC)
    return None


class CcxtBroker:
    """One exchange account through ccxt's async client. Implements ``Broker``.

    ``exchange`` lets a caller hand in a ready ccxt instance (tests); otherwise one is built from ``config``
    (sandbox mode first, then the ``api_url`` reroute) on first use.
    """

    def __init__(self, config: CcxtBrokerConfig, *, exchange: Any | None = None) -> None:
        self.config = config
        self.name = config.name
        self._exchange = exchange
        self._markets_loaded = False
        self._markets_lock = asyncio.Lock()
        self._secrets = [
            s.get_secret_value() for s in (config.api_key, config.secret, config.password) if s is not None
        ]
        register_secrets(self._secrets)

    # --- the client -------------------------------------------------------------------------------------------
    @property
    def receive_window_s(self) -> float | None:
        """The venue's receive window (ccxt's ``recvWindow`` option, ours or the exchange's default), if it has one."""
        window = self.config.options.get("recvWindow") or self.exchange.options.get("recvWindow")
        return None if window is None else float(window) / 1000

    @property
    def exchange(self) -> Any:
        """The ccxt client (built on first use)."""
        if self._exchange is None:
            self._exchange = self._build()
        return self._exchange

    def _build(self) -> Any:
        cfg = self.config
        options = {"warnOnFetchOpenOrdersWithoutSymbol": False, **cfg.options}
        if cfg.api_url:
            options = rerouted_options(cfg.exchange, options)
        extra: dict[str, Any] = {
            "apiKey": cfg.api_key.get_secret_value(),
            "secret": cfg.secret.get_secret_value(),
            "timeout": cfg.timeout_ms,
        }
        if cfg.password is not None:
            extra["password"] = cfg.password.get_secret_value()
        if cfg.rate_limit_ms is not None:
            extra["rateLimit"] = cfg.rate_limit_ms
        exchange = make_async_exchange(cfg.exchange, options=options, **extra)
        if cfg.sandbox:
            exchange.set_sandbox_mode(True)
        if cfg.api_url:
            point_api_at(exchange, cfg.api_url)
            exchange.aiohttp_trust_env = False
        log.info("ccxt.account_ready", account=cfg.name, exchange=cfg.exchange, sandbox=cfg.sandbox,
                 rerouted=cfg.api_url is not None)  # fmt: skip
        return exchange

    async def _call(self, action: str, symbol: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run one ccxt call, mapping its errors to the contract's (without the request, keys or signature)."""
        try:
            return await call()
        except VENUE_ERRORS as error:
            raise map_error(error, action, self.config.exchange, symbol, self._secrets) from None

    async def _ready(self) -> Any:
        exchange = self.exchange
        if not self._markets_loaded:
            async with self._markets_lock:
                if not self._markets_loaded:
                    await self._call(f"{self.name}: load markets", "", exchange.load_markets)
                    self._markets_loaded = True
        return exchange

    @property
    def _ids(self) -> Any:
        return self.config.id_params

    # --- the Broker protocol ------------------------------------------------------------------------------
    async def submit(self, order: ApprovedOrder) -> VenueOrder:
        approved = require_released(order)
        intent, cid = approved.intent, approved.client_order_id
        action = f"submit {intent.side.value} {canonical_decimal(intent.quantity)} {intent.symbol}"
        exchange = await self._ready()
        if intent.symbol not in exchange.markets:
            raise CcxtRejectedError(f"{action}: {self.config.exchange} does not list {intent.symbol}", "bad_symbol")
        held = await self.fetch(intent.symbol, cid)
        if held is not None:
            log.info("ccxt.submit_already_held", account=self.name, client_order_id=cid, status=held.status)
            return held
        args, params = self._order_request(exchange, intent, cid, action)
        for attempt in range(1, self.config.submit_attempts + 1):
            try:
                raw = await exchange.create_order(*args, params)
            except VENUE_ERRORS as error:
                if is_duplicate_client_order_id(error):
                    held = await self._learn_fate(intent.symbol, cid, action)
                    if held is not None:
                        log.info("ccxt.submit_duplicate_returned", account=self.name, client_order_id=cid)
                        return held
                    raise CcxtRejectedError(
                        f"{action}: {self.config.exchange} calls client order id {cid} a duplicate but shows no such "
                        "order",
                        "duplicate_client_order_id",
                    ) from None
                if not is_unknown_outcome(error):
                    raise map_error(error, action, self.config.exchange, intent.symbol, self._secrets) from None
                log.warning("ccxt.submit_outcome_unknown", account=self.name, client_order_id=cid, attempt=attempt,
                            error=type(error).__name__)  # fmt: skip
                held = await self._learn_fate(intent.symbol, cid, action)
                if held is not None:
                    log.info("ccxt.submit_reconciled", account=self.name, client_order_id=cid, status=held.status)
                    return held
                continue  # the venue provably does not hold it: sending again cannot make a second order
            venue = await self._venue_order(exchange, raw, intent.symbol, cid)
            log.info("ccxt.submitted", account=self.name, client_order_id=cid, status=venue.status)
            return venue
        raise VenueUnavailableError(
            f"{action}: {self.config.exchange} did not take the order in {self.config.submit_attempts} attempts "
            f"(it holds no order {cid}); try again later"
        )

    async def fetch(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        exchange = await self._ready()
        try:
            raw = await exchange.fetch_order(None, symbol, {self._ids.fetch: client_order_id})
        except ccxt.OrderNotFound:
            return None
        except VENUE_ERRORS as error:
            raise map_error(
                error, f"fetch order {client_order_id}", self.config.exchange, symbol, self._secrets
            ) from None
        return await self._venue_order(exchange, raw, symbol, client_order_id)

    async def cancel(self, symbol: str, client_order_id: str) -> VenueOrder:
        exchange = await self._ready()
        action = f"cancel order {client_order_id}"
        try:
            raw = await exchange.cancel_order(None, symbol, {self._ids.cancel: client_order_id})
        except ccxt.OrderNotFound:
            held = await self.fetch(symbol, client_order_id)
            if held is None:
                raise OrderNotCancellableError(
                    f"order {client_order_id} on {symbol} is unknown to {self.config.exchange}"
                ) from None
            if held.status.is_terminal:
                raise OrderNotCancellableError(f"order {client_order_id} is already {held.status.value}") from None
            raise VenueUnavailableError(f"{action}: refused, yet the order is still open; try again") from None
        except VENUE_ERRORS as error:
            raise map_error(error, action, self.config.exchange, symbol, self._secrets) from None
        venue = await self._venue_order(exchange, raw, symbol, client_order_id)
        log.info("ccxt.cancelled", account=self.name, client_order_id=client_order_id, status=venue.status)
        return venue

    async def open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        exchange = await self._ready()
        raws = await self._call("list open orders", symbol or "", lambda: exchange.fetch_open_orders(symbol))
        return [await self._venue_order(exchange, raw, str(raw.get("symbol") or symbol), None) for raw in raws]

    async def balances(self) -> dict[str, Decimal]:
        """Total balance per currency (free + locked in orders), zero balances left out."""
        exchange = await self._ready()
        raw = await self._call("fetch balances", "", exchange.fetch_balance)
        info = raw.get("info") or {}
        totals: dict[str, Decimal] = {}
        if isinstance(info, dict) and isinstance(info.get("balances"), list):  # Binance: exact strings
            for row in info["balances"]:
                total = (_decimal(row.get("free")) or ZERO) + (_decimal(row.get("locked")) or ZERO)
                if total != 0:
                    totals[str(row.get("asset"))] = total
            return totals
        for currency, value in (raw.get("total") or {}).items():
            amount = _decimal(value)
            if amount:
                totals[currency] = amount
        return totals

    async def close(self) -> None:
        if self._exchange is not None:
            await self._exchange.close()

    # --- beyond the protocol --------------------------------------------------------------------------------
    async def reconcile(
        self, known_client_order_ids: Mapping[str, str], *, since_ms: int | None = None
    ) -> list[VenueOrder]:
        """The venue's view for a restarting OMS.

        ``known_client_order_ids`` maps each client order id the OMS holds as not final to its symbol. Returns,
        once each: every known order the venue holds (an absent one was never received), every open order with
        an IQTS client order id, and every IQTS order with trades on those symbols among the account's recent
        trades (``fetch_my_trades``: since ``since_ms``, or the venue's most recent ones).
        """
        exchange = await self._ready()
        found: dict[str, VenueOrder] = {}
        for cid, symbol in known_client_order_ids.items():
            held = await self.fetch(symbol, cid)
            if held is not None:
                found[cid] = held
        for venue in await self.open_orders():
            if venue.client_order_id.startswith(CLIENT_ORDER_ID_PREFIX):
                found.setdefault(venue.client_order_id, venue)
        symbols = sorted({*known_client_order_ids.values(), *(v.symbol for v in found.values())})
        for symbol in symbols:
            trades = await self._call(
                f"read recent trades of {symbol}", symbol, partial(exchange.fetch_my_trades, symbol, since_ms)
            )
            covered = {v.venue_order_id for v in found.values()}
            order_ids = sorted({str(t["order"]) for t in trades if t.get("order")} - covered)
            for order_id in order_ids:
                raw = await self._call(
                    f"fetch order {order_id}", symbol, partial(exchange.fetch_order, order_id, symbol)
                )
                cid = str(raw.get("clientOrderId") or "")
                if cid.startswith(CLIENT_ORDER_ID_PREFIX) and cid not in found:
                    found[cid] = await self._venue_order(exchange, raw, symbol, cid)
        log.info("ccxt.reconciled", account=self.name, known=len(known_client_order_ids), found=len(found))
        return list(found.values())

    async def check_key_permissions(self) -> KeyPermissions:
        """Refuse (``WithdrawalKeyError``) an API key that the exchange reports as able to withdraw.

        Binance reports it at ``GET /sapi/v1/account/apiRestrictions``; an exchange (or test network) that does
        not say is allowed, with a warning to make sure the key cannot withdraw.
        """
        exchange = self.exchange
        unreported = (
            f"{self.config.exchange} does not report the API key's permissions: make sure the key of account "
            f"{self.name} cannot withdraw"
        )
        if self.config.exchange != "binance":
            log.warning("ccxt.key_permissions_unreported", account=self.name, exchange=self.config.exchange)
            return KeyPermissions(reported=False, detail=unreported)
        try:
            raw = await exchange.sapi_get_account_apirestrictions()
        except VENUE_ERRORS as error:
            if is_not_served(error) or isinstance(error, ccxt.PermissionDenied):
                log.warning("ccxt.key_permissions_unreported", account=self.name, exchange=self.config.exchange)
                return KeyPermissions(reported=False, detail=unreported)
            raise map_error(error, "check the API key's permissions", self.config.exchange, "", self._secrets) from None
        can_withdraw = bool(raw.get("enableWithdrawals"))
        trade_flag = raw.get("enableSpotAndMarginTrading")
        can_trade = None if trade_flag is None else bool(trade_flag)
        if can_withdraw:
            raise WithdrawalKeyError(
                f"account {self.name}: the {self.config.exchange} API key has withdrawal rights; IQTS refuses such "
                "keys (create a key with trading rights only)"
            )
        detail = "the key cannot withdraw" + ("" if can_trade is not False else "; it cannot trade spot either")
        return KeyPermissions(reported=True, can_withdraw=False, can_trade=can_trade, detail=detail)

    # --- requests ---------------------------------------------------------------------------------------------
    def _exact(self, exchange: Any, symbol: str, value: Decimal, what: str, action: str) -> str:
        """``value`` as the venue's decimal string; refuse it if the market's precision would change it."""
        text = canonical_decimal(value)
        convert = exchange.amount_to_precision if what == "quantity" else exchange.price_to_precision
        try:
            fitted = str(convert(symbol, text))
        except VENUE_ERRORS as error:
            raise map_error(error, action, self.config.exchange, symbol, self._secrets) from None
        if _decimal(fitted) != value:
            raise CcxtRejectedError(
                f"{action}: {what} {text} does not fit the precision of {symbol} on {self.config.exchange} "
                f"(the nearest it accepts is {fitted}); nothing was sent",
                "precision",
            )
        return text

    def _order_request(
        self, exchange: Any, intent: OrderIntent, cid: str, action: str
    ) -> tuple[tuple[str, str, str, str, str | None], dict[str, Any]]:
        amount = self._exact(exchange, intent.symbol, intent.quantity, "quantity", action)
        price = None if intent.price is None else self._exact(exchange, intent.symbol, intent.price, "price", action)
        params: dict[str, Any] = {self._ids.create: cid}
        if intent.stop_price is not None:
            params["triggerPrice"] = self._exact(exchange, intent.symbol, intent.stop_price, "price", action)
        kind = "limit" if intent.type in (OrderType.LIMIT, OrderType.STOP_LIMIT) else "market"
        if kind == "limit":
            if intent.time_in_force is TimeInForce.POST_ONLY:
                params["postOnly"] = True
            else:
                params["timeInForce"] = _TIME_IN_FORCE[intent.time_in_force]
        return (intent.symbol, kind, intent.side.value, amount, price), params

    async def _learn_fate(self, symbol: str, cid: str, action: str) -> VenueOrder | None:
        """After a send with an unknown outcome: the order if the venue holds it, None if it provably does not."""
        for attempt in range(1, self.config.reconcile_attempts + 1):
            await asyncio.sleep(self.config.reconcile_delay_s)
            try:
                return await self.fetch(symbol, cid)
            except VenueUnavailableError:
                log.warning("ccxt.reconcile_unanswered", account=self.name, client_order_id=cid, attempt=attempt)
        raise VenueUnavailableError(
            f"{action}: the order's fate is unknown ({self.config.exchange} does not answer); reconcile client "
            f"order id {cid} before any retry"
        )

    # --- venue structures -> contract models ----------------------------------------------------------------
    async def _venue_order(self, exchange: Any, raw: dict[str, Any], symbol: str, cid: str | None) -> VenueOrder:
        info = raw.get("info") if isinstance(raw.get("info"), dict) else {}
        assert isinstance(info, dict)
        quantity = _decimal(info.get("origQty"), raw.get("amount")) or ZERO
        filled = _decimal(info.get("executedQty"), raw.get("filled")) or ZERO
        cost = _decimal(info.get("cummulativeQuoteQty"), raw.get("cost"))
        if filled > 0 and cost:
            average: Decimal | None = cost / filled
        else:
            average = _decimal(raw.get("average")) if filled > 0 else None
        raw_status = info.get("status")
        if isinstance(raw_status, str) and raw_status in _BINANCE_STATUS:
            status = _BINANCE_STATUS[raw_status]
        else:
            status = _UNIFIED_STATUS.get(str(raw.get("status")), OrderStatus.SUBMITTED)
        if status is OrderStatus.SUBMITTED and filled > 0:
            status = OrderStatus.PARTIALLY_FILLED
        # a cancel answer carries the cancel request's id as clientOrderId and the order's as origClientOrderId
        client_order_id = str(
            cid or info.get("origClientOrderId") or raw.get("clientOrderId") or f"venue:{raw.get('id')}"
        )
        fills = await self._fills(exchange, raw, symbol, client_order_id, filled) if filled > 0 else []
        reason = None
        if status in (OrderStatus.REJECTED, OrderStatus.EXPIRED):
            reason = f"{self.config.exchange} reports the order {raw_status or raw.get('status')}"
        return VenueOrder(
            client_order_id=client_order_id,
            venue_order_id=None if raw.get("id") is None else str(raw["id"]),
            symbol=symbol,
            status=status,
            quantity=quantity,
            filled_quantity=filled,
            average_price=average,
            fills=fills,
            reason=reason,
        )

    async def _fills(self, exchange: Any, raw: dict[str, Any], symbol: str, cid: str, filled: Decimal) -> list[Fill]:
        trades = [t for t in raw.get("trades") or [] if isinstance(t, dict)]
        fills = [await self._fill(exchange, t, raw, symbol, cid) for t in trades]
        if fills and sum((f.quantity for f in fills), ZERO) >= filled:
            return fills
        order_id = raw.get("id")
        if self._ids.by_order_id_trades:
            trades = await self._call(
                f"read the trades of order {cid}",
                symbol,
                lambda: exchange.fetch_my_trades(symbol, None, None, {"orderId": order_id}),
            )
        else:
            trades = await self._call(
                f"read the trades of order {cid}",
                symbol,
                lambda: exchange.fetch_my_trades(symbol, raw.get("timestamp")),
            )
            trades = [t for t in trades if str(t.get("order")) == str(order_id)]
        return [await self._fill(exchange, t, raw, symbol, cid) for t in trades]

    async def _fill(self, exchange: Any, trade: dict[str, Any], order: dict[str, Any], symbol: str, cid: str) -> Fill:
        info = trade.get("info") if isinstance(trade.get("info"), dict) else {}
        assert isinstance(info, dict)
        fee = trade.get("fee") if isinstance(trade.get("fee"), dict) else {}
        assert isinstance(fee, dict)
        quantity = _decimal(info.get("qty"), trade.get("amount"))
        price = _decimal(info.get("price"), trade.get("price"))
        if quantity is None or price is None:
            raise IQTSError(f"{self.config.exchange} reported a trade of order {cid} without quantity or price")
        fee_cost = _decimal(info.get("commission"), fee.get("cost")) or ZERO
        fee_currency = str(info.get("commissionAsset") or fee.get("currency") or quote_currency(symbol))
        fee_cost, fee_currency = await self._fee_in_quote(exchange, symbol, fee_cost, fee_currency, price)
        maker = trade.get("takerOrMaker") == "maker" or info.get("isMaker") is True
        ts = (
            _ms_to_datetime(trade.get("timestamp"))
            or _ms_to_datetime(order.get("lastTradeTimestamp"))
            or _ms_to_datetime(order.get("timestamp"))
            or datetime.now(UTC)
        )
        side = str(trade.get("side") or order.get("side"))
        trade_id = trade.get("id") or info.get("tradeId") or info.get("id")
        return Fill(
            order_id=cid,
            fill_id=None if trade_id is None else str(trade_id),
            symbol=symbol,
            side=OrderSide(side),
            quantity=quantity,
            price=price,
            fee=fee_cost,
            fee_currency=fee_currency,
            ts=ts,
            liquidity=Liquidity.MAKER if maker else Liquidity.TAKER,
        )

    async def _fee_in_quote(
        self, exchange: Any, symbol: str, cost: Decimal, currency: str, price: Decimal
    ) -> tuple[Decimal, str]:
        """The fee in the symbol's quote currency (the portfolio books fees there)."""
        quote = quote_currency(symbol)
        if cost == 0 or currency == quote:
            return cost, quote
        if currency == base_currency(symbol):
            return cost * price, quote
        pair = f"{currency}/{quote}"
        try:
            ticker = await exchange.fetch_ticker(pair)
        except VENUE_ERRORS as error:
            log.warning("ccxt.fee_not_converted", pair=pair, error=type(error).__name__)
            return cost, currency
        info = ticker.get("info") if isinstance(ticker.get("info"), dict) else {}
        assert isinstance(info, dict)
        last = _decimal(info.get("lastPrice"), ticker.get("last"))
        if not last:
            log.warning("ccxt.fee_not_converted", pair=pair, error="no last price")
            return cost, currency
        return cost * last, quote
