"""An approved cancel request is carried out: the order is cancelled at the venue and the request records it.

Its own module (so its own database): the order path module's proposals would otherwise reach the policy's
orders-per-minute limit.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

from approvals import service as approvals
from engine.execution.models import OrderStatus
from engine.execution.oms import OrderRecord
from engine.execution.worker import ExecutionWorker
from engine.runtime import Runtime
from tests.integration.execution.test_order_path import APPROVER, TRADER, _approved, _intent, env

__all__ = ["env"]  # the fixture, shared with the order path module


async def test_an_approved_cancel_request_cancels_the_order_at_the_venue(env: tuple) -> None:
    """Approved cancels used to be published to a topic nobody read: the order stayed open at the venue."""
    runtime, manager, broker, _ = env
    worker = ExecutionWorker(runtime, manager, name="cancel-worker")
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        approval_id = await _approved(runtime, _intent(type="limit", price=Decimal(8400), quantity=Decimal("0.01")))
        record = await _until_status(runtime, approval_id, OrderStatus.SUBMITTED)
        ask = await approvals.propose_cancel(
            runtime.db, runtime.bus, runtime.settings, record.id, TRADER, "changed mind"
        )
        assert ask.status == "pending", ask.decision_reason
        await approvals.decide(runtime.db, runtime.bus, runtime.settings, ask.id, APPROVER, approve=True,
                               auth="password")  # fmt: skip
        cancelled = await _until_status(runtime, approval_id, OrderStatus.CANCELLED)
        deadline = time.monotonic() + 30
        while approvals.get_request(runtime.db, ask.id).status == "approved" and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        done = approvals.get_request(runtime.db, ask.id)
        assert done.status == "executed" and done.result == {"order_id": cancelled.id, "status": "cancelled"}
        venue = await broker.fetch("BTC/USD", record.client_order_id)
        assert venue is not None and venue.status is OrderStatus.CANCELLED
    finally:
        stop.set()
        await task


async def _until_status(runtime: Runtime, approval_id: str, status: OrderStatus, timeout: float = 30) -> OrderRecord:
    from engine.execution.oms import get_order

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with runtime.db.connection() as conn:
            record = get_order(conn, approval_id=approval_id)
        if record is not None and record.status is status:
            return record
        await asyncio.sleep(0.05)
    raise AssertionError(f"order of {approval_id} did not become {status} within {timeout}s")
