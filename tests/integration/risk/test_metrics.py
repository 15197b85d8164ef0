"""The order-path and risk metrics as Prometheus scrapes them."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from prometheus_client import generate_latest

from engine.execution import metrics
from engine.execution.models import OrderSide
from engine.risk import RuleResult, Scope, Verdict
from engine.risk.killswitch import engage, status
from engine.store.database import Database
from engine.telemetry import REGISTRY
from tests.unit.risk.stubs import account, portfolio


def _value(name: str, labels: dict[str, str]) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_every_metric_is_exposed_and_reimport_reuses_them(unique: str) -> None:
    venue = f"paper-{unique}"
    text = generate_latest(REGISTRY).decode()
    for name in (
        "iqts_order_submit_to_ack_seconds",
        "iqts_orders_total",
        "iqts_order_rejects_total",
        "iqts_fill_slippage_bps",
        "iqts_fill_rate",
        "iqts_risk_rule_failures_total",
        "iqts_risk_checks_total",
        "iqts_kill_switch_engaged",
        "iqts_pnl",
        "iqts_equity",
    ):
        assert f"# TYPE {name} " in text, name
    ack = metrics.SUBMIT_TO_ACK
    reloaded = importlib.reload(metrics)  # a second import must not register the names again
    assert reloaded.SUBMIT_TO_ACK is ack
    metrics.observe_ack(venue, 0.003)
    with metrics.submit_timer(venue):
        pass
    assert _value("iqts_order_submit_to_ack_seconds_count", {"venue": venue}) == 2
    assert _value("iqts_order_submit_to_ack_seconds_bucket", {"venue": venue, "le": "0.005"}) == 2


def test_verdicts_orders_fills_and_portfolio(unique: str) -> None:
    venue = f"paper-{unique}"
    rule = f"max_order_notional_{unique}"
    failed = Verdict(
        allowed=False,
        policy_version=1,
        account="main",
        symbol="BTC/USDT",
        checked_at=datetime.now(UTC),
        results=(
            RuleResult(f"passing_{unique}", True, "ok", None, None, Scope.SYSTEM),
            RuleResult(rule, False, "too big", Decimal(10), Decimal(20), Scope.DEFAULT),
        ),
    )
    before = _value("iqts_risk_checks_total", {"stage": "submission", "outcome": "rejected"})
    metrics.observe_verdict(failed, "submission")
    metrics.observe_verdict(failed.model_copy(update={"allowed": True, "results": ()}), "proposal")
    assert _value("iqts_risk_checks_total", {"stage": "submission", "outcome": "rejected"}) == before + 1
    assert _value("iqts_risk_rule_failures_total", {"rule": rule}) == 1
    assert _value("iqts_risk_rule_failures_total", {"rule": f"passing_{unique}"}) == 0

    metrics.observe_order_outcome(venue, "filled")
    metrics.observe_order_outcome(venue, "rejected", reason_kind="insufficient_funds")
    assert _value("iqts_orders_total", {"venue": venue, "outcome": "rejected"}) == 1
    assert _value("iqts_order_rejects_total", {"venue": venue, "reason_kind": "insufficient_funds"}) == 1
    with pytest.raises(ValueError, match="unknown order outcome"):
        metrics.observe_order_outcome(venue, "vanished")  # type: ignore[arg-type]

    metrics.observe_submit(venue, Decimal(2))
    bps = metrics.observe_fill(venue, OrderSide.BUY, Decimal("0.5"), Decimal("100.1"), Decimal(100))
    assert bps == Decimal(10)  # paid 10 bps above the reference
    assert metrics.slippage_bps("sell", Decimal(99), Decimal(100)) == Decimal(100)  # sold 1% below: worse
    metrics.observe_fill(venue, "sell", Decimal("0.5"), Decimal(100), None)
    assert _value("iqts_fill_rate", {"venue": venue}) == 0.5
    assert _value("iqts_fill_slippage_bps_count", {"venue": venue, "side": "buy"}) == 1

    metrics.observe_portfolio(portfolio(account(name=f"acct-{unique}", cash="12345.5")))
    assert _value("iqts_equity", {"account": f"acct-{unique}"}) == 12345.5
    assert _value("iqts_pnl", {"account": f"acct-{unique}", "kind": "realised"}) == 0


@pytest.mark.usefixtures("clean_risk_state")
async def test_the_kill_switch_gauge_follows_the_switch(db: Database) -> None:
    from engine.bus import InProcessBus

    status(db)
    assert _value("iqts_kill_switch_engaged", {}) == 0
    await engage(db, InProcessBus(), "bob", "gauge drill")
    assert _value("iqts_kill_switch_engaged", {}) == 1
    assert "iqts_kill_switch_engaged 1.0" in generate_latest(REGISTRY).decode()


def test_the_oms_update_callback_counts_each_order_once(unique: str) -> None:
    from engine.execution.broker import VenueOrder
    from engine.execution.models import OrderStatus
    from engine.execution.oms import OrderRecord

    venue = f"paper-{unique}"
    now = datetime.now(UTC)

    def rec(order_id: int, status: OrderStatus, filled: str, **extra: object) -> OrderRecord:
        fields: dict[str, object] = {
            "id": order_id,
            "approval_id": f"a{order_id}",
            "client_order_id": f"c{order_id}",
            "account": "main",
            "venue": venue,
            "symbol": "BTC/USDT",
            "side": "buy",
            "type": "limit",
            "quantity": Decimal(2),
            "price": Decimal(100),
            "status": status,
            "filled_quantity": Decimal(filled),
            "average_price": Decimal("100.5") if Decimal(filled) > 0 else None,
            "venue_order_id": None,
            "reason": None,
            "created_at": now,
            "updated_at": now,
        }
        fields.update(extra)
        return OrderRecord.model_validate(fields)

    def ven(status: OrderStatus, filled: str) -> VenueOrder:
        return VenueOrder(
            client_order_id="c", symbol="BTC/USDT", status=status, quantity=Decimal(2), filled_quantity=Decimal(filled)
        )

    metrics.observe_order_update(rec(1, OrderStatus.SUBMITTED, "0"), ven(OrderStatus.SUBMITTED, "0"), 0.002)
    metrics.observe_order_update(
        rec(1, OrderStatus.PARTIALLY_FILLED, "1"), ven(OrderStatus.PARTIALLY_FILLED, "1"), None
    )
    assert _value("iqts_fill_rate", {"venue": venue}) == 0.5
    for _ in range(2):  # reported twice (follow-up and cancel): counted once
        metrics.observe_order_update(rec(1, OrderStatus.CANCELLED, "1"), ven(OrderStatus.CANCELLED, "1"), None)
    assert _value("iqts_orders_total", {"venue": venue, "outcome": "partially_filled"}) == 1
    assert _value("iqts_order_submit_to_ack_seconds_count", {"venue": venue}) == 1
    slip = {"venue": venue, "side": "buy"}  # 100.5 against the limit 100: 50 bps worse
    assert _value("iqts_fill_slippage_bps_bucket", slip | {"le": "20.0"}) == 0
    assert _value("iqts_fill_slippage_bps_bucket", slip | {"le": "50.0"}) == 1

    reason = "risk check at submission failed: rejected by policy 1: order notional too big"
    metrics.observe_order_update(rec(2, OrderStatus.REJECTED, "0", reason=reason), None, None)
    insufficient = "submit BTC/USDT buy refused by binance: insufficient funds (Account has insufficient balance)"
    metrics.observe_order_update(rec(3, OrderStatus.REJECTED, "0", reason=insufficient), None, None)
    assert _value("iqts_order_rejects_total", {"venue": venue, "reason_kind": "risk"}) == 1
    assert _value("iqts_order_rejects_total", {"venue": venue, "reason_kind": "insufficient_funds"}) == 1
    assert _value("iqts_orders_total", {"venue": venue, "outcome": "rejected"}) == 2
    assert _value("iqts_fill_rate", {"venue": venue}) == 0.5  # never at the venue: not in the denominator
    assert metrics.reason_kind("the venue said no") == "venue" and metrics.reason_kind(None) == "unknown"
