"""PostgreSQL is the source of truth for what must be executed (issue 11, item 1): the decision and its execution
request commit together (the outbox); a bus that is down at approval, an emptied Redis or an in-process bus lost
in a crash delays an order by one sweep and never loses it; an approval that runs out before it could be executed
ends ``expired`` with the reason.

Real PostgreSQL, real Redis (and a Redis address nobody answers on), the real worker, the paper venue.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis

from approvals import service as approvals
from approvals.service import Requester
from engine.bus import InProcessBus
from engine.bus.redis_streams import RedisStreamsBus
from engine.bus.relay import relay_once
from engine.execution.models import OrderStatus
from engine.execution.oms import get_order
from engine.execution.worker import ExecutionWorker
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store import outbox
from engine.store.database import Database
from tests.support.orders import approve_market_buy, paper_worker, until_order_is
from tests.support.polling import eventually
from tests.support.tcp_proxy import TcpProxy
from ui.chat.render import ApprovalState, status_text

TRADER = Requester(user="tom-trader", kind="mcp", session="outbox")


@pytest.fixture
def fast(settings: Settings, db: Database, sample_loaded: None) -> Settings:
    with db.connection() as conn:
        conn.execute("UPDATE outbox SET sent_at = now() WHERE sent_at IS NULL")  # earlier tests' leftovers
    return settings.model_copy(update={"bus_block_ms": 50, "bus_reclaim_idle_ms": 200, "execution_sweep_s": 0.2})


@pytest.fixture
async def redis_bus(redis_url: str, unique: str) -> AsyncIterator[RedisStreamsBus]:
    prefix = f"outbox-{unique}:"
    bus = RedisStreamsBus(redis_url, prefix=prefix)
    yield bus
    raw = aioredis.Redis.from_url(redis_url, decode_responses=True)
    keys = [key async for key in raw.scan_iter(match=prefix + "*")]
    if keys:
        await raw.delete(*keys)
    await raw.aclose()
    await bus.close()


async def _relayed(db: Database, timeout: float = 30) -> None:
    def drained() -> bool:
        with db.connection() as conn:
            return outbox.unsent_count(conn) == 0

    await eventually("the outbox to be relayed", drained, timeout=timeout)


async def _run(worker: ExecutionWorker) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stop = asyncio.Event()
    return stop, asyncio.create_task(worker.run(stop))


async def test_redis_down_at_approval_the_approve_succeeds_and_the_order_executes_once_it_is_back(
    fast: Settings, db: Database, redis_url: str, unique: str
) -> None:
    target = urlsplit(redis_url)
    proxy = TcpProxy(host=target.hostname or "127.0.0.1", port=target.port or 6379)  # not listening yet
    prefix = f"outbox-down-{unique}:"
    behind = RedisStreamsBus(f"redis://127.0.0.1:{proxy.port}/0", prefix=prefix)
    api = Runtime(settings=fast, db=db, bus=behind)
    try:  # Redis away at the moment of proposal and approval
        approval_id = await approve_market_buy(api, TRADER)  # answers success: the outbox holds the execution request
        with db.connection() as conn:
            assert outbox.unsent_count(conn) >= 2  # the events and the execution request, waiting
        proxy.restore()
        worker = paper_worker(Runtime(settings=fast, db=db, bus=behind), "outbox-worker")
        stop, task = await _run(worker)
        try:
            record = await until_order_is(api, approval_id, OrderStatus.FILLED)
            await _relayed(db)  # and the outbox goes out once Redis is back
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
        assert record.filled_quantity == Decimal("0.01")
        assert approvals.get_request(db, approval_id).status == "executed"
    finally:
        await behind.close()
        proxy.close()


async def test_an_in_process_bus_lost_in_a_crash_loses_no_approved_order(fast: Settings, db: Database) -> None:
    before_crash = Runtime(settings=fast, db=db, bus=InProcessBus())
    approval_id = await approve_market_buy(before_crash, TRADER)  # published on a bus that dies with the process
    after_restart = Runtime(settings=fast, db=db, bus=InProcessBus())  # empty: the message is gone
    stop, task = await _run(paper_worker(after_restart, "outbox-worker"))
    try:
        record = await until_order_is(
            after_restart, approval_id, OrderStatus.FILLED
        )  # the sweep found it in PostgreSQL
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert record.status is OrderStatus.FILLED


async def test_an_emptied_redis_loses_no_approved_order(
    fast: Settings, db: Database, redis_bus: RedisStreamsBus, redis_url: str, unique: str
) -> None:
    runtime = Runtime(settings=fast, db=db, bus=redis_bus)
    approval_id = await approve_market_buy(runtime, TRADER)
    raw = aioredis.Redis.from_url(redis_url, decode_responses=True)
    await raw.delete(f"outbox-{unique}:orders.approved")  # Redis restarted without persistence
    await raw.aclose()
    stop, task = await _run(paper_worker(runtime, "outbox-worker"))
    try:
        await until_order_is(runtime, approval_id, OrderStatus.FILLED)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_an_approval_that_runs_out_before_execution_ends_expired_with_the_reason(
    fast: Settings, db: Database
) -> None:
    runtime = Runtime(settings=fast, db=db, bus=InProcessBus())
    approval_id = await approve_market_buy(runtime, TRADER)  # the worker is down now
    with db.connection() as conn:
        conn.execute(
            "UPDATE approval_requests SET expires_at = %s WHERE id = %s",
            (datetime.now(UTC) - timedelta(seconds=1), approval_id),
        )
    worker = paper_worker(Runtime(settings=fast, db=db, bus=InProcessBus()), "outbox-worker")
    await worker.startup()
    assert approval_id in await worker.sweep()
    request = approvals.get_request(db, approval_id)
    assert request.status == "expired"
    assert request.result is not None and "expired" in request.result["reason"]
    assert "before the order could be sent" in request.result["reason"]
    with db.connection() as conn:
        assert get_order(conn, approval_id=approval_id) is None  # nothing went out
    text = status_text(ApprovalState("expired", decided_by=request.decided_by, result=request.result))
    assert "before the order could be sent" in text and "Nothing was executed" in text
    assert approval_id not in await worker.sweep()  # final: never picked up again


async def test_concurrent_relays_publish_each_row_once(fast: Settings, db: Database) -> None:
    bus = InProcessBus()
    await bus.ensure_group("outbox.probe", "g")
    with db.connection() as conn:
        for n in range(50):
            outbox.enqueue(conn, "outbox.probe", {"n": n})
    rounds = await asyncio.gather(*(relay_once(db, bus) for _ in range(4)))
    assert sum(r.sent for r in rounds) >= 50
    seen = [m.payload["n"] for m in await bus.read("outbox.probe", "g", "c", count=500)]
    assert sorted(seen) == list(range(50))
