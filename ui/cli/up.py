"""`iqts up` and `iqts api`: the API process, with the duties the process plan gives each command."""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING

import uvicorn

from engine.errors import ConfigError
from engine.runtime import Runtime
from engine.settings import Settings
from engine.telemetry import get_logger
from ui.api.app import create_app
from ui.cli.console import out
from ui.process.plan import Duty, duties
from ui.process.runner import Background, start_background

if TYPE_CHECKING:
    from ui.chat.serve import ChatChild

log = get_logger(__name__)
SHUTDOWN_GRACE_S = 5.0
TITLES = {"up": "IQTS is up", "api": "IQTS API is up"}


def ensure_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({error.strerror}): set IQTS_API_PORT to a free port"
            ) from None


def banner(runtime: Runtime, title: str, chat_url: str | None = None) -> None:
    url = runtime.settings.api_url
    out.print(f"[bold green]{title}[/] (mode {runtime.settings.mode})")
    out.print(f"  API        {url}  (docs {url}/docs)")
    out.print(f"  inbox      {url}/inbox   (approve or reject proposed orders; `iqts users add NAME --role approver`)")
    if chat_url:
        out.print(f"  chat       {chat_url}   (the copilot, IQTS_LLM={runtime.settings.llm}; sign in as in the inbox)")
    out.print(f"  MCP        {url}/mcp (streamable HTTP, bearer token: `iqts users token NAME`); stdio: `iqts mcp`")
    out.print(f"  health     {url}/healthz   ready {url}/readyz   metrics {url}/metrics")
    out.print(f"  database   {runtime.database_description}")
    out.print(f"  bus        {runtime.bus_description}")
    out.print(f"  state dir  {runtime.settings.state_dir}")
    out.print("Press Ctrl-C to stop everything.")


def load_sample_if_empty(runtime: Runtime) -> None:
    """A fresh install gets the bundled real history, so research and paper trading work offline at once."""
    from engine.data.sample import load_sample_series
    from engine.data.store import BarStore, make_key

    store = BarStore(runtime.db)
    if store.series():
        return
    for series in load_sample_series():
        store.upsert_bars(make_key(series.exchange, series.symbol, series.timeframe), series.frame)
    log.info("up.sample_loaded")


def start_chat(runtime: Runtime) -> ChatChild | None:
    """The chat as a child process beside the API (None, with a warning, when its port is taken)."""
    from ui.chat.config import listen_host
    from ui.chat.serve import spawn

    chat = runtime.settings.chat
    try:
        ensure_port_free(listen_host(runtime.settings, chat), chat.port)
    except ConfigError:
        out.print(f"[yellow]chat not started:[/] port {chat.port} is taken (set IQTS_CHAT_PORT to a free port)")
        return None
    env = {} if runtime.settings.database_url is not None else {"IQTS_DATABASE_URL": runtime.db.url}
    return spawn(runtime.settings, chat, env=env)


async def _announce_chat(child: ChatChild) -> None:
    from ui.chat.serve import wait_until_up

    if await asyncio.to_thread(wait_until_up, child.url, child.process, 90.0):
        out.print(f"  chat is ready at {child.url}")
    else:
        out.print(f"[red]the chat did not start[/]: see {child.log_path}")


async def serve(settings: Settings, command: str = "up") -> None:
    """Start the runtime and the duties the process plan gives ``command`` (``up``: all of them, the chat as a
    child process; ``api``: the API with MCP over HTTP); on Ctrl-C stop them all, the embedded PostgreSQL included."""
    plan = duties(command)
    ensure_port_free(settings.api_host, settings.api_port)
    runtime = await asyncio.to_thread(Runtime.start, settings)
    stop = asyncio.Event()
    background = Background()
    chat: ChatChild | None = None
    announce: asyncio.Task[None] | None = None
    from approvals.users import ensure_initial_admin

    password_file = settings.state_dir / "admin-password"
    admin_password = await asyncio.to_thread(ensure_initial_admin, runtime.db, password_file)
    if Duty.EXECUTION in plan:
        await asyncio.to_thread(load_sample_if_empty, runtime)
    try:
        background = await start_background(runtime, plan, stop)
        config = uvicorn.Config(
            create_app(runtime, with_mcp=Duty.MCP_HTTP in plan),
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
            if Duty.CHAT in plan:
                chat = await asyncio.to_thread(start_chat, runtime)
            banner(runtime, TITLES.get(command, "IQTS is up"), chat.url if chat else None)
            if chat is not None:
                announce = asyncio.create_task(_announce_chat(chat), name="chat-announce")
            if admin_password:
                out.print(
                    f"  first run: sign in to the inbox as [bold]admin[/]; the password is in {password_file} "
                    "(mode 0600). Add approvers with `iqts users add NAME --role approver`."
                )
        await task
    finally:
        if chat is not None:
            from ui.chat.serve import stop as stop_chat

            if announce is not None:
                announce.cancel()
            await asyncio.to_thread(stop_chat, chat.process)  # its sessions end: their MCP tokens are revoked
        # the duties finish their round and return; what does not within the grace is cancelled
        await background.stop(stop, SHUTDOWN_GRACE_S)
        await runtime.aclose()
        out.print("IQTS stopped.")
