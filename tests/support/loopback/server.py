"""Run the loopback exchange in a background thread on 127.0.0.1 (an ephemeral port by default)."""

from __future__ import annotations

import asyncio
import socket
import threading
from http import HTTPStatus
from types import TracebackType
from typing import Any

from aiohttp import web

from engine.telemetry import get_logger
from tests.support.loopback.app import DropMode, FaultInjector, LoopbackApp, RequestLog, RollingWindowLimiter
from tests.support.loopback.config import LoopbackConfig
from tests.support.loopback.models import LoggedRequest
from tests.support.loopback.state import ExchangeState

log = get_logger(__name__)


class LoopbackExchange:
    """A Binance-spot-shaped HTTP server on loopback, for tests and offline runs.

    Use as a context manager (``with LoopbackExchange() as ex: ...``) or call ``start()``/``stop()``.
    ``url`` is the base URL (``http://127.0.0.1:<port>``); point ccxt at it with
    ``tests.support.loopback.client.make_ccxt_binance(ex.url, ex.api_key, ex.secret)``.
    """

    def __init__(self, config: LoopbackConfig | None = None, state: ExchangeState | None = None) -> None:
        if state is not None and config is not None and state.config is not config:
            raise ValueError("pass either a config or a state built from it, not two different configs")
        self.state = state or ExchangeState(config)
        self.config = self.state.config
        self.request_log = RequestLog()
        self.faults = FaultInjector()
        self.limiter = RollingWindowLimiter(self.config.rate_limit_requests, self.config.rate_limit_window_s)
        self._app = LoopbackApp(self.state, request_log=self.request_log, faults=self.faults, limiter=self.limiter)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._port: int | None = None

    # --- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> LoopbackExchange:
        if self._thread is not None:
            raise RuntimeError("the loopback exchange is already running")
        sock = socket.socket(socket.AF_INET6 if ":" in self.config.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.config.host, self.config.port))
        sock.listen(128)
        sock.setblocking(False)
        self._port = int(sock.getsockname()[1])
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, args=(sock,), name="loopback-exchange", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.config.startup_timeout_s):
            raise RuntimeError("the loopback exchange did not start in time")
        if self._error is not None:
            raise RuntimeError("the loopback exchange failed to start") from self._error
        log.info("loopback.started", url=self.url)
        return self

    def _run(self, sock: socket.socket) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            runner = web.AppRunner(
                self._app.build(),
                access_log=None,
                handle_signals=False,
                shutdown_timeout=self.config.shutdown_timeout_s,
            )
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.SockSite(runner, sock).start())
            self._runner = runner
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()
            sock.close()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    def stop(self) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        self.faults.release_holds()  # held answers go out (to whoever still listens) before the loop stops
        loop.call_soon_threadsafe(loop.stop)
        thread.join(self.config.startup_timeout_s)
        self._thread = None
        self._loop = None
        self._runner = None
        log.info("loopback.stopped", port=self._port)

    def __enter__(self) -> LoopbackExchange:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- addresses and credentials --------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the loopback exchange has not been started")
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"http://{host}:{self.port}"

    @property
    def api_key(self) -> str:
        return self.config.api_key

    @property
    def secret(self) -> str:
        return self.config.api_secret.get_secret_value()

    # --- request log ------------------------------------------------------------------------------------
    def requests(self, method: str | None = None, path: str | None = None) -> list[LoggedRequest]:
        """Requests received so far (oldest first), optionally filtered by method and exact path."""
        return self.request_log.entries(method, path)

    def order_submissions(self) -> list[LoggedRequest]:
        """Every POST /api/v3/order received, accepted or not."""
        return self.request_log.entries("POST", "/api/v3/order")

    def clear_request_log(self) -> None:
        self.request_log.clear()

    # --- fault injection (see FaultInjector for details) ---------------------------------------------
    def fail_next(
        self,
        n: int = 1,
        status: int = HTTPStatus.SERVICE_UNAVAILABLE,
        *,
        code: int | None = None,
        msg: str | None = None,
        method: str | None = None,
        path: str | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        self.faults.fail_next(n, status, code=code, msg=msg, method=method, path=path, retry_after_s=retry_after_s)

    def drop_after_submit_next(
        self, n: int = 1, *, mode: DropMode = "close", status: int = HTTPStatus.BAD_GATEWAY
    ) -> None:
        self.faults.drop_after_submit_next(n, mode=mode, status=status)

    def hold_after_submit_next(self, seconds: float, n: int = 1) -> None:
        self.faults.hold_after_submit_next(seconds, n)

    def set_latency(
        self, seconds: float, *, n: int | None = None, method: str | None = None, path: str | None = None
    ) -> None:
        self.faults.set_latency(seconds, n=n, method=method, path=path)

    def serve_next(self, payload: Any, *, method: str, path: str, n: int = 1, status: int = HTTPStatus.OK) -> None:
        self.faults.serve_next(payload, method=method, path=path, n=n, status=status)

    def clear_faults(self) -> None:
        self.faults.clear()

    def reset_rate_limit(self) -> None:
        self.limiter.reset()
