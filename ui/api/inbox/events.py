"""Server-sent events for open inboxes: approval status changes and order updates, as they happen.

Each connection reads the bus topics ``approvals.events`` and ``orders.updates`` through a consumer group
of its own created at ``$`` (new messages only), acks what it forwards, and sends a comment line as a
heartbeat so that a closed connection is noticed. Only ids and statuses are forwarded: the page fetches
what it shows through its normal, authenticated routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncGenerator
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from approvals.service import EVENTS_TOPIC
from engine.bus import Bus
from engine.execution.oms import ORDER_UPDATES_TOPIC
from engine.runtime import Runtime
from engine.telemetry import get_logger
from ui.api.auth import Principal, current_user

log = get_logger(__name__)

router = APIRouter(include_in_schema=False)

TOPICS: Final[dict[str, str]] = {EVENTS_TOPIC: "approval", ORDER_UPDATES_TOPIC: "order"}
HEARTBEAT_S: Final = 15.0
QUEUE_SIZE: Final = 1000
_CONSUMER: Final = "sse"
_ORDER_FIELDS: Final = ("id", "approval_id", "status", "filled_quantity", "average_price", "symbol")
_APPROVAL_FIELDS: Final = ("id", "status", "kind")


def public_event(topic: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The fields a browser gets: ids and statuses only."""
    fields = _APPROVAL_FIELDS if topic == EVENTS_TOPIC else _ORDER_FIELDS
    return {k: payload.get(k) for k in fields if k in payload}


def format_event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n"


async def _drop_groups(bus: Bus, group: str) -> None:
    """Remove the connection's consumer groups if the bus can (the Bus protocol has no such call yet)."""
    delete = getattr(bus, "delete_group", None)
    if delete is None:
        return
    for topic in TOPICS:
        with contextlib.suppress(Exception):
            await delete(topic, group)


_detached: set[asyncio.Task[None]] = set()


async def closed_streams_wound_down() -> None:
    """Wait until the readers of every closed stream have ended and dropped their groups (before closing a bus)."""
    while _detached:
        await asyncio.gather(*list(_detached), return_exceptions=True)


async def _wind_down(bus: Bus, group: str, pumps: list[asyncio.Task[None]]) -> None:
    await asyncio.gather(*pumps, return_exceptions=True)
    await _drop_groups(bus, group)


async def event_stream(
    bus: Bus, *, block_ms: int = 1000, heartbeat_s: float = HEARTBEAT_S
) -> AsyncGenerator[str, None]:
    """The SSE body: ``event: approval|order`` messages and heartbeat comments, until the client leaves.

    The readers are never cancelled while they wait in ``bus.read``: they see ``stop`` and end after their
    current read (at most ``block_ms``). Cancelling a task blocked in the in-process bus's read (twice, as
    a server's cancel scope does on disconnect) can leave the bus's lock held, and every publish then hangs.
    """
    group = f"inbox-sse-{uuid.uuid4().hex}"
    queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(maxsize=QUEUE_SIZE)
    stop = asyncio.Event()
    for topic in TOPICS:
        await bus.ensure_group(topic, group, start="$")

    async def pump(topic: str) -> None:
        while not stop.is_set():
            try:
                messages = await bus.read(topic, group, _CONSUMER, count=50, block_ms=block_ms)
                if messages:
                    await bus.ack(topic, group, *(m.id for m in messages))
            except Exception:
                log.exception("inbox.sse_read_failed", topic=topic)
                await asyncio.sleep(1.0)
                continue
            for message in messages:
                if queue.full():
                    queue.get_nowait()  # a stalled client loses the oldest hints, not the connection
                queue.put_nowait((TOPICS[topic], public_event(topic, message.payload)))

    pumps = [asyncio.create_task(pump(topic)) for topic in TOPICS]
    try:
        yield "retry: 3000\n: connected\n\n"
        while True:
            try:
                name, data = await asyncio.wait_for(queue.get(), timeout=heartbeat_s)
            except TimeoutError:
                yield ": ping\n\n"
                continue
            yield format_event(name, data)
    finally:
        stop.set()
        # no await here: this block may run inside a cancelled scope; a detached task reaps the readers
        reaper = asyncio.get_running_loop().create_task(_wind_down(bus, group, pumps))
        _detached.add(reaper)
        reaper.add_done_callback(_detached.discard)


@router.get("/inbox/events")
async def inbox_events(request: Request, principal: Annotated[Principal, Depends(current_user)]) -> StreamingResponse:
    runtime: Runtime = request.app.state.runtime
    return StreamingResponse(
        event_stream(runtime.bus, block_ms=runtime.settings.bus_block_ms),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no", "X-Content-Type-Options": "nosniff"},
    )
