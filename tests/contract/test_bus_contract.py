"""One contract, every Bus implementation: the in-process bus and Redis Streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from engine.bus import Bus, InProcessBus
from engine.bus.consumer import process_once
from engine.bus.protocol import Message
from engine.bus.redis_streams import RedisStreamsBus


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest, redis_url: str, unique: str) -> AsyncIterator[Bus]:
    impl: Bus = InProcessBus() if request.param == "memory" else RedisStreamsBus(redis_url, prefix=f"test:{unique}:")
    assert isinstance(impl, Bus)
    yield impl
    await impl.close()


async def test_publish_and_read_in_order(bus: Bus) -> None:
    await bus.ensure_group("t", "g")
    ids = [await bus.publish("t", {"n": n}) for n in range(5)]
    got = await bus.read("t", "g", "c1", count=10)
    assert [m.payload["n"] for m in got] == list(range(5))
    assert [m.id for m in got] == ids
    assert all(m.deliveries == 1 and m.topic == "t" for m in got)


async def test_each_message_goes_to_one_consumer_of_a_group(bus: Bus) -> None:
    await bus.ensure_group("t", "g")
    for n in range(6):
        await bus.publish("t", {"n": n})
    first = await bus.read("t", "g", "a", count=3)
    second = await bus.read("t", "g", "b", count=10)
    assert {m.payload["n"] for m in first} | {m.payload["n"] for m in second} == set(range(6))
    assert not {m.id for m in first} & {m.id for m in second}
    assert await bus.read("t", "g", "c", count=10) == []


async def test_groups_are_independent(bus: Bus) -> None:
    await bus.ensure_group("t", "g1")
    await bus.ensure_group("t", "g2")
    await bus.publish("t", {"x": 1})
    assert len(await bus.read("t", "g1", "c")) == 1
    assert len(await bus.read("t", "g2", "c")) == 1


async def test_group_created_with_dollar_sees_only_new_messages(bus: Bus) -> None:
    await bus.publish("t", {"old": True})
    await bus.ensure_group("t", "late", start="$")
    await bus.publish("t", {"old": False})
    got = await bus.read("t", "late", "c")
    assert [m.payload for m in got] == [{"old": False}]


async def test_read_blocks_until_a_message_arrives(bus: Bus) -> None:
    await bus.ensure_group("t", "g")

    async def later() -> None:
        await asyncio.sleep(0.1)
        await bus.publish("t", {"late": 1})

    task = asyncio.create_task(later())
    got = await bus.read("t", "g", "c", block_ms=3000)
    await task
    assert [m.payload for m in got] == [{"late": 1}]


async def test_read_times_out_empty(bus: Bus) -> None:
    await bus.ensure_group("t", "g")
    assert await bus.read("t", "g", "c", block_ms=50) == []


async def test_ack_clears_pending_and_acked_never_returns(bus: Bus) -> None:
    await bus.ensure_group("t", "g")
    await bus.publish("t", {"n": 1})
    [msg] = await bus.read("t", "g", "c")
    assert await bus.pending("t", "g") == 1
    assert await bus.ack("t", "g", msg.id) == 1
    assert await bus.ack("t", "g", msg.id) == 0
    assert await bus.pending("t", "g") == 0
    assert await bus.reclaim("t", "g", "other", min_idle_ms=0) == []


async def test_reclaim_respects_idle_time(bus: Bus) -> None:
    await bus.ensure_group("t", "g")
    await bus.publish("t", {"n": 1})
    await bus.read("t", "g", "c")
    assert await bus.reclaim("t", "g", "other", min_idle_ms=60_000) == []
    await asyncio.sleep(0.05)
    [again] = await bus.reclaim("t", "g", "other", min_idle_ms=10)
    assert again.payload == {"n": 1}
    assert again.deliveries == 2


async def test_crashed_consumer_messages_reach_another_exactly_once(bus: Bus) -> None:
    """A consumer dies mid-batch: what it acked is done, the rest goes to a survivor, nothing twice."""
    await bus.ensure_group("orders", "workers")
    for n in range(20):
        await bus.publish("orders", {"n": n})

    processed: list[int] = []
    crash_after = 4

    async def doomed_consumer() -> None:
        batch = await bus.read("orders", "workers", "doomed", count=10)
        for index, message in enumerate(batch):
            if index == crash_after:
                await asyncio.Event().wait()  # hangs forever: the process "died" before ack
            processed.append(message.payload["n"])
            await bus.ack("orders", "workers", message.id)

    task = asyncio.create_task(doomed_consumer())
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await bus.pending("orders", "workers") == 10 - crash_after

    async def handle(message: Message) -> None:
        processed.append(message.payload["n"])

    await asyncio.sleep(0.05)
    while await process_once(bus, "orders", "workers", "survivor", handle, block_ms=50, reclaim_idle_ms=20):
        pass
    assert sorted(processed) == list(range(20))
    assert len(processed) == len(set(processed))
    assert await bus.pending("orders", "workers") == 0
    assert await bus.reclaim("orders", "workers", "third", min_idle_ms=0) == []


async def test_failing_handler_is_retried_then_dead_lettered(bus: Bus) -> None:
    await bus.ensure_group("t", "g")
    await bus.ensure_group("t.dead", "inspect")
    await bus.publish("t", {"poison": True})
    attempts = 0

    async def always_fails(_: Message) -> None:
        nonlocal attempts
        attempts += 1
        raise RuntimeError("boom")

    for _ in range(6):
        await process_once(bus, "t", "g", "c", always_fails, block_ms=10, reclaim_idle_ms=0, max_deliveries=3)
    assert attempts == 3
    assert await bus.pending("t", "g") == 0
    [dead] = await bus.read("t.dead", "inspect", "c")
    assert dead.payload["payload"] == {"poison": True}


async def test_payloads_must_round_trip_as_json(bus: Bus) -> None:
    await bus.ensure_group("t", "g")
    await bus.publish("t", {"nested": {"a": [1, 2.5, "x", None, True]}})
    [msg] = await bus.read("t", "g", "c")
    assert msg.payload == {"nested": {"a": [1, 2.5, "x", None, True]}}
