"""The production bus: Redis Streams with consumer groups (``IQTS_REDIS_URL``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from engine.bus.protocol import DEFAULT_MAXLEN, Message
from engine.errors import BusUnavailableError
from engine.telemetry import get_logger

log = get_logger(__name__)

_PAYLOAD_FIELD = "p"
MAX_PAYLOAD_BYTES = 64 * 1024  # IQTS's own messages are a few hundred bytes; anything this big is not one of ours


def decode_payload(raw: str | None) -> tuple[dict[str, Any], str | None]:
    """An entry's payload, or ``({}, reason)`` when it cannot be one: anyone who can XADD can write anything."""
    if raw is None:
        return {}, f"the entry has no {_PAYLOAD_FIELD!r} field"
    if len(raw) > MAX_PAYLOAD_BYTES:
        return {}, f"the payload is {len(raw)} bytes (at most {MAX_PAYLOAD_BYTES})"
    try:
        value = json.loads(raw)
    except ValueError:
        return {}, "the payload is not JSON"
    if not isinstance(value, dict):
        return {}, f"the payload is a JSON {type(value).__name__.replace('NoneType', 'null')}, not an object"
    return value, None


def _no_group(error: ResponseError) -> bool:
    """The group is gone: Redis restarted empty, or the stream was deleted (while we were blocked on it)."""
    return str(error).startswith(("NOGROUP", "UNBLOCKED"))


class RedisStreamsBus:
    """Each topic is the stream ``<prefix><topic>``, capped at about ``maxlen(topic)`` entries; payloads are one JSON
    field."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "iqts:",
        maxlen: int = DEFAULT_MAXLEN,
        topic_maxlen: Mapping[str, int] | None = None,
    ) -> None:
        self._redis = aioredis.Redis.from_url(url, decode_responses=True)
        self._prefix = prefix
        self._maxlen = maxlen
        self._topic_maxlen = dict(topic_maxlen or {})

    def maxlen(self, topic: str) -> int:
        """How many messages ``topic`` keeps at least (``XADD ... MAXLEN ~ N``)."""
        return self._topic_maxlen.get(topic, self._maxlen)

    def _key(self, topic: str) -> str:
        return self._prefix + topic

    def _message(self, topic: str, msg_id: str, fields: dict[str, str], deliveries: int) -> Message:
        payload, problem = decode_payload(fields.get(_PAYLOAD_FIELD))
        return Message(id=msg_id, topic=topic, payload=payload, deliveries=deliveries, problem=problem)

    async def publish(self, topic: str, payload: dict[str, Any]) -> str:
        data = json.dumps(payload, default=str)
        try:
            msg_id = await self._redis.xadd(
                self._key(topic), {_PAYLOAD_FIELD: data}, maxlen=self.maxlen(topic), approximate=True
            )
        except RedisError as error:
            raise BusUnavailableError(f"cannot publish to Redis: {error}") from error
        return str(msg_id)

    async def ensure_group(self, topic: str, group: str, *, start: str = "0") -> None:
        try:
            await self._redis.xgroup_create(self._key(topic), group, id=start, mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def read(self, topic: str, group: str, consumer: str, *, count: int = 10, block_ms: int = 0) -> list[Message]:
        try:
            reply: Any = await self._xreadgroup(topic, group, consumer, count, block_ms)
        except ResponseError as error:
            if not _no_group(error):
                raise
            await self._recreate_group(topic, group)
            reply = await self._xreadgroup(topic, group, consumer, count, block_ms)
        messages: list[Message] = []
        for _stream, entries in reply or []:
            for msg_id, fields in entries:
                messages.append(self._message(topic, msg_id, fields, 1))
        return messages

    async def _xreadgroup(self, topic: str, group: str, consumer: str, count: int, block_ms: int) -> Any:
        return await self._redis.xreadgroup(
            group, consumer, {self._key(topic): ">"}, count=count, block=block_ms or None
        )

    async def _recreate_group(self, topic: str, group: str) -> None:
        """Redis restarted empty, or the stream was deleted: make the group again from the stream's start."""
        log.warning("bus.group_recreated", topic=topic, group=group)
        await self.ensure_group(topic, group, start="0")

    async def ack(self, topic: str, group: str, *ids: str) -> int:
        if not ids:
            return 0
        return int(await self._redis.xack(self._key(topic), group, *ids))

    async def reclaim(
        self, topic: str, group: str, consumer: str, *, min_idle_ms: int, count: int = 100
    ) -> list[Message]:
        key = self._key(topic)
        try:
            reply = await self._redis.xautoclaim(key, group, consumer, min_idle_ms, start_id="0-0", count=count)
        except ResponseError as error:
            if not _no_group(error):
                raise
            await self._recreate_group(topic, group)
            return []
        entries = [(msg_id, fields) for msg_id, fields in reply[1] if fields]
        if not entries:
            return []
        details = await self._redis.xpending_range(
            key, group, min=entries[0][0], max=entries[-1][0], count=len(entries) * 2, consumername=consumer
        )
        deliveries = {d["message_id"]: int(d["times_delivered"]) for d in details}
        return [self._message(topic, msg_id, fields, deliveries.get(msg_id, 2)) for msg_id, fields in entries]

    async def pending(self, topic: str, group: str) -> int:
        summary = await self._redis.xpending(self._key(topic), group)
        return int(summary["pending"])

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except RedisError:
            return False

    async def close(self) -> None:
        await self._redis.aclose()
