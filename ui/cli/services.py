"""Long-running processes other than the API: the MCP stdio server and the execution worker."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from engine.runtime import Runtime
from engine.settings import Settings
from engine.telemetry import configure_logging
from ui.cli.console import err


async def run_mcp_stdio(settings: Settings) -> None:
    """stdout belongs to the protocol: logs go to stderr as JSON, nothing else is printed."""
    from tools.server import build_server

    configure_logging("WARNING", "json", settings.secret_values())
    runtime = await asyncio.to_thread(Runtime.start, settings, logging=False)
    try:
        await build_server(runtime, transport="stdio").run_stdio_async()
    finally:
        await runtime.aclose()


def stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)


async def run_worker(settings: Settings) -> None:
    from engine.execution.worker import ExecutionWorker, build_order_manager

    runtime = await asyncio.to_thread(Runtime.start, settings)
    stop = asyncio.Event()
    stop_on_signals(stop)
    manager = build_order_manager(runtime)
    err.print(f"IQTS worker running ({runtime.bus_description} bus, accounts {', '.join(manager.router.accounts)})")
    try:
        await ExecutionWorker(runtime, manager).run(stop)
    finally:
        await manager.router.close()
        await runtime.aclose()
