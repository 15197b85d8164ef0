"""A consumer loop over any Bus: reclaim what dead consumers left, process, ack; dead-letter poison messages."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from prometheus_client import Counter

from engine.bus.protocol import Bus, Message
from engine.telemetry import get_logger, metric

log = get_logger(__name__)

Handler = Callable[[Message], Awaitable[None]]

DEAD_LETTERS = metric(
    Counter,
    "iqts_bus_dead_letters_total",
    "Messages moved to a dead-letter topic, by topic and why (poison: unusable at once; retries: failed too often).",
    ("topic", "why"),
)


class PoisonMessageError(Exception):
    """Raised by a handler for a message that can never be handled (malformed): dead-lettered at once, not retried."""


async def _dead_letter(bus: Bus, group: str, message: Message, reason: str, why: str) -> int:
    await bus.publish(
        f"{message.topic}.dead", {"id": message.id, "payload": message.payload, "group": group, "reason": reason}
    )
    DEAD_LETTERS.labels(topic=message.topic, why=why).inc()
    log.error("bus.dead_letter", topic=message.topic, group=group, id=message.id, reason=reason)
    return await bus.ack(message.topic, group, message.id)


async def process_once(
    bus: Bus,
    topic: str,
    group: str,
    consumer: str,
    handler: Handler,
    *,
    block_ms: int,
    reclaim_idle_ms: int,
    max_deliveries: int = 5,
    count: int = 10,
) -> int:
    """One round: reclaim idle pending messages, read new ones, handle each; return how many were acked.

    A message whose handler raises stays pending and is retried after ``reclaim_idle_ms``; after
    ``max_deliveries`` attempts it is published to ``<topic>.dead`` and acked. A message that cannot be used at all
    (``Message.problem``, or the handler raises ``PoisonMessageError``) goes there at once, with the reason, so the
    messages behind it keep flowing.
    """
    batch = await bus.reclaim(topic, group, consumer, min_idle_ms=reclaim_idle_ms, count=count)
    if not batch:
        batch = await bus.read(topic, group, consumer, count=count, block_ms=block_ms)
    acked = 0
    for message in batch:
        if message.problem is not None:
            acked += await _dead_letter(bus, group, message, message.problem, "poison")
            continue
        if message.deliveries > max_deliveries:
            acked += await _dead_letter(bus, group, message, f"failed {max_deliveries} deliveries", "retries")
            continue
        try:
            await handler(message)
        except PoisonMessageError as error:
            acked += await _dead_letter(bus, group, message, str(error), "poison")
            continue
        except Exception:
            log.exception("bus.handler_failed", topic=topic, group=group, id=message.id)
            continue
        acked += await bus.ack(topic, group, message.id)
    return acked


async def consume_forever(
    bus: Bus,
    topic: str,
    group: str,
    consumer: str,
    handler: Handler,
    stop: asyncio.Event,
    *,
    block_ms: int,
    reclaim_idle_ms: int,
    max_deliveries: int = 5,
) -> None:
    """Run ``process_once`` until ``stop`` is set."""
    backoff = _BACKOFF_MIN_S
    while not stop.is_set():
        try:
            await bus.ensure_group(topic, group)
            break
        except Exception as error:  # the bus is not there yet: keep trying, never give up silently
            log.warning("bus.consumer_waiting", topic=topic, group=group, error=str(error)[:200], retry_s=backoff)
            backoff = await _pause(stop, backoff)
    backoff = _BACKOFF_MIN_S
    while not stop.is_set():
        try:
            await process_once(
                bus,
                topic,
                group,
                consumer,
                handler,
                block_ms=block_ms,
                reclaim_idle_ms=reclaim_idle_ms,
                max_deliveries=max_deliveries,
            )
            backoff = _BACKOFF_MIN_S
        except Exception as error:  # Redis away or restarted: the loop must outlive it, not end the consumer
            log.warning("bus.consumer_retry", topic=topic, group=group, error=str(error)[:200], retry_s=backoff)
            backoff = await _pause(stop, backoff)


_BACKOFF_MIN_S = 0.5
_BACKOFF_MAX_S = 15.0


async def _pause(stop: asyncio.Event, seconds: float) -> float:
    """Wait ``seconds`` or until stopped; return the next, longer, pause."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return min(seconds * 2, _BACKOFF_MAX_S)
