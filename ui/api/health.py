"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from engine.runtime import Runtime
from engine.telemetry import REGISTRY

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, bool]


@router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="The database and the bus answer",
    responses={503: {"model": Readiness, "description": "a dependency does not answer"}},
)
async def readyz(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    db_ok = await asyncio.to_thread(runtime.db.ping)
    bus_ok = await runtime.bus.ping()
    body = Readiness(status="ready" if db_ok and bus_ok else "unavailable", checks={"database": db_ok, "bus": bus_ok})
    return JSONResponse(body.model_dump(), status_code=200 if db_ok and bus_ok else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
