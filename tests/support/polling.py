"""Wait for a condition on real state (a database row, a log line) with a timeout: never a bare sleep."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, overload

T = TypeVar("T")


def wait_for(
    what: str,
    condition: Callable[[], T | None],
    *,
    timeout: float = 60.0,
    interval: float = 0.1,
    processes: Sequence[subprocess.Popen[bytes]] = (),
) -> T:
    """Return ``condition()``'s first truthy value; fail naming ``what`` after ``timeout`` seconds, or as soon as
    one of ``processes`` (that should keep running) has exited."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        for proc in processes:
            if proc.poll() is not None:
                raise AssertionError(f"a process exited (code {proc.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@overload
async def eventually(
    what: str, condition: Callable[[], Awaitable[T | None]], *, timeout: float = ..., interval: float = ...
) -> T: ...
@overload
async def eventually(
    what: str, condition: Callable[[], T | None], *, timeout: float = ..., interval: float = ...
) -> T: ...
async def eventually(what: str, condition: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.05) -> Any:
    """``wait_for`` for async tests: ``condition`` (plain or async) is read again until truthy; the loop yields to
    the event loop between reads, so the work being waited for runs meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        read = condition()
        value = await read if inspect.isawaitable(read) else read
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)
