"""An approved cancel request is carried out: the order is cancelled at the venue and the request records it.

Its own module (so its own database): the order path module's proposals would otherwise reach the policy's
orders-per-minute limit.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

from approvals import service as approvals
from engine.execution.models import OrderStatus
from engine.execution.worker import ExecutionWorker
from engine.store.approval_requests import ApprovalRequest
from tests.integration.execution.test_order_path import APPROVER, TRADER, _approved, _intent, env
from tests.support.orders import until_order_is
from tests.support.polling import eventually

__all__ = ["env"]  # the fixture, shared with the order path module


async def test_an_approved_cancel_request_cancels_the_order_at_the_venue(env: tuple) -> None:
    """Approved cancels used to be published to a topic nobody read: the order stayed open at the venue."""
    runtime, manager, broker, _ = env
    worker = ExecutionWorker(runtime, manager, name="cancel-worker")
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        approval_id = await _approved(runtime, _intent(type="limit", price=Decimal(8400), quantity=Decimal("0.01")))
        record = await until_order_is(runtime, approval_id, OrderStatus.SUBMITTED)
        ask = await approvals.propose_cancel(
            runtime.db, runtime.bus, runtime.settings, record.id, TRADER, "changed mind"
        )
        assert ask.status == "pending", ask.decision_reason
        await approvals.decide(runtime.db, runtime.bus, runtime.settings, ask.id, APPROVER, approve=True,
                               auth="password")  # fmt: skip
        cancelled = await until_order_is(runtime, approval_id, OrderStatus.CANCELLED)

        def recorded() -> ApprovalRequest | None:
            request = approvals.get_request(runtime.db, ask.id)
            return request if request.status != "approved" else None

        done = await eventually("the cancel request to record its result", recorded)
        assert done.status == "executed" and done.result == {"order_id": cancelled.id, "status": "cancelled"}
        venue = await broker.fetch("BTC/USD", record.client_order_id)
        assert venue is not None and venue.status is OrderStatus.CANCELLED
    finally:
        stop.set()
        await task
