"""A TCP proxy that can be cut and restored: a dependency going away and coming back, without touching the server
itself (the suite's PostgreSQL and Redis are shared by every test module)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from pathlib import Path


class TcpProxy:
    """Listens on 127.0.0.1 (a fixed port once chosen) and forwards to a TCP address or a Unix socket.

    ``cut()`` closes the listener and every open connection (the server "went away"); ``restore()`` listens again
    on the same port.
    """

    def __init__(self, *, host: str | None = None, port: int | None = None, unix_path: Path | None = None) -> None:
        if unix_path is None and (host is None or port is None):
            raise ValueError("give a host and port, or a unix socket path")
        self._target_host, self._target_port, self._unix = host, port, unix_path
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread.start()

    def _run(self, coro: object, timeout: float = 10) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)  # type: ignore[arg-type]

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._unix is not None:
            return await asyncio.open_unix_connection(str(self._unix))
        assert self._target_host is not None and self._target_port is not None
        return await asyncio.open_connection(self._target_host, self._target_port)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await self._open_upstream()
        except OSError:
            client_w.close()
            return
        self._writers |= {client_w, up_w}
        try:
            await asyncio.gather(self._pipe(client_r, up_w), self._pipe(up_r, client_w))
        finally:
            self._writers -= {client_w, up_w}

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()  # a reset, as a dead server's host sends
        self._writers.clear()

    def restore(self) -> TcpProxy:
        self._run(self._start())
        return self

    def cut(self) -> None:
        self._run(self._cut())

    def close(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
