"""Health, readiness and metrics of the API on a real runtime."""

from __future__ import annotations

import httpx

from engine.bus import InProcessBus
from engine.bus.redis_streams import RedisStreamsBus
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database
from ui.api.app import create_app


async def _get(runtime: Runtime, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path)


async def test_ready_when_database_and_bus_answer(settings: Settings, db: Database, redis_url: str) -> None:
    for bus in (InProcessBus(), RedisStreamsBus(redis_url)):
        response = await _get(Runtime(settings=settings, db=db, bus=bus), "/readyz")
        assert response.status_code == 200
        assert response.json() == {"status": "ready", "checks": {"database": True, "bus": True}}
        await bus.close()


async def test_not_ready_when_the_bus_is_down(settings: Settings, db: Database) -> None:
    dead = RedisStreamsBus("redis://127.0.0.1:1/0")
    response = await _get(Runtime(settings=settings, db=db, bus=dead), "/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": True, "bus": False}


async def test_health_and_metrics(settings: Settings, db: Database) -> None:
    runtime = Runtime(settings=settings, db=db, bus=InProcessBus())
    assert (await _get(runtime, "/healthz")).json() == {"status": "ok"}
    metrics = await _get(runtime, "/metrics")
    assert metrics.status_code == 200
    assert 'iqts_build_info{mode="dry-run"' in metrics.text
    assert "process_cpu_seconds_total" in metrics.text
