"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI

from engine import __version__
from engine.runtime import Runtime
from engine.telemetry import BUILD_INFO
from ui.api import health


def create_app(runtime: Runtime) -> FastAPI:
    """The API on an already-started runtime (the caller owns its lifetime)."""
    app = FastAPI(
        title="IQTS",
        version=__version__,
        description="Crypto quant research and trading copilot: every order waits for a human approval.",
    )
    app.state.runtime = runtime
    BUILD_INFO.info({"version": __version__, "mode": runtime.settings.mode})
    app.include_router(health.router)
    return app
