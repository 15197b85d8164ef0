"""Wait for a condition on real state (a database row, a log line) with a timeout: never a bare sleep."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    what: str,
    condition: Callable[[], T],
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
