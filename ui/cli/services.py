"""Long-running processes other than the API: the MCP stdio server and the worker."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import TYPE_CHECKING

from engine.settings import Settings
from engine.telemetry import configure_logging, get_logger
from ui.cli.console import err

if TYPE_CHECKING:
    from engine.runtime import Runtime

log = get_logger(__name__)
SHUTDOWN_GRACE_S = 5.0


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
    """The worker's duties from the process plan: execution, and the singletons under their leader locks."""
    from engine.execution.modes import validate_mode
    from ui.process.plan import duties
    from ui.process.runner import start_background

    mode_check = validate_mode(settings)  # before anything starts: accounts vs mode, keys, the live confirmation
    runtime = await asyncio.to_thread(_start_worker_runtime, settings)
    try:
        stop = asyncio.Event()
        stop_on_signals(stop)
        if settings.redis_url is None:
            log.warning(
                "worker.in_process_bus",
                hint="set IQTS_REDIS_URL: a separate API's approvals and kill-switch messages cannot reach this "
                "worker (it still sweeps the tables), and the notifier hears no new requests",
            )
        background = await start_background(runtime, duties("worker"), stop, mode_check=mode_check)
        try:
            accounts = ", ".join(background.manager.router.accounts) if background.manager else ""
            err.print(
                f"IQTS worker running in {settings.mode} mode ({runtime.bus_description} bus, accounts {accounts})"
            )
            await stop.wait()
        finally:
            await background.stop(stop, SHUTDOWN_GRACE_S)
    finally:
        await runtime.aclose()


def _start_worker_runtime(settings: Settings) -> Runtime:
    from engine.runtime import Runtime

    return Runtime.start(settings)
