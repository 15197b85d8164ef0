"""A consumer loop over any Bus: reclaim what dead consumers left, process, ack; dead-letter poison messages."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from engine.bus.protocol import Bus, Message
from engine.telemetry import get_logger

log = get_logger(__name__)

Handler = Callable[[Message], Awaitable[None]]


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
    ``max_deliveries`` attempts it is published to ``<topic>.dead`` and acked.
    """
    batch = await bus.reclaim(topic, group, consumer, min_idle_ms=reclaim_idle_ms, count=count)
    if not batch:
        batch = await bus.read(topic, group, consumer, count=count, block_ms=block_ms)
    acked = 0
    for message in batch:
        if message.deliveries > max_deliveries:
            await bus.publish(f"{topic}.dead", {"id": message.id, "payload": message.payload, "group": group})
            acked += await bus.ack(topic, group, message.id)
            log.error("bus.dead_letter", topic=topic, group=group, id=message.id)
            continue
        try:
            await handler(message)
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
    await bus.ensure_group(topic, group)
    while not stop.is_set():
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
