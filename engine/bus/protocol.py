"""The event bus contract: durable topics with consumer groups, acks and reclaim (Redis Streams semantics).

Contract every implementation keeps (tests/contract/test_bus_contract.py runs against each):
* ``publish`` appends a JSON-serialisable payload to a topic and returns its id; ids increase.
* A consumer group sees every message published after (or before, with ``start="0"``) its creation once:
  ``read`` hands each new message to exactly one consumer of the group and marks it pending for that consumer.
* ``ack`` removes a message from the pending list; an acked message is never delivered to that group again.
* ``reclaim`` hands the pending messages that have been idle for at least ``min_idle_ms`` (their consumer
  died or hung) to another consumer, counting the delivery; nothing is lost and nothing acked comes back.
* Retention: a topic keeps at least its last ``maxlen`` messages (per topic, configurable); older ones are
  trimmed whether or not a group has read them (Redis may keep a few more: it trims whole stream nodes). A
  consumer that falls further behind than that loses the oldest messages, never the newer ones; a trimmed
  message still pending is dropped from the pending list when reclaimed. So every message the product must not
  lose (an approved order) also lives in the database, which workers sweep.
"""

from __future__ import annotations

from typing import Any, Final, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

DEFAULT_MAXLEN: Final = 10_000
"""Messages kept per topic unless configured (``IQTS_BUS_MAXLEN``, ``IQTS_BUS_MAXLEN_TOPICS``)."""


class Message(BaseModel):
    """One delivered message."""

    model_config = ConfigDict(frozen=True)

    id: str
    topic: str
    payload: dict[str, Any]
    deliveries: int = 1
    problem: str | None = None  # why the entry cannot be used (not JSON, not an object...): dead-lettered unread


@runtime_checkable
class Bus(Protocol):
    """Publish, consume in groups, ack, reclaim."""

    async def publish(self, topic: str, payload: dict[str, Any]) -> str:
        """Append ``payload`` to ``topic``; return the message id."""
        ...

    async def ensure_group(self, topic: str, group: str, *, start: str = "0") -> None:
        """Create ``group`` on ``topic`` if missing (``start="0"``: from the beginning; ``"$"``: new only)."""
        ...

    async def read(self, topic: str, group: str, consumer: str, *, count: int = 10, block_ms: int = 0) -> list[Message]:
        """Up to ``count`` never-delivered messages for ``consumer``, waiting up to ``block_ms`` for one."""
        ...

    async def ack(self, topic: str, group: str, *ids: str) -> int:
        """Mark messages processed; return how many were pending."""
        ...

    async def reclaim(
        self, topic: str, group: str, consumer: str, *, min_idle_ms: int, count: int = 100
    ) -> list[Message]:
        """Take over pending messages idle for at least ``min_idle_ms`` (a dead consumer's)."""
        ...

    async def pending(self, topic: str, group: str) -> int:
        """How many delivered messages await an ack in ``group``."""
        ...

    async def ping(self) -> bool:
        """Whether the bus is reachable."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
