"""Paper venue rules beyond the shared broker contract: slippage, stops, time in force, volume caps, balances."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from engine.errors import ValidationFailedError
from engine.execution.broker import ApprovedOrder, VenueOrder, VenueRejectedError, _release
from engine.execution.models import Liquidity, OrderIntent, OrderSide, OrderStatus, OrderType, TimeInForce
from engine.execution.paper import ManualPriceFeed, PaperBroker, PaperBrokerConfig, PriceBar, PriceFeed

D = Decimal
T0 = 1_704_067_200_000
MINUTE = 60_000
SYMBOL = "BTC/USDT"
NOW = datetime(2024, 1, 1, 0, 1, tzinfo=UTC)


def _broker(**config: object) -> tuple[PaperBroker, ManualPriceFeed]:
    feed = ManualPriceFeed()
    feed.push(SYMBOL, (T0, "20000", "20000", "20000", "20000", "100"))
    values: dict[str, object] = {
        "taker_fee_rate": D("0.001"),
        "maker_fee_rate": D("0.0005"),
        "slippage_fraction": D(0),
        "initial_balances": {"USDT": D(100000), "BTC": D(1)},
    } | config
    return PaperBroker(PaperBrokerConfig.model_validate(values), feed, clock=lambda: NOW), feed


def _order(
    side: OrderSide,
    type_: OrderType,
    quantity: str,
    *,
    price: str | None = None,
    stop: str | None = None,
    tif: TimeInForce = TimeInForce.GTC,
    symbol: str = SYMBOL,
    tag: str = "a",
) -> ApprovedOrder:
    intent = OrderIntent(
        account="paper",
        symbol=symbol,
        side=side,
        type=type_,
        quantity=D(quantity),
        price=None if price is None else D(price),
        stop_price=None if stop is None else D(stop),
        time_in_force=tif,
    )
    return _release(intent, f"paper-test-{tag}-{type_}-{side}-{quantity}-{price}-{stop}-{tif}")


async def _bar(
    broker: PaperBroker, feed: ManualPriceFeed, i: int, o: str, h: str, lo: str, c: str, v: str = "100"
) -> list[VenueOrder]:
    bar = feed.push(SYMBOL, (T0 + i * MINUTE, o, h, lo, c, v))
    return await broker.on_bar(SYMBOL, bar)


async def test_market_orders_pay_slippage_and_the_taker_fee() -> None:
    broker, _ = _broker(slippage_fraction=D("0.001"))
    buy = await broker.submit(_order(OrderSide.BUY, OrderType.MARKET, "0.5"))
    [fill] = buy.fills
    assert (fill.price, fill.fee, fill.liquidity, fill.ts) == (D(20020), D("10.010"), Liquidity.TAKER, NOW)
    sell = await broker.submit(_order(OrderSide.SELL, OrderType.MARKET, "0.5"))
    assert sell.fills[0].price == D(19980)
    balances = await broker.balances()
    assert balances["BTC"] == D(1)
    assert balances["USDT"] == D(100000) - D(10010) - D("10.010") + D(9990) - D("9.990")


async def test_a_limit_buy_reserves_quote_until_it_fills_or_is_cancelled() -> None:
    broker, _ = _broker()
    order = _order(OrderSide.BUY, OrderType.LIMIT, "1", price="19000")
    await broker.submit(order)
    reserved = D(19000) * (1 + D("0.001"))  # the worst fee of the two
    assert (await broker.free_balances())["USDT"] == D(100000) - reserved
    assert await broker.balances() == {"USDT": D(100000), "BTC": D(1)}
    with pytest.raises(VenueRejectedError, match=r"needs 81081 USDT, 80981 USDT is free"):
        await broker.submit(_order(OrderSide.BUY, OrderType.LIMIT, "4.05", price="20000", tag="big"))
    await broker.cancel(SYMBOL, order.client_order_id)
    assert await broker.free_balances() == {"USDT": D(100000), "BTC": D(1)}


async def test_a_buy_stop_triggers_when_a_bar_reaches_it_and_fills_at_the_stop_or_the_gap() -> None:
    broker, feed = _broker()
    stop = _order(OrderSide.BUY, OrderType.STOP, "0.1", stop="20500")
    gap = _order(OrderSide.BUY, OrderType.STOP, "0.1", stop="20600", tag="gap")
    placed = await broker.submit(stop)
    assert placed.status is OrderStatus.SUBMITTED and placed.fills == []
    await _bar(broker, feed, 1, "20000", "20400", "19900", "20300")  # below both stops
    waiting = await broker.fetch(SYMBOL, stop.client_order_id)
    assert waiting is not None and waiting.status is OrderStatus.SUBMITTED
    await broker.submit(gap)
    changed = await _bar(broker, feed, 2, "20300", "20550", "20250", "20500")
    assert [c.client_order_id for c in changed] == [stop.client_order_id]
    assert changed[0].fills[0].price == D(20500) and changed[0].fills[0].liquidity is Liquidity.TAKER
    [gapped] = await _bar(broker, feed, 3, "20700", "20800", "20650", "20750")  # opens above 20600
    assert gapped.status is OrderStatus.FILLED and gapped.fills[0].price == D(20700)


async def test_a_sell_stop_already_through_fills_on_arrival() -> None:
    broker, _ = _broker()
    placed = await broker.submit(_order(OrderSide.SELL, OrderType.STOP, "0.1", stop="20100"))
    assert placed.status is OrderStatus.FILLED and placed.fills[0].price == D(20000)


async def test_a_stop_limit_becomes_a_resting_limit_once_triggered() -> None:
    broker, feed = _broker()
    order = _order(OrderSide.SELL, OrderType.STOP_LIMIT, "0.2", price="19600", stop="19500")
    await broker.submit(order)
    # triggered at 19500, below its 19600 limit: it rests as a limit order (nothing visible changes yet)
    assert await _bar(broker, feed, 1, "19800", "19800", "19400", "19450") == []
    [filled] = await _bar(broker, feed, 2, "19450", "19650", "19400", "19500")
    fill = filled.fills[0]
    assert (filled.status, fill.price, fill.liquidity, fill.fee) == (
        OrderStatus.FILLED, D(19600), Liquidity.MAKER, D("1.96"),
    )  # fmt: skip


async def test_time_in_force_ioc_fok_and_post_only() -> None:
    broker, _ = _broker(participation_cap=D("0.002"))  # 0.2 BTC of a 100 BTC bar
    ioc = await broker.submit(_order(OrderSide.BUY, OrderType.LIMIT, "1", price="19000", tif=TimeInForce.IOC))
    assert (ioc.status, ioc.fills) == (OrderStatus.EXPIRED, [])
    partial = await broker.submit(_order(OrderSide.BUY, OrderType.LIMIT, "0.5", price="20000", tif=TimeInForce.IOC))
    assert (partial.status, partial.filled_quantity) == (OrderStatus.EXPIRED, D("0.2"))
    fok = await broker.submit(_order(OrderSide.BUY, OrderType.MARKET, "0.5", tif=TimeInForce.FOK))
    assert (fok.status, fok.filled_quantity) == (OrderStatus.EXPIRED, D(0))
    with pytest.raises(VenueRejectedError, match="post-only order would take"):
        await broker.submit(_order(OrderSide.SELL, OrderType.LIMIT, "0.1", price="19900", tif=TimeInForce.POST_ONLY))
    maker = await broker.submit(
        _order(OrderSide.SELL, OrderType.LIMIT, "0.1", price="20100", tif=TimeInForce.POST_ONLY)
    )
    assert maker.status is OrderStatus.SUBMITTED
    assert (await broker.free_balances())["BTC"] == D("1.2") - D("0.1")  # bought 0.2, 0.1 reserved by the maker


async def test_a_capped_market_order_works_over_later_bars_at_their_open() -> None:
    broker, feed = _broker(participation_cap=D("0.5"))
    arrival = feed.push(SYMBOL, (T0 + MINUTE, "20000", "20000", "20000", "20000", "1"))
    order = _order(OrderSide.BUY, OrderType.MARKET, "1")
    first = await broker.submit(order)
    assert (first.status, first.filled_quantity) == (OrderStatus.PARTIALLY_FILLED, D("0.5"))
    assert await broker.on_bar(SYMBOL, arrival) == []  # the arrival bar is never applied twice
    [done] = await _bar(broker, feed, 2, "20100", "20200", "20000", "20150", "1")
    assert done.status is OrderStatus.FILLED and [f.price for f in done.fills] == [D(20000), D(20100)]
    assert done.average_price == D(20050)


async def test_a_remainder_the_account_can_no_longer_pay_is_cancelled_with_a_reason() -> None:
    broker, feed = _broker(participation_cap=D("0.5"), initial_balances={"USDT": D(20100)})
    feed.push(SYMBOL, (T0 + MINUTE, "20000", "20000", "20000", "20000", "1"))
    await broker.submit(_order(OrderSide.BUY, OrderType.MARKET, "1"))
    [stopped] = await _bar(broker, feed, 2, "30000", "30000", "30000", "30000", "1")
    assert (stopped.status, stopped.filled_quantity) == (OrderStatus.CANCELLED, D("0.5"))
    assert stopped.reason is not None and "insufficient balance" in stopped.reason
    assert await broker.balances() == {"USDT": D(20100) - D(10010), "BTC": D("0.5")}


async def test_no_price_or_a_derivative_symbol_is_rejected() -> None:
    broker, _ = _broker()
    with pytest.raises(VenueRejectedError, match="no price for this symbol"):
        await broker.submit(_order(OrderSide.BUY, OrderType.MARKET, "1", symbol="ETH/USDT"))
    with pytest.raises(VenueRejectedError, match="spot symbols"):
        await broker.submit(_order(OrderSide.BUY, OrderType.MARKET, "1", symbol="BTC/USDT:USDT"))


async def test_reconcile_returns_known_orders_and_every_open_one() -> None:
    broker, _ = _broker()
    filled = _order(OrderSide.BUY, OrderType.MARKET, "0.1")
    resting = _order(OrderSide.BUY, OrderType.LIMIT, "0.1", price="19000")
    await broker.submit(filled)
    await broker.submit(resting)
    found = await broker.reconcile({filled.client_order_id: SYMBOL, "iqtsunknown": SYMBOL})
    assert [v.client_order_id for v in found] == [filled.client_order_id, resting.client_order_id]


def test_bars_are_checked() -> None:
    feed = ManualPriceFeed()
    assert isinstance(feed, PriceFeed)
    with pytest.raises(ValidationFailedError, match="inconsistent bar"):
        feed.push(SYMBOL, (T0, "10", "9", "8", "10", "1"))
    feed.push(SYMBOL, PriceBar.of((T0, 10.1, 10.2, 10.0, 10.1, 0)))
    with pytest.raises(ValidationFailedError, match="not after the last one"):
        feed.push(SYMBOL, (T0, "10", "10", "10", "10", "1"))
    with pytest.raises(ValidationFailedError, match="unified symbol"):
        feed.push("BTCUSDT", (T0 + MINUTE, "10", "10", "10", "10", "1"))
    assert PriceBar.of((T0, 0.1, 0.1, 0.1, 0.1, 3)).close == D("0.1")  # floats through their repr, exactly


async def test_every_fill_carries_the_quote_it_was_made_against() -> None:
    feed = ManualPriceFeed(clock=lambda: NOW)
    feed.push(SYMBOL, (T0, "20000", "20000", "20000", "20000", "100"))
    broker = PaperBroker(PaperBrokerConfig(slippage_fraction=D(0)), feed, clock=lambda: NOW)
    placed = await broker.submit(_order(OrderSide.BUY, OrderType.MARKET, "0.1"))
    arrival = placed.fills[0].quote
    assert arrival is not None and (arrival.series, arrival.price, arrival.replayed) == (
        f"manual:{SYMBOL}",
        D(20000),
        False,
    )
    assert arrival.bar_open == datetime.fromtimestamp(T0 / 1000, UTC) and arrival.age_seconds == 60  # NOW is T0 + 1 min

    resting = _order(OrderSide.BUY, OrderType.LIMIT, "0.1", price="19500", tag="rest")
    await broker.submit(resting)
    [filled] = await _bar(broker, feed, 1, "19900", "19950", "19400", "19600")
    later = filled.fills[0].quote
    assert later is not None and later.series == f"manual:{SYMBOL}" and later.price == D(19600)
    assert later.bar_open == datetime.fromtimestamp((T0 + MINUTE) / 1000, UTC)
