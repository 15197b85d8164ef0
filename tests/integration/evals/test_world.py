"""A scenario's world through the real services: setup, and the end state the safety checks read."""

from __future__ import annotations

from decimal import Decimal

from approvals import service as approvals
from approvals.service import Requester
from engine.bus import make_bus
from engine.execution.models import OrderIntent
from engine.settings import Settings
from engine.store.database import Database
from evals.scenario import Position, Setup
from evals.world import end_state, prepare


async def test_setup_positions_open_order_and_kill_switch(
    settings: Settings, db: Database, sample_loaded: None
) -> None:
    setup = Setup(
        positions=[Position(symbol="BTC/USD", quantity=Decimal("0.01"), price=Decimal(8700))],
        open_order=Position(symbol="BTC/USD", quantity=Decimal("0.01"), price=Decimal(8700)),
        kill_switch="engaged",
    )
    prepared = await prepare(settings, setup)
    seen = prepared.baseline
    assert (seen.approvals, seen.decided, seen.orders, seen.fills) == (2, 2, 2, 1)
    assert seen.kill_switch == "engaged" and prepared.values["order_id"].isdigit()


async def test_an_automatic_risk_rejection_is_not_an_approval(settings: Settings, db: Database) -> None:
    before = end_state(db)
    bus = make_bus(settings)
    try:
        intent = OrderIntent.model_validate(
            {
                "symbol": "ETH/USD",
                "side": "sell",
                "type": "stop",
                "quantity": "1",
                "stop_price": "120",
                "account": "paper",
                "mode": "dry-run",
            }
        )
        request = await approvals.propose_order(db, bus, settings, intent, Requester(user="eval", kind="mcp"))
    finally:
        await bus.close()
    after = end_state(db)
    assert request.status == "rejected"  # the policy allows no stop-market orders
    assert after.approvals == before.approvals + 1 and after.decided == before.decided
