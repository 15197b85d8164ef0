"""The consumer loop outlives its bus's failures and never lets one bad message hold the others (every Bus)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from engine.bus import Bus, InProcessBus
from engine.bus.consumer import PoisonMessageError, consume_forever
from engine.bus.protocol import Message
from engine.bus.redis_streams import RedisStreamsBus
from engine.errors import BusUnavailableError


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest, redis_url: str, unique: str) -> AsyncIterator[Bus]:
    impl: Bus = InProcessBus() if request.param == "memory" else RedisStreamsBus(redis_url, prefix=f"test:{unique}:")
    yield impl
    await impl.close()


class _Flaky:
    """A bus whose first ``failures`` reads fail as if Redis were away."""

    def __init__(self, inner: Bus, failures: int) -> None:
        self._inner, self.failures = inner, failures

    async def read(self, *args: Any, **kwargs: Any) -> list[Message]:
        if self.failures > 0:
            self.failures -= 1
            raise BusUnavailableError("cannot read from Redis: connection refused")
        return await self._inner.read(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def _consume(bus: Any, handled: list[int], until: int, handler_fails_on: set[int]) -> None:
    stop = asyncio.Event()

    async def handler(message: Message) -> None:
        n = message.payload["n"]
        if n in handler_fails_on:
            raise PoisonMessageError(f"message {n} can never be handled")
        handled.append(n)
        if len(handled) == until:
            stop.set()

    await asyncio.wait_for(consume_forever(bus, "t", "g", "c", handler, stop, block_ms=20, reclaim_idle_ms=60_000), 30)


async def test_a_handler_refusing_a_message_dead_letters_it_at_once_and_the_rest_flow(bus: Bus) -> None:
    await bus.ensure_group("t.dead", "inspect")
    for n in range(5):
        await bus.publish("t", {"n": n})
    handled: list[int] = []
    await _consume(bus, handled, until=4, handler_fails_on={1})
    assert handled == [0, 2, 3, 4]
    [dead] = await bus.read("t.dead", "inspect", "c")
    assert dead.payload["payload"] == {"n": 1} and dead.payload["reason"] == "message 1 can never be handled"
    assert await bus.pending("t", "g") == 0


async def test_the_loop_outlives_reads_that_fail(bus: Bus) -> None:
    for n in range(3):
        await bus.publish("t", {"n": n})
    flaky = _Flaky(bus, failures=2)
    handled: list[int] = []
    await _consume(flaky, handled, until=3, handler_fails_on=set())
    assert handled == [0, 1, 2] and flaky.failures == 0
