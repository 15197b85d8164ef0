"""`iqts up` and `iqts api`: run the processes on embedded defaults."""

from __future__ import annotations

import asyncio
import socket

import uvicorn

from engine.errors import ConfigError
from engine.runtime import Runtime
from engine.settings import Settings
from ui.api.app import create_app
from ui.cli.console import out


def ensure_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({error.strerror}): set IQTS_API_PORT to a free port"
            ) from None


def banner(runtime: Runtime, title: str) -> None:
    url = runtime.settings.api_url
    out.print(f"[bold green]{title}[/] (mode {runtime.settings.mode})")
    out.print(f"  API        {url}  (docs {url}/docs)")
    out.print(f"  health     {url}/healthz   ready {url}/readyz   metrics {url}/metrics")
    out.print(f"  database   {runtime.database_description}")
    out.print(f"  bus        {runtime.bus_description}")
    out.print(f"  state dir  {runtime.settings.state_dir}")
    out.print("Press Ctrl-C to stop everything.")


async def serve(settings: Settings, *, banner_title: str = "IQTS is up") -> None:
    """Start the runtime and the API; on Ctrl-C stop them, the embedded PostgreSQL included."""
    ensure_port_free(settings.api_host, settings.api_port)
    runtime = await asyncio.to_thread(Runtime.start, settings)
    try:
        config = uvicorn.Config(
            create_app(runtime),
            host=settings.api_host,
            port=settings.api_port,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.05)
        if server.started:
            banner(runtime, banner_title)
        await task
    finally:
        await runtime.aclose()
        out.print("IQTS stopped.")
