"""Live updates over server-sent events from a real uvicorn server, and the expiry job."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from approvals.jobs import run_expiry
from approvals.service import EVENTS_TOPIC, get_request
from engine.bus import Bus, InProcessBus
from engine.bus.redis_streams import RedisStreamsBus
from engine.execution.oms import ORDER_UPDATES_TOPIC
from engine.runtime import Runtime
from tests.integration.inbox.helpers import People, Propose, ServerThread
from ui.api.app import create_app
from ui.api.inbox.events import closed_streams_wound_down, event_stream


async def _next_event(lines: AsyncIterator[str], name: str, timeout: float = 10.0) -> dict[str, object]:
    async def find() -> dict[str, object]:
        current = None
        async for line in lines:
            if line.startswith("event: "):
                current = line.removeprefix("event: ")
            elif line.startswith("data: ") and current == name:
                data = json.loads(line.removeprefix("data: "))
                assert isinstance(data, dict)
                return data
        raise AssertionError("the stream ended")

    return await asyncio.wait_for(find(), timeout)


async def test_events_stream_new_requests_and_decisions(runtime: Runtime, people: People, propose: Propose) -> None:
    with ServerThread(create_app(runtime)) as server:
        headers = {"Authorization": f"Bearer {people.trader_token}"}
        async with (
            httpx.AsyncClient(base_url=server.url, timeout=10) as http,
            http.stream("GET", "/inbox/events", headers=headers) as stream,
        ):
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.aiter_lines()
            assert await lines.__anext__() == "retry: 3000"
            request = server.run(propose())
            event = await _next_event(lines, "approval")
            assert event == {"id": request.id, "status": "pending", "kind": "order"}
        unauthenticated = httpx.get(server.url + "/inbox/events", timeout=5)
        assert unauthenticated.status_code == 401


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_event_stream_forwards_only_ids_and_statuses(kind: str, redis_url: str, unique: str) -> None:
    bus: Bus = InProcessBus() if kind == "memory" else RedisStreamsBus(redis_url, prefix=f"test-{unique}:")
    stream = event_stream(bus, block_ms=50, heartbeat_s=0.5)
    assert (await stream.__anext__()).startswith("retry:")
    await bus.publish(EVENTS_TOPIC, {"id": "apr_x", "status": "pending", "kind": "order", "secret": "s3"})
    await bus.publish(ORDER_UPDATES_TOPIC, {"id": 7, "approval_id": "apr_x", "status": "filled", "venue": "paper"})
    received = {await asyncio.wait_for(stream.__anext__(), 5) for _ in range(2)}
    assert received == {
        'event: approval\ndata: {"id":"apr_x","status":"pending","kind":"order"}\n\n',
        'event: order\ndata: {"id":7,"approval_id":"apr_x","status":"filled"}\n\n',
    }
    assert await asyncio.wait_for(stream.__anext__(), 5) == ": ping\n\n"  # the heartbeat
    await stream.aclose()
    await closed_streams_wound_down()  # the readers end after their current read
    await bus.close()


async def test_the_expiry_job_expires_overdue_requests(runtime: Runtime, propose: Propose) -> None:
    overdue, fresh = await propose(), await propose()
    with runtime.db.connection() as conn:
        conn.execute(
            "UPDATE approval_requests SET expires_at = %s WHERE id = %s",
            (datetime.now(UTC) - timedelta(seconds=1), overdue.id),
        )
    stop = asyncio.Event()
    job = asyncio.create_task(run_expiry(runtime, stop, interval_s=0.05))
    try:
        for _ in range(100):
            if get_request(runtime.db, overdue.id).status == "expired":
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(job, 5)
    assert get_request(runtime.db, overdue.id).status == "expired"
    assert get_request(runtime.db, fresh.id).status == "pending"


async def test_closing_event_streams_never_wedges_the_bus(runtime: Runtime, people: People, propose: Propose) -> None:
    """Browsers drop their stream on every navigation; publishing (so deciding) must keep working."""
    headers = {"Authorization": f"Bearer {people.trader_token}"}
    with ServerThread(create_app(runtime)) as server:
        for _ in range(4):
            async with (
                httpx.AsyncClient(base_url=server.url, timeout=10) as http,
                http.stream("GET", "/inbox/events", headers=headers) as stream,
            ):
                lines = stream.aiter_lines()
                assert await lines.__anext__() == "retry: 3000"
                request = server.run(propose(), timeout=10)
                assert (await _next_event(lines, "approval"))["id"] == request.id
        server.run(asyncio.wait_for(runtime.bus.publish(EVENTS_TOPIC, {"id": "probe"}), 3), timeout=5)
