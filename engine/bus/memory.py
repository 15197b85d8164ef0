"""The in-process bus (the embedded default): Redis Streams semantics inside one event loop.

Messages live in memory, so they survive a consumer's death but not the process's; production uses
``RedisStreamsBus``. Use it from a single event loop.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from dataclasses import dataclass, field
from typing import Any

from engine.bus.protocol import Message


@dataclass
class _Pending:
    consumer: str
    delivered_at: float
    deliveries: int


@dataclass
class _Group:
    next_index: int
    pending: dict[int, _Pending] = field(default_factory=dict)


@dataclass
class _Topic:
    entries: list[dict[str, Any]] = field(default_factory=list)
    groups: dict[str, _Group] = field(default_factory=dict)


def _now_ms() -> float:
    return time.monotonic() * 1000.0


class InProcessBus:
    """Topics as in-memory logs with consumer groups, acks and reclaim."""

    def __init__(self) -> None:
        self._topics: dict[str, _Topic] = {}
        self._changed = asyncio.Condition()

    def _topic(self, name: str) -> _Topic:
        return self._topics.setdefault(name, _Topic())

    def _message(self, topic: str, index: int, deliveries: int) -> Message:
        payload = copy.deepcopy(self._topics[topic].entries[index])
        return Message(id=str(index + 1), topic=topic, payload=payload, deliveries=deliveries)

    async def publish(self, topic: str, payload: dict[str, Any]) -> str:
        # round-trip through JSON so the in-process bus accepts exactly what Redis would
        entry = json.loads(json.dumps(payload, default=str))
        async with self._changed:
            log = self._topic(topic)
            log.entries.append(entry)
            self._changed.notify_all()
            return str(len(log.entries))

    async def ensure_group(self, topic: str, group: str, *, start: str = "0") -> None:
        log = self._topic(topic)
        if group not in log.groups:
            log.groups[group] = _Group(next_index=0 if start == "0" else len(log.entries))

    def _group(self, topic: str, group: str) -> _Group:
        try:
            return self._topics[topic].groups[group]
        except KeyError:
            raise KeyError(f"no consumer group {group!r} on topic {topic!r}") from None

    def _take(self, topic: str, group: str, consumer: str, count: int) -> list[Message]:
        state = self._group(topic, group)
        entries = self._topics[topic].entries
        taken: list[Message] = []
        while state.next_index < len(entries) and len(taken) < count:
            index = state.next_index
            state.next_index += 1
            state.pending[index] = _Pending(consumer, _now_ms(), 1)
            taken.append(self._message(topic, index, 1))
        return taken

    async def read(self, topic: str, group: str, consumer: str, *, count: int = 10, block_ms: int = 0) -> list[Message]:
        deadline = time.monotonic() + block_ms / 1000.0
        async with self._changed:
            while True:
                taken = self._take(topic, group, consumer, count)
                remaining = deadline - time.monotonic()
                if taken or remaining <= 0:
                    return taken
                # asyncio.timeout, not wait_for: a reader cancelled twice (a closed SSE stream) must still
                # give the condition's lock back, or every later publish hangs
                try:
                    async with asyncio.timeout(remaining):
                        await self._changed.wait()
                except TimeoutError:
                    return self._take(topic, group, consumer, count)

    async def ack(self, topic: str, group: str, *ids: str) -> int:
        state = self._group(topic, group)
        return sum(1 for msg_id in ids if state.pending.pop(int(msg_id) - 1, None) is not None)

    async def reclaim(
        self, topic: str, group: str, consumer: str, *, min_idle_ms: int, count: int = 100
    ) -> list[Message]:
        state = self._group(topic, group)
        now = _now_ms()
        claimed: list[Message] = []
        for index in sorted(state.pending):
            if len(claimed) >= count:
                break
            entry = state.pending[index]
            if now - entry.delivered_at >= min_idle_ms:
                entry.consumer, entry.delivered_at = consumer, now
                entry.deliveries += 1
                claimed.append(self._message(topic, index, entry.deliveries))
        return claimed

    async def pending(self, topic: str, group: str) -> int:
        return len(self._group(topic, group).pending)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None
