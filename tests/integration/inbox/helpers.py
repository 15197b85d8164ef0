"""Helpers of the inbox tests: the people, signing in through the real form, CSRF tokens."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import uvicorn

from approvals.service import ApprovalRequest
from approvals.users import User

PASSWORD = "correct horse battery staple"
T = TypeVar("T")

Propose = Callable[..., Coroutine[Any, Any, ApprovalRequest]]


@dataclass
class People:
    approver: User
    approver2: User
    viewer: User
    trader: User
    trader_token: str
    approver_token: str


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def form_csrf(html: str) -> str:
    match = _CSRF.search(html)
    assert match is not None, "no csrf_token field in the page"
    return match.group(1)


async def sign_in(http: httpx.AsyncClient, username: str, password: str = PASSWORD) -> httpx.Response:
    """Sign in through the real form (its pre-session CSRF token included); returns the POST's response."""
    page = await http.get("/login")
    assert page.status_code == 200
    return await http.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": form_csrf(page.text), "next": "/inbox"},
    )


async def session_csrf(http: httpx.AsyncClient) -> str:
    """The signed-in session's CSRF token, as the JSON API hands it out."""
    response = await http.get("/api/session")
    assert response.status_code == 200, response.text
    token = response.json()["csrf_token"]
    assert isinstance(token, str)
    return token


class ServerThread:
    """A real uvicorn server of an ASGI app on 127.0.0.1 (a free port), in a thread with its own event loop.

    Coroutines that touch the app's in-process bus must run on that loop: use ``run``.
    """

    def __init__(self, app: Any) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port = int(self._socket.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="uvicorn-test", daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.serve(sockets=[self._socket]))

    def __enter__(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run ``coro`` on the server's loop and wait for its result (from any other thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)
