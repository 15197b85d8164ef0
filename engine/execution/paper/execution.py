"""The paper venue: simulated fills against a price feed, with fees, slippage, partial fills and balances.

Fill rules (one bar = one ``PriceBar`` of the feed; "arrival" = the latest bar when the order is submitted):

* MARKET fills on arrival at the last close plus (buy) or minus (sell) ``slippage_fraction``, as a taker.
* LIMIT fills on arrival as a taker if marketable (buy limit >= last close, sell limit <= last close) at the
  slipped close, never worse than its limit; otherwise it rests and fills as a maker, at its limit price, on the
  first later bar that reaches it (buy: ``low <= limit``, sell: ``high >= limit``). POST_ONLY orders that would
  take are refused; IOC/FOK orders that cannot (fully, for FOK) fill on arrival expire.
* STOP / STOP_LIMIT trigger when a later bar reaches the stop (buy: ``high >= stop``, sell: ``low <= stop``), or
  on arrival when the last close is already through it. A triggered STOP fills as a taker at the stop (or the
  bar's open if the bar gapped through it) with slippage; a triggered STOP_LIMIT becomes a LIMIT order.
* With ``participation_cap`` set, an order fills at most that fraction of a bar's volume per bar; the rest waits
  for later bars (status PARTIALLY_FILLED). A waiting MARKET remainder fills at the next bars' opens.
* Later bars reach the venue through ``await broker.on_bar(symbol, bar)``; each bar is applied to an order once.
* Balances per currency: an accepted order reserves what it may spend (buys: quantity x worst price x (1 + fee),
  in the quote currency; sells: the quantity, in the base); not enough free balance -> ``VenueRejectedError``.
  Fees are charged in the quote currency. ``balances()`` reports totals (free + reserved).

Every fill carries the ``Quote`` it was made against (``Fill.quote``: series, observation time, age, replayed).

Idempotent by ``client_order_id``: the same approved order submitted again returns the order already held.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from engine.data.quote import Quote
from engine.data.timeparse import ms_to_utc
from engine.execution.broker import (
    ApprovedOrder,
    OrderNotCancellableError,
    VenueOrder,
    VenueRejectedError,
    require_released,
)
from engine.execution.models import (
    PRICED_TYPES,
    STOP_TYPES,
    Fill,
    Liquidity,
    OrderIntent,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
)
from engine.execution.paper.config import PaperBrokerConfig
from engine.execution.paper.data import ManualPriceFeed, Number, PriceBar, PriceFeed
from engine.telemetry import get_logger

log = get_logger(__name__)

ZERO = Decimal(0)
Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Order:
    """One order as the paper venue holds it."""

    intent: OrderIntent
    client_order_id: str
    venue_order_id: str
    seen_ts: int  # the newest bar already applied to this order
    reserve_currency: str
    reserve_per_unit: Decimal  # reserved per unit of the remaining quantity
    reserved: Decimal = ZERO
    status: OrderStatus = OrderStatus.SUBMITTED
    filled: Decimal = ZERO
    notional: Decimal = ZERO
    fills: list[Fill] = field(default_factory=list)
    reason: str | None = None
    triggered: bool = True  # stop orders start untriggered
    quote: Quote | None = None  # the market price the next fill is made against (arrival, then each later bar)

    @property
    def remaining(self) -> Decimal:
        return self.intent.quantity - self.filled

    @property
    def is_buy(self) -> bool:
        return self.intent.side is OrderSide.BUY

    def snapshot(self) -> VenueOrder:
        return VenueOrder(
            client_order_id=self.client_order_id,
            venue_order_id=self.venue_order_id,
            symbol=self.intent.symbol,
            status=self.status,
            quantity=self.intent.quantity,
            filled_quantity=self.filled,
            average_price=self.notional / self.filled if self.filled else None,
            fills=list(self.fills),
            reason=self.reason,
        )


class PaperBroker:
    """A simulated venue account (see the module docstring for the fill rules). Implements ``Broker``."""

    receive_window_s = 0.0  # in-process: a request is received as it is made, or never

    def __init__(
        self, config: PaperBrokerConfig | None = None, feed: PriceFeed | None = None, *, clock: Clock | None = None
    ) -> None:
        self.config = config or PaperBrokerConfig()
        self.name = self.config.name
        self.feed: PriceFeed = feed if feed is not None else ManualPriceFeed()
        self._clock = clock or _utc_now
        self._orders: dict[str, _Order] = {}
        self._free: dict[str, Decimal] = dict(self.config.initial_balances)
        self._reserved: dict[str, Decimal] = {}
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()

    # --- the Broker protocol ------------------------------------------------------------------------------
    async def submit(self, order: ApprovedOrder) -> VenueOrder:
        approved = require_released(order)
        async with self._lock:
            held = self._orders.get(approved.client_order_id)
            if held is not None:
                log.info("paper.submit_again", client_order_id=approved.client_order_id, status=held.status)
                return held.snapshot()
            intent = approved.intent
            if ":" in intent.symbol:
                raise VenueRejectedError(f"{intent.symbol}: the paper venue trades spot symbols (BASE/QUOTE) only")
            quoted = await self.feed.quoted_bar(intent.symbol)
            if quoted is None:
                raise VenueRejectedError(f"{intent.symbol}: the paper venue has no price for this symbol yet")
            bar = quoted.bar
            paper = self._accept(approved, bar)
            paper.quote = quoted.quote
            self._orders[paper.client_order_id] = paper
            self._arrive(paper, bar)
            log.info(
                "paper.submitted",
                client_order_id=paper.client_order_id,
                symbol=intent.symbol,
                status=paper.status,
                filled=str(paper.filled),
            )
            return paper.snapshot()

    async def fetch(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        held = self._orders.get(client_order_id)
        return held.snapshot() if held is not None and held.intent.symbol == symbol else None

    async def cancel(self, symbol: str, client_order_id: str) -> VenueOrder:
        async with self._lock:
            held = self._orders.get(client_order_id)
            if held is None or held.intent.symbol != symbol:
                raise OrderNotCancellableError(f"order {client_order_id} on {symbol} is unknown to {self.name}")
            if held.status.is_terminal:
                raise OrderNotCancellableError(f"order {client_order_id} is already {held.status.value}")
            self._close(held, OrderStatus.CANCELLED, None)
            return held.snapshot()

    async def open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        return [
            o.snapshot()
            for o in self._orders.values()
            if o.status.is_open and (symbol is None or o.intent.symbol == symbol)
        ]

    async def balances(self) -> dict[str, Decimal]:
        """Total balance per currency (free + reserved by open orders); zero balances left out."""
        currencies = dict.fromkeys([*self._free, *self._reserved])
        totals = {c: self._free.get(c, ZERO) + self._reserved.get(c, ZERO) for c in currencies}
        return {c: amount for c, amount in totals.items() if amount != 0}

    async def close(self) -> None:
        return None

    # --- beyond the protocol --------------------------------------------------------------------------------
    async def on_bar(self, symbol: str, bar: PriceBar | Sequence[Number]) -> list[VenueOrder]:
        """Apply a new bar of ``symbol`` to its open orders (trigger stops, fill crossed limits, continue partial
        fills); returns the orders that changed. The feed is not touched: later arrivals read the feed."""
        bar = PriceBar.of(bar)
        async with self._lock:
            changed: list[VenueOrder] = []
            for paper in list(self._orders.values()):
                if paper.intent.symbol != symbol or paper.status.is_terminal or bar.ts_ms <= paper.seen_ts:
                    continue
                before = (paper.status, paper.filled)
                paper.seen_ts = bar.ts_ms
                paper.quote = self._bar_quote(paper, bar)
                self._work(paper, bar)
                if (paper.status, paper.filled) != before:
                    changed.append(paper.snapshot())
            return changed

    async def free_balances(self) -> dict[str, Decimal]:
        """Free balance per currency (not reserved by open orders)."""
        return {c: a for c, a in self._free.items() if a != 0}

    async def reconcile(self, known_client_order_ids: Iterable[str]) -> list[VenueOrder]:
        """The venue's view for a restarting OMS: every known order the venue holds, then every open order."""
        seen: dict[str, VenueOrder] = {}
        for cid in known_client_order_ids:
            held = self._orders.get(cid)
            if held is not None:
                seen[cid] = held.snapshot()
        for paper in self._orders.values():
            if paper.status.is_open:
                seen.setdefault(paper.client_order_id, paper.snapshot())
        return list(seen.values())

    # --- acceptance -----------------------------------------------------------------------------------------
    def _accept(self, approved: ApprovedOrder, bar: PriceBar) -> _Order:
        """Check and reserve the balance the order may need; raise VenueRejectedError if it is not there."""
        intent = approved.intent
        cfg = self.config
        if intent.side is OrderSide.BUY:
            currency = intent.quote
            if intent.type in PRICED_TYPES:
                assert intent.price is not None
                worst = intent.price
            elif intent.type is OrderType.STOP:
                assert intent.stop_price is not None
                worst = max(intent.stop_price, bar.close) * (1 + cfg.slippage_fraction)
            else:
                worst = bar.close * (1 + cfg.slippage_fraction)
            per_unit = worst * (1 + max(cfg.taker_fee_rate, cfg.maker_fee_rate, ZERO))
        else:
            currency, per_unit = intent.base, Decimal(1)
        need = per_unit * intent.quantity
        free = self._free.get(currency, ZERO)
        if free < need:
            raise VenueRejectedError(
                f"insufficient balance: this {intent.side.value} of {intent.quantity} {intent.symbol} needs "
                f"{need.normalize():f} {currency}, {free.normalize():f} {currency} is free"
            )
        self._free[currency] = free - need
        self._reserved[currency] = self._reserved.get(currency, ZERO) + need
        if intent.type is OrderType.LIMIT and intent.time_in_force is TimeInForce.POST_ONLY:
            assert intent.price is not None
            if self._marketable(intent.side, intent.price, bar.close):
                self._release(currency, need)
                raise VenueRejectedError(
                    f"post-only order would take liquidity: limit {intent.price} vs last price {bar.close}"
                )
        return _Order(
            intent=intent,
            client_order_id=approved.client_order_id,
            venue_order_id=f"{cfg.venue_id_prefix}{next(self._ids)}",
            seen_ts=bar.ts_ms,
            reserve_currency=currency,
            reserve_per_unit=per_unit,
            reserved=need,
            triggered=intent.type not in STOP_TYPES,
        )

    def _bar_quote(self, paper: _Order, bar: PriceBar) -> Quote:
        """The quote of a later bar passed to ``on_bar``: the arrival quote's series, observed at the bar."""
        now = self._clock()
        ts = min(ms_to_utc(bar.ts_ms), now)
        arrival = paper.quote
        series = arrival.series if arrival is not None else f"on_bar:{paper.intent.symbol}"
        replayed = arrival.replayed if arrival is not None else False
        return Quote(
            symbol=paper.intent.symbol,
            price=bar.close,
            ts=ts,
            bar_open=ms_to_utc(bar.ts_ms),
            as_of=now,
            age_seconds=max((now - ts).total_seconds(), 0.0),
            series=series,
            replayed=replayed,
            sample=arrival.sample if arrival is not None else False,
            note=None if not replayed else f"replayed bar from {ts:%Y-%m-%d %H:%M} UTC, series {series}",
        )

    def _release(self, currency: str, amount: Decimal) -> None:
        self._reserved[currency] = self._reserved.get(currency, ZERO) - amount
        self._free[currency] = self._free.get(currency, ZERO) + amount

    # --- matching -------------------------------------------------------------------------------------------
    @staticmethod
    def _marketable(side: OrderSide, limit: Decimal, reference: Decimal) -> bool:
        return limit >= reference if side is OrderSide.BUY else limit <= reference

    def _arrive(self, paper: _Order, bar: PriceBar) -> None:
        """Apply the arrival bar: market and marketable orders take, stops already through trigger."""
        intent = paper.intent
        if not paper.triggered:
            assert intent.stop_price is not None
            through = bar.close >= intent.stop_price if paper.is_buy else bar.close <= intent.stop_price
            if through:
                self._trigger(paper, bar, bar.close)
            return
        if intent.type is OrderType.MARKET:
            self._take(paper, bar, bar.close)
        else:
            assert intent.price is not None
            if self._marketable(intent.side, intent.price, bar.close):
                self._take(paper, bar, bar.close)
        self._apply_time_in_force(paper)

    def _work(self, paper: _Order, bar: PriceBar) -> None:
        """Apply a later bar to an open order."""
        intent = paper.intent
        if not paper.triggered:
            assert intent.stop_price is not None
            stop = intent.stop_price
            if paper.is_buy and bar.high >= stop:
                self._trigger(paper, bar, max(stop, bar.open))
            elif not paper.is_buy and bar.low <= stop:
                self._trigger(paper, bar, min(stop, bar.open))
            return
        if intent.type in (OrderType.MARKET, OrderType.STOP):
            self._take(paper, bar, bar.open)
            return
        assert intent.price is not None
        if (paper.is_buy and bar.low <= intent.price) or (not paper.is_buy and bar.high >= intent.price):
            self._make(paper, bar)

    def _trigger(self, paper: _Order, bar: PriceBar, at: Decimal) -> None:
        paper.triggered = True
        intent = paper.intent
        log.info("paper.stop_triggered", client_order_id=paper.client_order_id, at=str(at))
        if intent.type is OrderType.STOP:
            self._take(paper, bar, at)
        else:
            assert intent.price is not None
            if self._marketable(intent.side, intent.price, at):
                self._take(paper, bar, at)
        self._apply_time_in_force(paper)

    def _apply_time_in_force(self, paper: _Order) -> None:
        if paper.status.is_open and paper.intent.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
            self._close(paper, OrderStatus.EXPIRED, f"{paper.intent.time_in_force.value}: not filled on arrival")

    def _cap(self, paper: _Order, bar: PriceBar) -> Decimal:
        cap = self.config.participation_cap
        return paper.remaining if cap is None else min(paper.remaining, cap * bar.volume)

    def _take(self, paper: _Order, bar: PriceBar, reference: Decimal) -> None:
        """A taker fill at ``reference`` with slippage, never worse than the limit price."""
        qty = self._cap(paper, bar)
        if qty <= 0:
            return
        if paper.intent.time_in_force is TimeInForce.FOK and qty < paper.remaining:
            return  # expires whole (see _apply_time_in_force)
        slip = self.config.slippage_fraction
        price = reference * (1 + slip) if paper.is_buy else reference * (1 - slip)
        limit = paper.intent.price
        if limit is not None:
            price = min(price, limit) if paper.is_buy else max(price, limit)
        self._execute(paper, qty, price, Liquidity.TAKER)

    def _make(self, paper: _Order, bar: PriceBar) -> None:
        qty = self._cap(paper, bar)
        if qty > 0:
            assert paper.intent.price is not None
            self._execute(paper, qty, paper.intent.price, Liquidity.MAKER)

    def _execute(self, paper: _Order, qty: Decimal, price: Decimal, liquidity: Liquidity) -> None:
        intent, cfg = paper.intent, self.config
        rate = cfg.taker_fee_rate if liquidity is Liquidity.TAKER else cfg.maker_fee_rate
        notional = qty * price
        fee = notional * rate
        release = min(paper.reserved, paper.reserve_per_unit * qty)
        self._release(paper.reserve_currency, release)
        paper.reserved -= release
        base, quote = intent.base, intent.quote
        if paper.is_buy:
            cost = notional + fee
            if self._free.get(quote, ZERO) < cost:
                self._close(
                    paper,
                    OrderStatus.CANCELLED if paper.filled else OrderStatus.REJECTED,
                    f"insufficient balance: the next fill needs {cost.normalize():f} {quote}",
                )
                return
            self._free[quote] -= cost
            self._free[base] = self._free.get(base, ZERO) + qty
        else:
            self._free[base] = self._free.get(base, ZERO) - qty
            self._free[quote] = self._free.get(quote, ZERO) + notional - fee
        paper.filled += qty
        paper.notional += notional
        paper.fills.append(
            Fill(
                order_id=paper.client_order_id,
                fill_id=f"{paper.venue_order_id}-{len(paper.fills) + 1}",
                symbol=intent.symbol,
                side=intent.side,
                quantity=qty,
                price=price,
                fee=fee,
                fee_currency=quote,
                ts=self._clock(),
                liquidity=liquidity,
                quote=paper.quote,
            )
        )
        if paper.remaining <= 0:
            self._close(paper, OrderStatus.FILLED, None)
        else:
            paper.status = OrderStatus.PARTIALLY_FILLED
        log.debug(
            "paper.fill",
            client_order_id=paper.client_order_id,
            quantity=str(qty),
            price=str(price),
            liquidity=liquidity.value,
        )

    def _close(self, paper: _Order, status: OrderStatus, reason: str | None) -> None:
        """Move to a terminal status and give back whatever is still reserved."""
        if paper.reserved:
            self._release(paper.reserve_currency, paper.reserved)
            paper.reserved = ZERO
        paper.status = status
        paper.reason = reason
