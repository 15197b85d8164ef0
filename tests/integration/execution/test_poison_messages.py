"""Junk on the approved-orders stream never stops the line (issue 11): each entry that cannot be an approval is
dead-lettered with its reason and counted, and the properly approved order behind it is executed. A consumer
group that disappears (Redis restarted empty) is made again.

Real Redis (raw XADD, as anyone who can reach it could write), the real worker, the paper venue.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import redis.asyncio as aioredis

from approvals.service import Requester
from engine.bus.consumer import DEAD_LETTERS
from engine.bus.redis_streams import RedisStreamsBus
from engine.execution.models import OrderStatus
from engine.execution.worker import APPROVED_TOPIC
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database
from tests.support.orders import approve_market_buy, paper_worker, until_order_is
from tests.support.poison import POISON as KINDS

TRADER = Requester(user="tom-trader", kind="mcp", session="poison")

POISON = {**KINDS, "an empty object": {"p": "{}"}}  # the entries of the finding, and the one handled before


@pytest.fixture
async def line(
    settings: Settings, db: Database, sample_loaded: None, redis_url: str, unique: str
) -> AsyncIterator[tuple[Runtime, RedisStreamsBus, aioredis.Redis, str]]:
    prefix = f"poison-{unique}:"
    bus = RedisStreamsBus(redis_url, prefix=prefix)
    raw = aioredis.Redis.from_url(redis_url, decode_responses=True)
    runtime = Runtime(settings=settings.model_copy(update={"bus_block_ms": 50, "bus_reclaim_idle_ms": 200}), db=db,
                      bus=bus)  # fmt: skip
    yield runtime, bus, raw, prefix
    keys = [key async for key in raw.scan_iter(match=prefix + "*")]
    if keys:
        await raw.delete(*keys)
    await raw.aclose()
    await bus.close()


async def test_junk_on_the_stream_is_dead_lettered_and_the_next_approval_executes(
    line: tuple[Runtime, RedisStreamsBus, aioredis.Redis, str],
) -> None:
    runtime, bus, raw, prefix = line
    stream = prefix + APPROVED_TOPIC
    await bus.ensure_group(f"{APPROVED_TOPIC}.dead", "inspect")
    before = {why: DEAD_LETTERS.labels(topic=APPROVED_TOPIC, why=why)._value.get() for why in ("poison", "retries")}
    for fields in POISON.values():
        await raw.xadd(stream, fields)  # type: ignore[arg-type]
    worker = paper_worker(runtime, "poison-worker")
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        approval_id = await approve_market_buy(runtime, TRADER)  # queued behind every piece of junk
        record = await until_order_is(runtime, approval_id, OrderStatus.FILLED)
        assert record.filled_quantity == Decimal("0.01")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    dead = await bus.read(f"{APPROVED_TOPIC}.dead", "inspect", "c", count=100)
    assert len(dead) == len(POISON)
    reasons = [m.payload["reason"] for m in dead]
    assert "the payload is a JSON null, not an object" in reasons and "the payload is not JSON" in reasons
    assert "the entry has no 'p' field" in reasons and "the payload is a JSON list, not an object" in reasons
    assert sum("approval_id" in r for r in reasons) == 4  # null, 10 kB, a list, missing (the empty object)
    assert await bus.pending(APPROVED_TOPIC, "execution") == 0
    poisoned = DEAD_LETTERS.labels(topic=APPROVED_TOPIC, why="poison")._value.get() - before["poison"]
    assert poisoned == len(POISON)


async def test_a_consumer_group_lost_with_redis_is_made_again(
    line: tuple[Runtime, RedisStreamsBus, aioredis.Redis, str],
) -> None:
    runtime, _, raw, prefix = line
    worker = paper_worker(runtime, "poison-worker")
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        first = await approve_market_buy(runtime, TRADER)
        await until_order_is(runtime, first, OrderStatus.FILLED)
        await raw.delete(prefix + APPROVED_TOPIC)  # what an empty Redis after a restart looks like to the worker
        second = await approve_market_buy(runtime, TRADER)
        await until_order_is(runtime, second, OrderStatus.FILLED)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
