"""Long-running processes other than the API: the MCP stdio server and the execution worker."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import TYPE_CHECKING

from engine.settings import Settings
from engine.telemetry import configure_logging
from ui.cli.console import err

if TYPE_CHECKING:
    from engine.runtime import Runtime


async def run_mcp_stdio(settings: Settings) -> None:
    """stdout belongs to the protocol: logs go to stderr as JSON, nothing else is printed."""
    from tools.server import serve_stdio

    configure_logging("WARNING", "json", settings.secret_values())
    await serve_stdio(lambda: _start_runtime(settings))


def _start_runtime(settings: Settings) -> Runtime:
    from engine.runtime import Runtime

    return Runtime.start(settings, logging=False)


def stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)


async def run_worker(settings: Settings) -> None:
    from engine.execution.modes import validate_mode
    from engine.execution.worker import ExecutionWorker, build_order_manager

    mode_check = validate_mode(settings)  # before anything starts: accounts vs mode, keys, the live confirmation
    runtime = await asyncio.to_thread(_start_worker_runtime, settings)
    try:
        stop = asyncio.Event()
        stop_on_signals(stop)
        manager = build_order_manager(runtime, mode_check=mode_check)
        try:
            worker = ExecutionWorker(runtime, manager)
            await worker.startup()  # key permissions, reconciliation with the venues
            err.print(
                f"IQTS worker running in {settings.mode} mode ({runtime.bus_description} bus, accounts "
                f"{', '.join(manager.router.accounts)})"
            )
            await worker.run(stop)
        finally:
            await manager.router.close()
    finally:
        await runtime.aclose()


def _start_worker_runtime(settings: Settings) -> Runtime:
    from engine.runtime import Runtime

    return Runtime.start(settings)
