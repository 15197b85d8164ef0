"""The OMS state machine: every legal transition, every illegal one refused with a clear message; fills."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from engine.errors import ValidationFailedError
from engine.execution.models import (
    TERMINAL_STATUSES,
    TRANSITIONS,
    Fill,
    IllegalTransitionError,
    OrderEvent,
    OrderStatus,
    allowed_events,
    transition,
)

S, E = OrderStatus, OrderEvent

LEGAL = {
    (S.NEW, E.SUBMIT): S.SUBMITTED,
    (S.SUBMITTED, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.SUBMITTED, E.FILL): S.FILLED,
    (S.PARTIALLY_FILLED, E.FILL): S.FILLED,
    (S.NEW, E.CANCEL): S.CANCELLED,
    (S.SUBMITTED, E.CANCEL): S.CANCELLED,
    (S.PARTIALLY_FILLED, E.CANCEL): S.CANCELLED,
    (S.NEW, E.REJECT): S.REJECTED,
    (S.SUBMITTED, E.REJECT): S.REJECTED,
    (S.SUBMITTED, E.EXPIRE): S.EXPIRED,
    (S.PARTIALLY_FILLED, E.EXPIRE): S.EXPIRED,
}


def test_the_table_is_exactly_the_specified_machine() -> None:
    assert dict(TRANSITIONS) == LEGAL


@pytest.mark.parametrize(("current", "event"), list(LEGAL))
def test_legal_transitions(current: OrderStatus, event: OrderEvent) -> None:
    assert transition(current, event) is LEGAL[(current, event)]


ILLEGAL = [(status, event) for status in OrderStatus for event in OrderEvent if (status, event) not in LEGAL]


@pytest.mark.parametrize(("current", "event"), ILLEGAL)
def test_illegal_transitions_raise(current: OrderStatus, event: OrderEvent) -> None:
    with pytest.raises(IllegalTransitionError) as raised:
        transition(current, event)
    assert isinstance(raised.value, ValidationFailedError)
    assert raised.value.current is current and raised.value.event is event
    assert f"cannot apply '{event.value}' to a {current.value} order" in str(raised.value)


def test_messages_say_what_is_allowed_or_that_the_order_is_final() -> None:
    with pytest.raises(IllegalTransitionError, match=r"\(allowed: submit, cancel, reject\)"):
        transition(S.NEW, E.FILL)
    with pytest.raises(IllegalTransitionError, match=r"cannot apply 'cancel' to a filled order \(filled is terminal\)"):
        transition(S.FILLED, E.CANCEL)


def test_terminal_statuses_accept_no_event() -> None:
    assert {S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED} == TERMINAL_STATUSES
    for status in OrderStatus:
        assert status.is_terminal == (allowed_events(status) == ())
        assert status.is_open != status.is_terminal


def test_a_full_lifecycle() -> None:
    status = S.NEW
    for event in (E.SUBMIT, E.PARTIAL_FILL, E.PARTIAL_FILL, E.FILL):
        status = transition(status, event)
    assert status is S.FILLED


def _fill(**change: object) -> Fill:
    fields: dict[str, object] = {
        "order_id": "o-1",
        "symbol": "BTC/USDT",
        "side": "sell",
        "quantity": Decimal("0.25"),
        "price": Decimal(60000),
        "fee": Decimal("15"),
        "fee_currency": "USDT",
        "ts": datetime(2024, 5, 1, tzinfo=UTC),
        "liquidity": "maker",
    }
    fields.update(change)
    return Fill(**fields)


def test_fills() -> None:
    fill = _fill()
    assert fill.signed_quantity == Decimal("-0.25")
    assert fill.notional == Decimal(15000)
    assert _fill(fee=Decimal("-1.5")).fee == Decimal("-1.5")  # a maker rebate
    with pytest.raises(ValidationError, match="timezone-aware"):
        _fill(ts=datetime(2024, 5, 1))
    with pytest.raises(ValidationError, match="greater than 0"):
        _fill(quantity=Decimal(0))
    with pytest.raises(ValidationError):
        _fill(liquidity="both")
