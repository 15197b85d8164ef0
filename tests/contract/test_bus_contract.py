"""One contract, every Bus implementation: the in-process bus and Redis Streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

import pytest

from engine.bus import Bus, InProcessBus
from engine.bus.consumer import process_once
from engine.bus.protocol import Message
from engine.bus.redis_streams import RedisStreamsBus
from tests.support.polling import eventually

T = TypeVar("T")
RETAINED = 50  # the retention of the topics the retention tests use (every other topic keeps the default)


def _make(kind: str, redis_url: str, unique: str) -> Bus:
    topics = {"slow": RETAINED, "flood": RETAINED}
    if kind == "memory":
        return InProcessBus(topic_maxlen=topics)
    return RedisStreamsBus(redis_url, prefix=f"test:{unique}:", topic_maxlen=topics)


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest, redis_url: str, unique: str) -> AsyncIterator[Bus]:
    impl = _make(request.param, redis_url, unique)
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
    reader = asyncio.create_task(bus.read("t", "g", "c", block_ms=10_000))
    for _ in range(5):
        await asyncio.sleep(0)  # let the read start
    assert not reader.done()  # nothing to read yet: it waits rather than returning empty
    await bus.publish("t", {"late": 1})
    got = await asyncio.wait_for(reader, timeout=10)
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
    [again] = await eventually("the message to be idle 10 ms", lambda: bus.reclaim("t", "g", "other", min_idle_ms=10))
    assert again.payload == {"n": 1}
    assert again.deliveries == 2


async def test_crashed_consumer_messages_reach_another_exactly_once(bus: Bus) -> None:
    """A consumer dies mid-batch: what it acked is done, the rest goes to a survivor, nothing twice."""
    await bus.ensure_group("orders", "workers")
    for n in range(20):
        await bus.publish("orders", {"n": n})

    processed: list[int] = []
    crash_after = 4
    hung = asyncio.Event()

    async def doomed_consumer() -> None:
        batch = await bus.read("orders", "workers", "doomed", count=10)
        for index, message in enumerate(batch):
            if index == crash_after:
                hung.set()
                await asyncio.Event().wait()  # hangs forever: the process "died" before ack
            processed.append(message.payload["n"])
            await bus.ack("orders", "workers", message.id)

    task = asyncio.create_task(doomed_consumer())
    await asyncio.wait_for(hung.wait(), timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await bus.pending("orders", "workers") == 10 - crash_after

    async def handle(message: Message) -> None:
        processed.append(message.payload["n"])

    async def survivor_done() -> bool:
        await process_once(bus, "orders", "workers", "survivor", handle, block_ms=50, reclaim_idle_ms=20)
        return len(processed) >= 20

    await eventually("the survivor to process the rest", survivor_done)
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


# -- retention: a bounded window per topic -------------------------------------------------------------------------


async def test_a_slow_consumer_gets_every_message_inside_the_window(bus: Bus) -> None:
    """The consumer lags the producer by up to 40 messages (the window is 50) and reads 3 at a time: it gets all."""
    await bus.ensure_group("slow", "g")
    got: list[int] = []
    for burst in range(5):
        for n in range(burst * 40, burst * 40 + 40):
            await bus.publish("slow", {"n": n})
        while len(got) < burst * 40 + 40:
            batch = await bus.read("slow", "g", "c", count=3)
            assert batch, f"nothing to read with {len(got)} of {burst * 40 + 40} received"
            got.extend(m.payload["n"] for m in batch)
            await bus.ack("slow", "g", *(m.id for m in batch))
    assert got == list(range(200))
    assert await bus.pending("slow", "g") == 0


async def test_a_consumer_beyond_the_window_loses_only_the_oldest(bus: Bus) -> None:
    await bus.ensure_group("flood", "g")
    await bus.ensure_group("kept", "g")
    for n in range(1000):
        await bus.publish("flood", {"n": n})
        await bus.publish("kept", {"n": n})  # a topic with the default retention (10,000) keeps all
    got: list[int] = []
    while batch := await bus.read("flood", "g", "c", count=100):
        got.extend(m.payload["n"] for m in batch)
    # the newest are all there, in order; only the oldest are gone (Redis trims whole nodes: a few more may stay)
    assert got == list(range(1000 - len(got), 1000))
    assert RETAINED <= len(got) <= RETAINED + 200
    kept: list[int] = []
    while batch := await bus.read("kept", "g", "c", count=500):
        kept.extend(m.payload["n"] for m in batch)
    assert kept == list(range(1000))


async def test_a_pending_message_trimmed_away_is_dropped_on_reclaim(bus: Bus) -> None:
    await bus.ensure_group("flood", "g")
    await bus.publish("flood", {"n": "first"})
    [first] = await bus.read("flood", "g", "dead-consumer")
    for n in range(1000):
        await bus.publish("flood", {"n": n})
    reclaimed = await bus.reclaim("flood", "g", "survivor", min_idle_ms=0)
    assert first.id not in {m.id for m in reclaimed}
    assert await bus.ack("flood", "g", first.id) == 0
