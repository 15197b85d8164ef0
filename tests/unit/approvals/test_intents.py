"""The union of approval intents: each kind parses from its stored JSON, hashes stably, and has one describe()."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from engine.execution.models import OrderIntent, OrderSide, OrderType
from engine.intents import (
    CancelIntent,
    KillSwitchReleaseIntent,
    StrategyDeploymentIntent,
    describe,
    describe_data,
    intent_data,
    parse_intent,
)

ORDER = OrderIntent(
    account="paper",
    symbol="BTC/USD",
    side=OrderSide.BUY,
    type=OrderType.LIMIT,
    quantity=Decimal("0.050"),
    price=Decimal("49340.00"),
)


def test_each_kind_parses_back_from_its_stored_json() -> None:
    cancel = CancelIntent(order_id=7, approval_id="apr_1", client_order_id="c1", account="paper", symbol="ETH/USD")
    release = KillSwitchReleaseIntent(engaged_by="bob", engaged_at="2026-12-02T14:00:00+00:00", reason="drill")
    deploy = StrategyDeploymentIntent(strategy="sma_cross", params={"fast": 10, "slow": 30}, account="paper")
    for kind, intent in (
        ("order", ORDER),
        ("cancel", cancel),
        ("kill_switch_release", release),
        ("strategy_deployment", deploy),
    ):
        stored = intent_data(intent)
        assert "kind" not in stored  # the request row carries the kind
        back = parse_intent(kind, stored)
        assert type(back) is type(intent) and back == intent and back.intent_hash() == intent.intent_hash()


def test_the_kind_decides_the_model_and_a_wrong_shape_is_refused() -> None:
    with pytest.raises(ValidationError):
        parse_intent("cancel", intent_data(ORDER))
    with pytest.raises(ValidationError):
        parse_intent("order", {"side": "buy"})
    with pytest.raises(ValidationError):
        parse_intent("no_such_kind", {})


def test_the_order_hash_is_unchanged_by_the_kind_field() -> None:
    # the hash an approval binds to predates the union: the discriminator must not be part of it
    assert "kind" not in ORDER.hashed_fields() and "kind" not in ORDER.model_dump()
    assert ORDER.intent_hash() == OrderIntent.model_validate(ORDER.model_dump()).intent_hash()


def test_describe_is_one_line_per_kind_with_plain_numbers() -> None:
    assert describe(ORDER) == "buy 0.05 BTC/USD limit @ 49340 on paper (dry-run)"  # never 4.934e+04
    market = OrderIntent(
        account="paper", symbol="BTC/USD", side=OrderSide.SELL, type=OrderType.MARKET, quantity=Decimal("1E-2")
    )
    assert describe(market) == "sell 0.01 BTC/USD market on paper (dry-run)"
    cancel = CancelIntent(order_id=7, account="paper", symbol="ETH/USD")
    assert describe(cancel) == "cancel order 7 ETH/USD on paper"
    release = KillSwitchReleaseIntent(engaged_by="bob", engaged_at="2026-12-02T14:00:00+00:00", reason="drill")
    assert describe(release) == "release the kill switch (engaged by bob at 2026-12-02 14:00 UTC: drill)"
    deploy = StrategyDeploymentIntent(strategy="sma_cross", params={"slow": 30, "fast": 10}, symbol="BTC/USD")
    assert describe(deploy) == "deploy strategy sma_cross (fast=10, slow=30) BTC/USD"


def test_describe_data_reads_a_tool_result_intent() -> None:
    assert describe_data({"kind": "order", **intent_data(ORDER)}) == describe(ORDER)
    assert describe_data(intent_data(ORDER)) == describe(ORDER)  # no kind: an order
    assert describe_data({"kind": "cancel", "order_id": 3, "account": "a", "symbol": "BTC/USD"}) == (
        "cancel order 3 BTC/USD on a"
    )
    assert describe_data({"side": "sell"}) is None
