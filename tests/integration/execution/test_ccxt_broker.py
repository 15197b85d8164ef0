"""CcxtBroker through the real ccxt binance client against the loopback exchange: lost answers, restarts,
rejections, reconciliation and the API key permission check."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Literal

import pytest
from pydantic import SecretStr

from engine.execution.broker import (
    ApprovedOrder,
    UnapprovedOrderError,
    VenueRejectedError,
    VenueUnavailableError,
    _release,
)
from engine.execution.ccxt import CcxtBroker, CcxtBrokerConfig, CcxtRejectedError, WithdrawalKeyError
from engine.execution.models import OrderIntent, OrderSide, OrderStatus, OrderType, TimeInForce
from tests.support.loopback import ApiKeyRestrictions, LoopbackConfig, LoopbackExchange

D = Decimal
T0 = 1_704_067_200_000
MINUTE = 60_000
SYMBOL = "BTC/USDT"
ORDER_PATH = "/api/v3/order"


def _config(ex: LoopbackExchange, **overrides: object) -> CcxtBrokerConfig:
    values: dict[str, object] = {
        "name": "loopback",
        "exchange": "binance",
        "api_key": ex.api_key,
        "secret": ex.secret,
        "api_url": ex.url,
        "rate_limit_ms": 1,
        "reconcile_delay_s": 0,
    } | overrides
    return CcxtBrokerConfig.model_validate(values)


def _start(config: LoopbackConfig | None = None) -> LoopbackExchange:
    ex = LoopbackExchange(config).start()
    ex.state.load_bars(SYMBOL, MINUTE, [(T0, 20000, 20000, 20000, 20000, 100)])
    return ex


@pytest.fixture
def exchange() -> Iterator[LoopbackExchange]:
    ex = _start()
    yield ex
    ex.stop()


@pytest.fixture
async def broker(exchange: LoopbackExchange) -> AsyncIterator[CcxtBroker]:
    b = CcxtBroker(_config(exchange))
    yield b
    await b.close()


def _order(
    unique: str,
    side: OrderSide = OrderSide.BUY,
    type_: OrderType = OrderType.MARKET,
    quantity: str = "0.01",
    price: str | None = None,
    *,
    tag: str = "a",
    stop: str | None = None,
    tif: TimeInForce = TimeInForce.GTC,
) -> ApprovedOrder:
    intent = OrderIntent(
        account="loopback",
        symbol=SYMBOL,
        side=side,
        type=type_,
        quantity=D(quantity),
        price=None if price is None else D(price),
        stop_price=None if stop is None else D(stop),
        time_in_force=tif,
    )
    return _release(intent, f"approval-{unique}-{tag}")


def _held(ex: LoopbackExchange, client_order_id: str) -> int:
    return sum(1 for o in ex.state.orders() if o.client_order_id == client_order_id)


@pytest.mark.parametrize("mode", ["close", "status"])
async def test_a_lost_answer_is_reconciled_and_a_restarted_worker_adds_nothing(
    exchange: LoopbackExchange, broker: CcxtBroker, unique: str, mode: Literal["close", "status"]
) -> None:
    order = _order(unique)
    exchange.drop_after_submit_next(1, mode=mode)
    venue = await broker.submit(order)
    assert venue.client_order_id == order.client_order_id
    assert (venue.status, venue.filled_quantity, len(venue.fills)) == (OrderStatus.FILLED, D("0.01"), 1)
    assert len(exchange.order_submissions()) == 1 and _held(exchange, order.client_order_id) == 1
    assert [r.status for r in exchange.order_submissions()] == [None if mode == "close" else 502]
    lookups = exchange.requests("GET", ORDER_PATH)
    assert [r.params["origClientOrderId"] for r in lookups] == [order.client_order_id] * 2  # before, and after
    assert [r.status for r in lookups] == [400, 200]  # not there yet; then found

    restarted = CcxtBroker(_config(exchange))  # a new worker process with the same approved order
    try:
        again = await restarted.submit(order)
    finally:
        await restarted.close()
    assert again.venue_order_id == venue.venue_order_id and again.status is OrderStatus.FILLED
    assert len(exchange.order_submissions()) == 1 and len(exchange.state.orders()) == 1


async def test_a_lost_answer_for_a_resting_order_returns_it_open(
    exchange: LoopbackExchange, broker: CcxtBroker, unique: str
) -> None:
    order = _order(unique, type_=OrderType.LIMIT, price="19000")
    exchange.drop_after_submit_next(1)
    venue = await broker.submit(order)
    assert (venue.status, venue.filled_quantity, venue.fills) == (OrderStatus.SUBMITTED, D(0), [])
    assert _held(exchange, order.client_order_id) == 1 and len(exchange.order_submissions()) == 1


async def test_a_send_that_never_reached_the_matching_engine_is_sent_again_once(
    exchange: LoopbackExchange, broker: CcxtBroker, unique: str
) -> None:
    order = _order(unique)
    exchange.fail_next(1, 503, method="POST", path=ORDER_PATH)  # refused before processing
    venue = await broker.submit(order)
    assert venue.status is OrderStatus.FILLED
    assert [r.status for r in exchange.order_submissions()] == [503, 200]
    assert _held(exchange, order.client_order_id) == 1


async def test_when_the_venue_cannot_be_asked_the_fate_stays_unknown_then_a_retry_finds_the_order(
    exchange: LoopbackExchange, broker: CcxtBroker, unique: str
) -> None:
    order = _order(unique)
    await broker.fetch(SYMBOL, order.client_order_id)  # markets loaded; the venue is healthy
    exchange.drop_after_submit_next(1)
    exchange.fail_next(1, 400, code=-2013, msg="Order does not exist.", method="GET", path=ORDER_PATH)
    exchange.fail_next(10, 503, method="GET", path=ORDER_PATH)  # ...then every lookup fails
    with pytest.raises(VenueUnavailableError, match="fate is unknown") as caught:
        await broker.submit(order)
    message = str(caught.value)
    assert exchange.api_key not in message and exchange.secret not in message and "signature" not in message
    assert _held(exchange, order.client_order_id) == 1 and len(exchange.order_submissions()) == 1

    exchange.clear_faults()
    venue = await broker.submit(order)  # the OMS retries later: the order is found, not sent again
    assert venue.status is OrderStatus.FILLED
    assert len(exchange.order_submissions()) == 1 and _held(exchange, order.client_order_id) == 1


async def test_a_duplicate_client_order_id_refusal_returns_the_order_already_there(
    exchange: LoopbackExchange, broker: CcxtBroker, unique: str
) -> None:
    order = _order(unique, type_=OrderType.LIMIT, price="19000")
    first = await broker.submit(order)
    # another worker's check-then-send race: its lookup saw nothing, so it sends, and Binance refuses the id
    exchange.fail_next(1, 400, code=-2013, msg="Order does not exist.", method="GET", path=ORDER_PATH)
    again = await broker.submit(order)
    assert again.venue_order_id == first.venue_order_id
    assert [r.status for r in exchange.order_submissions()] == [200, 400]
    assert _held(exchange, order.client_order_id) == 1


async def test_unreleased_orders_never_leave_the_process(exchange: LoopbackExchange, broker: CcxtBroker) -> None:
    intent = _order("forged").intent
    with pytest.raises(UnapprovedOrderError):
        await broker.submit(ApprovedOrder(intent, "forged"))
    assert exchange.requests() == []


@pytest.mark.parametrize(
    ("order_args", "kind", "reason"),
    [
        ({"quantity": "100"}, "insufficient_funds", "insufficient funds (Account has insufficient balance"),
        ({"quantity": "0.0001"}, "invalid_order", "breaks its rules (Filter failure: NOTIONAL (code -1013))"),
        ({"quantity": "0.010001"}, "precision", "quantity 0.010001 does not fit the precision of BTC/USDT"),
        ({"quantity": "0.000001"}, "invalid_order", "must be greater than minimum amount precision of 0.00001"),
        ({"type_": OrderType.LIMIT, "price": "19000.001"}, "precision", "price 19000.001 does not fit the precision"),
        ({"type_": OrderType.STOP, "stop": "21000"}, "invalid_order", "triggerPrice parameter is not allowed"),
        (
            {"type_": OrderType.STOP_LIMIT, "price": "21100", "stop": "21000"},
            "invalid_order",
            "Order type STOP_LOSS_LIMIT is not supported by the loopback exchange. (code -1116)",
        ),
        (
            {"type_": OrderType.LIMIT, "price": "20100", "tif": TimeInForce.POST_ONLY},
            "post_only",
            "a post-only order would take",
        ),
    ],
    ids=["funds", "notional", "qty-precision", "qty-too-small", "price-precision", "stop", "stop-limit", "post-only"],
)
async def test_rejections_carry_a_clear_reason_and_no_secret(
    exchange: LoopbackExchange,
    broker: CcxtBroker,
    unique: str,
    order_args: dict[str, object],
    kind: str,
    reason: str,
) -> None:
    order = _order(unique, **order_args)  # type: ignore[arg-type]
    with pytest.raises(CcxtRejectedError) as caught:
        await broker.submit(order)
    error = caught.value
    assert error.kind == kind, str(error)
    assert reason in str(error)
    assert exchange.api_key not in str(error) and exchange.secret not in str(error) and "http" not in str(error)
    assert _held(exchange, order.client_order_id) == 0
    if kind == "precision":
        assert exchange.order_submissions() == []  # refused before sending: never rounded into another order
    if "STOP_LOSS_LIMIT" in reason:
        [sent] = exchange.order_submissions()
        assert (sent.params["type"], sent.params["stopPrice"], sent.params["price"]) == (
            "STOP_LOSS_LIMIT",
            "21000",
            "21100",
        )


async def test_a_wrong_secret_is_a_clear_rejection_without_the_secret(exchange: LoopbackExchange, unique: str) -> None:
    wrong = "wrong-secret-0123456789abcdef"
    bad = CcxtBroker(_config(exchange, secret=SecretStr(wrong)))
    try:
        with pytest.raises(VenueRejectedError, match="the API key was not accepted") as caught:
            await bad.submit(_order(unique))
    finally:
        await bad.close()
    assert wrong not in str(caught.value) and exchange.api_key not in str(caught.value)
    assert exchange.state.orders() == []


async def test_reconcile_finds_known_open_and_recently_filled_iqts_orders(
    exchange: LoopbackExchange, broker: CcxtBroker, unique: str
) -> None:
    filled_known = _order(unique, tag="filled-known")
    open_known = _order(unique, type_=OrderType.LIMIT, price="19000", tag="open-known")
    open_lost = _order(unique, type_=OrderType.LIMIT, price="19500", tag="open-lost")
    filled_lost = _order(unique, side=OrderSide.SELL, quantity="0.02", tag="filled-lost")
    never_sent = _order(unique, tag="never-sent")
    for order in (filled_known, open_known, open_lost, filled_lost):
        await broker.submit(order)
    await broker.exchange.create_order(SYMBOL, "limit", "buy", "0.01", "18000", {"newClientOrderId": "by-hand-1"})

    found = await broker.reconcile(
        {filled_known.client_order_id: SYMBOL, open_known.client_order_id: SYMBOL, never_sent.client_order_id: SYMBOL}
    )
    by_id = {v.client_order_id: v for v in found}
    assert set(by_id) == {o.client_order_id for o in (filled_known, open_known, open_lost, filled_lost)}
    assert by_id[filled_known.client_order_id].status is OrderStatus.FILLED
    assert by_id[open_known.client_order_id].status is OrderStatus.SUBMITTED
    assert by_id[open_lost.client_order_id].status is OrderStatus.SUBMITTED
    lost = by_id[filled_lost.client_order_id]
    assert (lost.status, lost.filled_quantity, lost.average_price) == (OrderStatus.FILLED, D("0.02"), D(20000))
    [fill] = lost.fills
    assert (fill.side, fill.quantity, fill.fee, fill.fee_currency) == (OrderSide.SELL, D("0.02"), D("0.4"), "USDT")


async def test_fills_of_a_resting_order_are_read_from_the_account_trades(
    exchange: LoopbackExchange, broker: CcxtBroker, unique: str
) -> None:
    order = _order(unique, type_=OrderType.LIMIT, price="19900", quantity="0.5")
    await broker.submit(order)
    [resting] = await broker.open_orders(SYMBOL)
    assert (resting.client_order_id, resting.status) == (order.client_order_id, OrderStatus.SUBMITTED)
    exchange.state.push_bar(SYMBOL, (T0 + MINUTE, 20000, 20000, 19800, 19850, 100))
    assert await broker.open_orders() == []
    venue = await broker.fetch(SYMBOL, order.client_order_id)
    assert venue is not None and venue.status is OrderStatus.FILLED
    [fill] = venue.fills
    # Binance charges a buyer's fee in the base asset: 0.0005 BTC, converted at the fill price
    assert (fill.price, fill.fee, fill.fee_currency, fill.fill_id) == (D(19900), D("9.95"), "USDT", "5000001")
    assert exchange.requests("GET", "/api/v3/myTrades")[-1].params["orderId"] == venue.venue_order_id


async def test_balances_are_exact_decimals(exchange: LoopbackExchange, broker: CcxtBroker, unique: str) -> None:
    assert await broker.balances() == {"USDT": D(100000), "BTC": D(1), "ETH": D(10)}
    await broker.submit(_order(unique, quantity="0.03"))
    balances = await broker.balances()
    assert balances["USDT"] == D(100000) - D(600) and balances["BTC"] == D("1.02997")


async def test_key_permissions(unique: str) -> None:
    cases: list[tuple[LoopbackConfig, bool | None]] = [
        (LoopbackConfig(), False),
        (LoopbackConfig(api_key_restrictions=None), None),
        (LoopbackConfig(api_key_restrictions=ApiKeyRestrictions(enable_withdrawals=True)), True),
    ]
    for config, can_withdraw in cases:
        ex = _start(config)
        broker = CcxtBroker(_config(ex))
        try:
            if can_withdraw:
                with pytest.raises(WithdrawalKeyError, match="has withdrawal rights"):
                    await broker.check_key_permissions()
            else:
                permissions = await broker.check_key_permissions()
                assert permissions.reported is (can_withdraw is not None)
                assert permissions.can_withdraw is can_withdraw
                if can_withdraw is None:
                    assert "make sure the key of account loopback cannot withdraw" in permissions.detail
        finally:
            await broker.close()
            ex.stop()
        assert [r.path for r in ex.requests()] == ["/sapi/v1/account/apiRestrictions"]
