"""`iqts up` and `iqts api`: run the processes on embedded defaults."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import uvicorn

from engine.errors import ConfigError, IQTSError
from engine.runtime import Runtime
from engine.settings import Settings
from engine.telemetry import get_logger
from ui.api.app import create_app
from ui.cli.console import out

log = get_logger(__name__)


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
    out.print(f"  inbox      {url}/inbox   (approve or reject proposed orders; `iqts users add NAME --role approver`)")
    out.print(f"  MCP        {url}/mcp (streamable HTTP, bearer token: `iqts users token NAME`); stdio: `iqts mcp`")
    out.print(f"  health     {url}/healthz   ready {url}/readyz   metrics {url}/metrics")
    out.print(f"  database   {runtime.database_description}")
    out.print(f"  bus        {runtime.bus_description}")
    out.print(f"  state dir  {runtime.settings.state_dir}")
    out.print("Press Ctrl-C to stop everything.")


async def _expire_approvals(runtime: Runtime, stop: asyncio.Event, interval_s: float) -> None:
    from approvals.service import expire_due

    while not stop.is_set():
        try:
            await expire_due(runtime.db, runtime.bus)
        except IQTSError as error:
            log.error("up.expiry_failed", error=str(error))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)


async def background_services(runtime: Runtime, stop: asyncio.Event) -> list[asyncio.Task[None]]:
    """What `iqts up` runs beside the API in the same process (and so on the same in-process bus)."""
    from engine.execution.worker import ExecutionWorker, build_order_manager
    from engine.portfolio.service import portfolio_snapshot
    from engine.risk.monitor import RiskMonitor

    manager = build_order_manager(runtime)
    monitor = RiskMonitor(runtime.db, lambda: portfolio_snapshot(runtime.db, runtime.settings)[0])
    interval = runtime.settings.execution_poll_s
    return [
        asyncio.create_task(ExecutionWorker(runtime, manager).run(stop), name="worker"),
        asyncio.create_task(monitor.run(stop, interval_s=max(interval, 5.0)), name="risk-monitor"),
        asyncio.create_task(_expire_approvals(runtime, stop, interval), name="approval-expiry"),
    ]


async def serve(settings: Settings, *, banner_title: str = "IQTS is up", services: bool = True) -> None:
    """Start the runtime, the API (with the inbox and MCP) and, for `iqts up`, the worker, the risk monitor and
    the approval expiry; on Ctrl-C stop them all, the embedded PostgreSQL included."""
    ensure_port_free(settings.api_host, settings.api_port)
    runtime = await asyncio.to_thread(Runtime.start, settings)
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    from approvals.users import ensure_initial_admin

    password_file = settings.state_dir / "admin-password"
    admin_password = await asyncio.to_thread(ensure_initial_admin, runtime.db, password_file)
    try:
        if services:
            tasks = await background_services(runtime, stop)
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
            if admin_password:
                out.print(f"  first run: sign in to the inbox as [bold]admin[/]; the password is in {password_file} "
                          "(mode 0600). Add approvers with `iqts users add NAME --role approver`.")
        await task
    finally:
        stop.set()
        for background in tasks:
            background.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await runtime.aclose()
        out.print("IQTS stopped.")
