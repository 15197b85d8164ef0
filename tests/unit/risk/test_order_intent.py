"""OrderIntent validation and its hash: stable under number formatting and field order, sensitive to every field."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from engine.execution.models import OrderIntent, canonical_decimal

BASE: dict[str, Any] = {
    "account": "main",
    "symbol": "BTC/USDT",
    "side": "buy",
    "type": "stop_limit",
    "quantity": Decimal("0.5"),
    "price": Decimal("61000"),
    "stop_price": Decimal("60500"),
    "mode": "dry-run",
}


def test_the_hash_is_sha256_of_the_documented_canonical_json() -> None:
    canonical = (
        '{"account":"main","mode":"dry-run","price":"61000","quantity":"0.5","schema":"iqts.order-intent/1",'
        '"side":"buy","stop_price":"60500","symbol":"BTC/USDT","time_in_force":"gtc","type":"stop_limit"}'
    )
    assert OrderIntent(**BASE).intent_hash() == hashlib.sha256(canonical.encode()).hexdigest()


@pytest.mark.parametrize(
    ("field", "spellings"),
    [
        ("quantity", ["0.5", "0.50", "0.500000", "5E-1", "0.5e0"]),
        ("price", ["61000", "61000.0", "61000.00", "6.1E+4", "61E3"]),
        ("stop_price", ["60500", "60500.000"]),
    ],
)
def test_numbers_hash_alike_however_written(field: str, spellings: list[str]) -> None:
    hashes = {OrderIntent(**{**BASE, field: Decimal(text)}).intent_hash() for text in spellings}
    assert len(hashes) == 1


def test_field_order_and_input_form_do_not_matter() -> None:
    forward = OrderIntent(**BASE)
    backward = OrderIntent(**dict(reversed(list(BASE.items()))))
    from_strings = OrderIntent.model_validate({k: str(v) for k, v in BASE.items()})
    from_json = OrderIntent.model_validate_json(forward.model_dump_json())
    assert forward.intent_hash() == backward.intent_hash() == from_strings.intent_hash() == from_json.intent_hash()


def test_attribution_is_not_hashed_but_time_in_force_is() -> None:
    base = OrderIntent(**BASE).intent_hash()
    assert OrderIntent(**BASE, strategy="sma_cross").intent_hash() == base
    assert OrderIntent(**BASE, time_in_force="ioc").intent_hash() != base


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("account", "main2"),
        ("symbol", "ETH/USDT"),
        ("side", "sell"),
        ("quantity", Decimal("0.51")),
        ("price", Decimal("61000.01")),
        ("stop_price", Decimal("60499")),
        ("mode", "live"),
    ],
)
def test_changing_any_hashed_field_changes_the_hash(field: str, value: Any) -> None:
    assert OrderIntent(**{**BASE, field: value}).intent_hash() != OrderIntent(**BASE).intent_hash()


def test_changing_the_type_changes_the_hash() -> None:
    limit = OrderIntent(**{**BASE, "type": "limit", "stop_price": None})
    market = OrderIntent(**{**BASE, "type": "market", "price": None, "stop_price": None})
    stop = OrderIntent(**{**BASE, "type": "stop", "price": None})
    hashes = {OrderIntent(**BASE).intent_hash(), limit.intent_hash(), market.intent_hash(), stop.intent_hash()}
    assert len(hashes) == 4


amounts = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal(10**9), places=8)
intents = st.fixed_dictionaries(
    {
        "account": st.sampled_from(["main", "alt", "hedge"]),
        "symbol": st.sampled_from(["BTC/USDT", "ETH/USDT", "BTC/USD"]),
        "side": st.sampled_from(["buy", "sell"]),
        "type": st.just("limit"),
        "quantity": amounts,
        "price": amounts,
        "mode": st.sampled_from(["dry-run", "sandbox", "live"]),
    }
)


@settings(max_examples=200, deadline=None)
@given(fields=intents, zeros=st.integers(min_value=0, max_value=6))
def test_trailing_zeros_never_change_the_hash(fields: dict[str, Any], zeros: int) -> None:
    exponent = Decimal(1).scaleb(-(8 + zeros))  # more decimal places: the same number, written with more zeros
    padded = {k: v.quantize(exponent) if isinstance(v, Decimal) else v for k, v in fields.items()}
    assert all(padded[k] == fields[k] for k in fields)
    assert OrderIntent(**padded).intent_hash() == OrderIntent(**fields).intent_hash()


@settings(max_examples=300, deadline=None)
@given(a=intents, b=intents)
def test_the_hash_identifies_the_hashed_fields(a: dict[str, Any], b: dict[str, Any]) -> None:
    first, second = OrderIntent(**a), OrderIntent(**b)
    same_order = first.hashed_fields() == second.hashed_fields()
    assert (first.intent_hash() == second.intent_hash()) == same_order


def test_canonical_decimal() -> None:
    assert canonical_decimal(Decimal("1.000")) == "1"
    assert canonical_decimal(Decimal("1E+3")) == "1000"
    assert canonical_decimal(Decimal("0.00100")) == "0.001"
    assert canonical_decimal(Decimal("-0.0")) == "0"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": "limit", "price": None, "stop_price": None}, "a limit order needs a price"),
        ({"type": "market", "stop_price": None}, "a market order takes no price"),
        ({"type": "stop", "price": None, "stop_price": None}, "a stop order needs a stop_price"),
        ({"type": "limit"}, "a limit order takes no stop_price"),
        ({"quantity": Decimal(0)}, "greater than 0"),
        ({"quantity": Decimal("NaN")}, "finite number"),
        ({"price": Decimal(-1)}, "greater than 0"),
        ({"symbol": "BTCUSDT"}, "should match pattern"),
        ({"mode": "paper"}, "'dry-run', 'sandbox' or 'live'"),
        ({"account": " main"}, "whitespace"),
        ({"leverage": 5}, "Extra inputs are not permitted"),
    ],
)
def test_malformed_intents_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        OrderIntent(**{**BASE, **change})


def test_intents_are_immutable_and_know_their_currencies() -> None:
    intent = OrderIntent(**{**BASE, "symbol": "BTC/USDT:USDT"})
    assert (intent.base, intent.quote) == ("BTC", "USDT")
    assert intent.signed_quantity == Decimal("0.5")
    with pytest.raises(ValidationError):
        intent.quantity = Decimal(2)  # type: ignore[misc]
