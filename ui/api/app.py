"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine import __version__
from engine.errors import IQTSError
from engine.runtime import Runtime
from engine.telemetry import BUILD_INFO
from ui.api import approvals_api, auth, health
from ui.api.inbox import events, pages
from ui.api.inbox.templating import STATIC_DIR
from ui.api.inbox.views import http_status

_JSON_PREFIXES = (
    "/api",
    "/mcp",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/redoc",
    "/inbox/events",
)


def _wants_html(request: Request) -> bool:
    """Browsers on pages (they ask for HTML, or post a form) get HTML errors; API clients get JSON."""
    if request.url.path.startswith(_JSON_PREFIXES):
        return False
    content_type = request.headers.get("content-type", "")
    is_form = content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data"))
    return is_form or "text/html" in request.headers.get("accept", "")


async def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, auth.LoginRequiredError)
    return auth.login_redirect(exc.next_path)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Pages get an HTML error page with the reason; everything else FastAPI's JSON ``{"detail": ...}``."""
    assert isinstance(exc, StarletteHTTPException)
    if _wants_html(request) and exc.status_code >= 400:
        return pages.error_page(request, exc.status_code, str(exc.detail))
    return await http_exception_handler(request, exc)


async def _iqts_error(request: Request, exc: Exception) -> Response:
    """An IQTS error nobody mapped: a 4xx with its one-line reason, never a stack trace."""
    assert isinstance(exc, IQTSError)
    code = http_status(exc)
    if _wants_html(request):
        return pages.error_page(request, code, str(exc))
    return JSONResponse({"detail": str(exc)}, status_code=code)


def create_app(runtime: Runtime, *, with_mcp: bool = True) -> FastAPI:
    """The API on an already-started runtime (the caller owns its lifetime); MCP over HTTP at /mcp."""
    mcp_lifespan = None
    mcp_route = None
    if with_mcp:
        from tools.http import mcp_route as build_mcp_route

        mcp_route, mcp_lifespan = build_mcp_route(runtime)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            stack.push_async_callback(events.closed_streams_wound_down)  # the runtime's bus outlives this app
            if mcp_lifespan is not None:
                await stack.enter_async_context(mcp_lifespan())
            yield

    app = FastAPIOffline(  # /docs and /redoc with their assets served from here: no CDN, works offline
        title="IQTS",
        version=__version__,
        description="Crypto quant research and trading copilot: every order waits for a human approval.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    if mcp_route is not None:
        app.router.routes.append(mcp_route)
    BUILD_INFO.info({"version": __version__, "mode": runtime.settings.mode})
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(approvals_api.router)
    app.include_router(events.router)  # before the pages: /inbox/events is not a request id
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_exception_handler(auth.LoginRequiredError, _login_required)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(IQTSError, _iqts_error)
    return app
