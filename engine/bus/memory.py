"""The in-process bus (the embedded default): Redis Streams semantics inside one event loop.

Messages live in memory, so they survive a consumer's death but not the process's; production uses
``RedisStreamsBus``. Each topic is a bounded ring: it keeps its last ``maxlen`` messages (per topic), so a topic
nobody reads (live trades on the embedded defaults) never grows without bound. Use it from a single event loop.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.bus.protocol import DEFAULT_MAXLEN, Message


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
    """The retained window of a topic: ``entries[0]`` is message number ``base`` (0-based, ids are 1-based)."""

    entries: deque[dict[str, Any]]
    published: int = 0
    groups: dict[str, _Group] = field(default_factory=dict)

    @property
    def base(self) -> int:
        return self.published - len(self.entries)

    def entry(self, index: int) -> dict[str, Any] | None:
        if index < self.base or index >= self.published:
            return None
        return self.entries[index - self.base]


def _now_ms() -> float:
    return time.monotonic() * 1000.0


class InProcessBus:
    """Topics as bounded in-memory logs with consumer groups, acks and reclaim."""

    def __init__(self, *, maxlen: int = DEFAULT_MAXLEN, topic_maxlen: Mapping[str, int] | None = None) -> None:
        self._topics: dict[str, _Topic] = {}
        self._changed = asyncio.Condition()
        self._maxlen = maxlen
        self._topic_maxlen = dict(topic_maxlen or {})

    def maxlen(self, topic: str) -> int:
        """How many messages ``topic`` keeps."""
        return self._topic_maxlen.get(topic, self._maxlen)

    def _topic(self, name: str) -> _Topic:
        found = self._topics.get(name)
        if found is None:
            found = self._topics[name] = _Topic(entries=deque(maxlen=self.maxlen(name)))
        return found

    def _message(self, topic: str, index: int, deliveries: int) -> Message:
        entry = self._topics[topic].entry(index)
        assert entry is not None
        return Message(id=str(index + 1), topic=topic, payload=copy.deepcopy(entry), deliveries=deliveries)

    async def publish(self, topic: str, payload: dict[str, Any]) -> str:
        # round-trip through JSON so the in-process bus accepts exactly what Redis would
        entry = json.loads(json.dumps(payload, default=str))
        async with self._changed:
            log = self._topic(topic)
            log.entries.append(entry)  # the deque drops the oldest beyond maxlen
            log.published += 1
            self._changed.notify_all()
            return str(log.published)

    async def ensure_group(self, topic: str, group: str, *, start: str = "0") -> None:
        log = self._topic(topic)
        if group not in log.groups:
            log.groups[group] = _Group(next_index=log.base if start == "0" else log.published)

    def _group(self, topic: str, group: str) -> _Group:
        try:
            return self._topics[topic].groups[group]
        except KeyError:
            raise KeyError(f"no consumer group {group!r} on topic {topic!r}") from None

    def _take(self, topic: str, group: str, consumer: str, count: int) -> list[Message]:
        state = self._group(topic, group)
        log = self._topics[topic]
        state.next_index = max(state.next_index, log.base)  # a reader further behind than the window lost the oldest
        taken: list[Message] = []
        while state.next_index < log.published and len(taken) < count:
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
        log = self._topics[topic]
        now = _now_ms()
        claimed: list[Message] = []
        for index in sorted(state.pending):
            if len(claimed) >= count:
                break
            if index < log.base:  # trimmed while pending: dropped, as Redis's XAUTOCLAIM does
                del state.pending[index]
                continue
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
