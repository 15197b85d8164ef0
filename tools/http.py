"""MCP over streamable HTTP at ``/mcp`` in the API process, behind bearer-token auth."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.fastmcp.server import StreamableHTTPASGIApp
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from approvals.users import AuthError, resolve_token
from engine.runtime import Runtime
from engine.store.database import Database
from tools.server import build_server

MCP_PATH = "/mcp"
SDK_TRANSPORT_LOGGER = "mcp.server.streamable_http"


class ClosedStreamFilter(logging.Filter):
    """Drop the SDK's traceback for a stream its own session closed.

    When a client ends its session (``DELETE /mcp``) or the server stops, the SDK's transport closes the session's
    streams while its standalone SSE writer still reads one, and logs ``Error in standalone SSE writer`` with an
    ``anyio.ClosedResourceError`` traceback (mcp 1.x): an orderly end reported as an error. Other errors pass.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        # matched by name: anyio is the SDK's dependency, not ours (deptry), and the class is all we need of it
        kind = type(error)
        return not (kind.__name__ == "ClosedResourceError" and kind.__module__.startswith("anyio"))


def quiet_orderly_session_ends() -> None:
    """Install :class:`ClosedStreamFilter` on the SDK's transport logger (once per process)."""
    logger = logging.getLogger(SDK_TRANSPORT_LOGGER)
    if not any(isinstance(f, ClosedStreamFilter) for f in logger.filters):
        logger.addFilter(ClosedStreamFilter())


class BearerAuth:
    """Refuse requests without a valid ``Authorization: Bearer <token>``; put the user on the request state."""

    def __init__(self, app: ASGIApp, db: Database) -> None:
        self.app = app
        self.db = db

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            await self._refuse(send, "missing bearer token: create one with `iqts users token USERNAME`")
            return
        try:
            user = await asyncio.to_thread(resolve_token, self.db, token.strip())
        except AuthError:
            await self._refuse(send, "invalid or revoked token")
            return
        scope.setdefault("state", {})["iqts_user"] = user
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(send: Send, reason: str) -> None:
        body = json.dumps({"detail": reason}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"www-authenticate", b'Bearer realm="iqts"'),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


MAX_JSON_DEPTH = 64
MAX_BODY_BYTES = 4 * 1024 * 1024


def json_depth(body: bytes) -> int:
    """How deeply arrays and objects nest in a JSON text (brackets inside strings do not count)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


class JsonGuard:
    """Answer 400 to a JSON body nested deeper than ``MAX_JSON_DEPTH`` (the SDK's parser would fail with a 500) and
    413 to one larger than ``MAX_BODY_BYTES``; pass every other request on with its body unchanged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client left before its body came
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                await _answer(send, 413, f"request body larger than {MAX_BODY_BYTES} bytes")
                return
            chunks.append(chunk)
            more = bool(message.get("more_body"))
        body = b"".join(chunks)
        if json_depth(body) > MAX_JSON_DEPTH:
            await _answer(send, 400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
            return
        await self.app(scope, _replay([body], receive), send)


def _replay(bodies: list[bytes], receive: Receive) -> Receive:
    """The body already read, then the client's own messages (its disconnect)."""
    pending = [{"type": "http.request", "body": b, "more_body": False} for b in bodies]

    async def replayed() -> Any:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


async def _answer(send: Send, status: int, reason: str) -> None:
    body = json.dumps({"detail": reason}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def mcp_route(runtime: Runtime) -> tuple[Route, Any]:
    """The ``/mcp`` route and an async context manager to run its session manager in the app's lifespan."""
    quiet_orderly_session_ends()
    server = build_server(runtime, transport="http", streamable_http_path=MCP_PATH)
    server.streamable_http_app()  # creates the session manager
    manager = server.session_manager
    route = Route(MCP_PATH, endpoint=BearerAuth(JsonGuard(StreamableHTTPASGIApp(manager)), runtime.db), methods=None)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        async with manager.run():
            yield

    return route, lifespan
