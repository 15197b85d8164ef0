"""The broker contract (engine/execution/broker.py) against every adapter: paper and ccxt (real ccxt client against
the loopback Binance exchange). Each venue starts at BTC/USDT 20000 with 100000 USDT and 1 BTC, fees 0.1 %.

Balance checks use what both venues agree on even though they book fees differently (paper: in the quote
currency; Binance: in the asset received): for a buy, quote spent - base received x price = the fee.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal

import pytest

from engine.execution.broker import (
    ApprovedOrder,
    Broker,
    OrderNotCancellableError,
    UnapprovedOrderError,
    VenueRejectedError,
    _release,
)
from engine.execution.ccxt import CcxtBroker, CcxtBrokerConfig
from engine.execution.models import Liquidity, OrderIntent, OrderSide, OrderStatus, OrderType
from engine.execution.paper import ManualPriceFeed, PaperBroker, PaperBrokerConfig
from tests.support.loopback import LoopbackConfig, LoopbackExchange

D = Decimal
T0 = 1_704_067_200_000
MINUTE = 60_000
SYMBOL = "BTC/USDT"
FEE = D("0.001")
START = {"USDT": D("100000"), "BTC": D("1")}


@dataclass
class Venue:
    """One adapter under test plus the means to move its market and to look inside the venue."""

    kind: str
    broker: Broker
    push: Callable[[tuple[int, str, str, str, str, str]], Awaitable[None]]
    submissions: Callable[[], int]  # orders that reached the venue (ccxt: POST /api/v3/order received)
    next_ts: int = T0 + MINUTE

    async def bar(self, low: str, high: str = "20000", close: str = "20000", volume: str = "100") -> None:
        await self.push((self.next_ts, close, high, low, close, volume))
        self.next_ts += MINUTE


VenueFactory = Callable[..., Awaitable[Venue]]


@pytest.fixture(params=["paper", "ccxt"])
async def make_venue(request: pytest.FixtureRequest) -> AsyncIterator[VenueFactory]:
    cleanups: list[Callable[[], Awaitable[None]]] = []
    first = (T0, "20000", "20000", "20000", "20000", "100")

    async def make(partial_fraction: str | None = None) -> Venue:
        fraction = None if partial_fraction is None else D(partial_fraction)
        if request.param == "paper":
            feed = ManualPriceFeed()
            feed.push(SYMBOL, first)
            paper = PaperBroker(
                PaperBrokerConfig(
                    taker_fee_rate=FEE,
                    maker_fee_rate=FEE,
                    slippage_fraction=D(0),
                    participation_cap=fraction,
                    initial_balances=dict(START),
                ),
                feed,
            )

            async def push_paper(row: tuple[int, str, str, str, str, str]) -> None:
                bar = feed.push(SYMBOL, row)
                await paper.on_bar(SYMBOL, bar)

            return Venue("paper", paper, push_paper, lambda: len(paper._orders))
        loopback = LoopbackExchange(
            LoopbackConfig(
                taker_fee_rate=FEE, maker_fee_rate=FEE, partial_fill_fraction=fraction, initial_balances=dict(START)
            )
        ).start()
        loopback.state.load_bars(SYMBOL, MINUTE, [first])
        broker = CcxtBroker(
            CcxtBrokerConfig(
                name="loopback",
                exchange="binance",
                api_key=loopback.api_key,
                secret=loopback.secret,
                api_url=loopback.url,
                rate_limit_ms=1,
                reconcile_delay_s=0,
            )
        )

        async def cleanup() -> None:
            await broker.close()
            loopback.stop()

        cleanups.append(cleanup)

        async def push_loopback(row: tuple[int, str, str, str, str, str]) -> None:
            loopback.state.push_bar(SYMBOL, row)

        return Venue("ccxt", broker, push_loopback, lambda: len(loopback.order_submissions()))

    yield make
    for cleanup in cleanups:
        await cleanup()


def _order(
    unique: str, side: OrderSide, type_: OrderType, quantity: str, price: str | None = None, tag: str = "a"
) -> ApprovedOrder:
    intent = OrderIntent(
        account="contract",
        symbol=SYMBOL,
        side=side,
        type=type_,
        quantity=D(quantity),
        price=None if price is None else D(price),
    )
    return _release(intent, f"approval-{unique}-{tag}")


async def _fee_paid_by_buy(venue: Venue, before: dict[str, Decimal], price: Decimal) -> Decimal:
    after = await venue.broker.balances()
    spent = before["USDT"] - after.get("USDT", D(0))
    received = after.get("BTC", D(0)) - before["BTC"]
    return spent - received * price


async def test_submit_is_idempotent_per_client_order_id(make_venue: VenueFactory, unique: str) -> None:
    venue = await make_venue()
    order = _order(unique, OrderSide.BUY, OrderType.MARKET, "0.01")
    before = await venue.broker.balances()
    first = await venue.broker.submit(order)
    again = await venue.broker.submit(order)
    assert again.venue_order_id == first.venue_order_id and again.client_order_id == order.client_order_id
    assert again.status is OrderStatus.FILLED and again.filled_quantity == D("0.01")
    assert venue.submissions() == 1
    assert await _fee_paid_by_buy(venue, before, D(20000)) == D("0.2")  # one buy of 0.01, not two


async def test_an_unreleased_order_is_refused_and_nothing_is_sent(make_venue: VenueFactory, unique: str) -> None:
    venue = await make_venue()
    intent = OrderIntent(account="contract", symbol=SYMBOL, side=OrderSide.BUY, type=OrderType.MARKET, quantity=D(1))
    forged = ApprovedOrder(intent, "x")  # built directly, without the gate's seal
    with pytest.raises(UnapprovedOrderError, match="not released by the approval gate"):
        await venue.broker.submit(forged)
    with pytest.raises(UnapprovedOrderError):
        await venue.broker.submit(intent)  # type: ignore[arg-type]
    assert venue.submissions() == 0
    assert await venue.broker.fetch(SYMBOL, forged.client_order_id) is None
    assert await venue.broker.balances() == START


async def test_fetch_of_an_order_the_venue_never_received_is_none(make_venue: VenueFactory, unique: str) -> None:
    venue = await make_venue()
    never = _order(unique, OrderSide.BUY, OrderType.MARKET, "0.01")
    assert await venue.broker.fetch(SYMBOL, never.client_order_id) is None


async def test_a_market_order_fills_at_the_last_price_with_a_taker_fee(make_venue: VenueFactory, unique: str) -> None:
    venue = await make_venue()
    order = _order(unique, OrderSide.BUY, OrderType.MARKET, "0.01")
    before = await venue.broker.balances()
    placed = await venue.broker.submit(order)
    assert (placed.status, placed.quantity, placed.filled_quantity) == (OrderStatus.FILLED, D("0.01"), D("0.01"))
    assert placed.average_price == D(20000)
    [fill] = placed.fills
    assert (fill.side, fill.quantity, fill.price, fill.liquidity) == (
        OrderSide.BUY,
        D("0.01"),
        D(20000),
        Liquidity.TAKER,
    )
    assert (fill.fee, fill.fee_currency, fill.order_id) == (D("0.2"), "USDT", order.client_order_id)
    assert await _fee_paid_by_buy(venue, before, D(20000)) == D("0.2")
    fetched = await venue.broker.fetch(SYMBOL, order.client_order_id)
    assert fetched is not None and fetched.status is OrderStatus.FILLED and fetched.fills == placed.fills

    sell = await venue.broker.submit(_order(unique, OrderSide.SELL, OrderType.MARKET, "0.5", tag="sell"))
    assert sell.status is OrderStatus.FILLED and sell.fills[0].fee == D("10")  # 0.5 x 20000 x 0.1 %


async def test_a_limit_order_rests_then_fills_as_maker_when_the_price_reaches_it(
    make_venue: VenueFactory, unique: str
) -> None:
    venue = await make_venue()
    order = _order(unique, OrderSide.BUY, OrderType.LIMIT, "0.01", "19900")
    placed = await venue.broker.submit(order)
    assert (placed.status, placed.filled_quantity, placed.fills) == (OrderStatus.SUBMITTED, D(0), [])
    assert [o.client_order_id for o in await venue.broker.open_orders(SYMBOL)] == [order.client_order_id]
    await venue.bar(low="19950")  # not low enough
    still = await venue.broker.fetch(SYMBOL, order.client_order_id)
    assert still is not None and still.status is OrderStatus.SUBMITTED
    await venue.bar(low="19880", close="19890")
    filled = await venue.broker.fetch(SYMBOL, order.client_order_id)
    assert filled is not None and filled.status is OrderStatus.FILLED
    [fill] = filled.fills
    assert (fill.price, fill.quantity, fill.liquidity, fill.fee) == (D(19900), D("0.01"), Liquidity.MAKER, D("0.199"))
    assert filled.average_price == D(19900)
    assert await venue.broker.open_orders(SYMBOL) == []


async def test_a_marketable_limit_order_takes_at_once(make_venue: VenueFactory, unique: str) -> None:
    venue = await make_venue()
    placed = await venue.broker.submit(_order(unique, OrderSide.SELL, OrderType.LIMIT, "0.1", "19990"))
    assert placed.status is OrderStatus.FILLED
    assert [(f.liquidity, f.price) for f in placed.fills] == [(Liquidity.TAKER, D(20000))]


async def test_cancel_an_open_order_then_cancel_again_is_an_error(make_venue: VenueFactory, unique: str) -> None:
    venue = await make_venue()
    order = _order(unique, OrderSide.BUY, OrderType.LIMIT, "0.5", "19000")
    await venue.broker.submit(order)
    cancelled = await venue.broker.cancel(SYMBOL, order.client_order_id)
    assert cancelled.status is OrderStatus.CANCELLED and cancelled.client_order_id == order.client_order_id
    assert await venue.broker.open_orders() == []
    assert await venue.broker.balances() == START  # the reserved quote is free again
    with pytest.raises(OrderNotCancellableError, match="already cancelled"):
        await venue.broker.cancel(SYMBOL, order.client_order_id)
    filled = _order(unique, OrderSide.BUY, OrderType.MARKET, "0.01", tag="filled")
    await venue.broker.submit(filled)
    with pytest.raises(OrderNotCancellableError, match="already filled"):
        await venue.broker.cancel(SYMBOL, filled.client_order_id)
    with pytest.raises(OrderNotCancellableError, match="unknown"):
        await venue.broker.cancel(SYMBOL, _order(unique, OrderSide.BUY, OrderType.MARKET, "1", tag="x").client_order_id)


async def test_partial_fills_accumulate_until_filled(make_venue: VenueFactory, unique: str) -> None:
    venue = await make_venue(partial_fraction="0.25")
    order = _order(unique, OrderSide.BUY, OrderType.LIMIT, "0.5", "19900")
    await venue.broker.submit(order)
    await venue.bar(low="19850", volume="1")  # at most 0.25 of a 1 BTC bar
    partial = await venue.broker.fetch(SYMBOL, order.client_order_id)
    assert partial is not None
    assert (partial.status, partial.filled_quantity) == (OrderStatus.PARTIALLY_FILLED, D("0.25"))
    assert [(f.quantity, f.price, f.fee) for f in partial.fills] == [(D("0.25"), D(19900), D("4.975"))]
    assert [o.filled_quantity for o in await venue.broker.open_orders(SYMBOL)] == [D("0.25")]
    await venue.bar(low="19850", volume="1")
    done = await venue.broker.fetch(SYMBOL, order.client_order_id)
    assert done is not None and (done.status, done.filled_quantity) == (OrderStatus.FILLED, D("0.5"))
    assert [f.quantity for f in done.fills] == [D("0.25"), D("0.25")]
    assert len({f.fill_id for f in done.fills}) == 2 and done.average_price == D(19900)


async def test_a_partially_filled_order_can_be_cancelled(make_venue: VenueFactory, unique: str) -> None:
    venue = await make_venue(partial_fraction="0.25")
    order = _order(unique, OrderSide.BUY, OrderType.LIMIT, "0.5", "19900")
    await venue.broker.submit(order)
    await venue.bar(low="19850", volume="1")
    cancelled = await venue.broker.cancel(SYMBOL, order.client_order_id)
    assert (cancelled.status, cancelled.filled_quantity) == (OrderStatus.CANCELLED, D("0.25"))
    assert len(cancelled.fills) == 1


@pytest.mark.parametrize(
    ("side", "quantity"), [(OrderSide.BUY, "10"), (OrderSide.SELL, "5")], ids=["buy-no-quote", "sell-no-base"]
)
async def test_insufficient_funds_is_rejected_with_a_clear_reason(
    make_venue: VenueFactory, unique: str, side: OrderSide, quantity: str
) -> None:
    venue = await make_venue()
    order = _order(unique, side, OrderType.MARKET, quantity)
    with pytest.raises(VenueRejectedError, match="insufficient") as caught:
        await venue.broker.submit(order)
    assert "secret" not in str(caught.value).lower() and "signature" not in str(caught.value)
    assert await venue.broker.fetch(SYMBOL, order.client_order_id) is None
    assert await venue.broker.balances() == START


async def test_an_unknown_symbol_is_rejected_with_a_clear_reason(make_venue: VenueFactory, unique: str) -> None:
    venue = await make_venue()
    intent = OrderIntent(account="contract", symbol="NOPE/USDT", side=OrderSide.BUY, type=OrderType.MARKET,
                         quantity=D(1))  # fmt: skip
    with pytest.raises(VenueRejectedError, match="NOPE/USDT"):
        await venue.broker.submit(_release(intent, f"approval-{unique}-nope"))
    assert venue.submissions() == 0


async def test_every_adapter_is_a_broker(make_venue: VenueFactory) -> None:
    venue = await make_venue()
    assert isinstance(venue.broker, Broker)
