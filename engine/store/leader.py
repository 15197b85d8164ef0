"""Leader election for singleton duties: one session-level PostgreSQL advisory lock per duty.

A duty that must run exactly once in a deployment (the risk monitor, the approval expiry, the notifier) runs
inside :func:`run_as_leader`: the process that holds the duty's lock (``pg_try_advisory_lock`` on a connection of
its own) runs it; every other replica is a follower that tries again every ``retry_s`` seconds. The lock belongs
to the connection, so a leader that dies (a crash, SIGKILL, a lost network) loses it as soon as PostgreSQL sees
the connection close, and a follower takes over on its next try. The leader checks its connection every
``retry_s`` seconds and stops the duty when it is gone, so two leaders overlap for at most that long (the
duties themselves serialise their writes with transaction locks, so an overlap never double-writes).

Who leads is visible in PostgreSQL: each lock connection's ``application_name`` is ``iqts-leader:<duty>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final

import psycopg

from engine.telemetry import get_logger

log = get_logger(__name__)

NAMESPACE: Final = "iqts.leader:"
APPLICATION_PREFIX: Final = "iqts-leader:"

Duty = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
"""A singleton duty: runs until the event it is given is set."""


def lock_key(name: str) -> int:
    """The advisory lock key (a signed 64-bit integer) of the duty ``name``; stable across processes."""
    digest = hashlib.sha256((NAMESPACE + name).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class LeaderLock:
    """The advisory lock of one duty, held on a dedicated connection (never a pooled one)."""

    def __init__(self, url: str, name: str, *, connect_timeout_s: float = 5.0) -> None:
        self.url = url
        self.name = name
        self.key = lock_key(name)
        self._timeout = max(1, int(connect_timeout_s))
        self._conn: psycopg.AsyncConnection[tuple[object, ...]] | None = None

    async def _connection(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self.url,
                autocommit=True,
                connect_timeout=self._timeout,
                application_name=APPLICATION_PREFIX + self.name,
                keepalives=1,
                keepalives_idle=10,
                keepalives_interval=5,
                keepalives_count=3,
            )
        return self._conn

    async def acquire(self) -> bool:
        """Try to take the lock without waiting; False when another session holds it or the database is away."""
        try:
            conn = await self._connection()
            row = await (await conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,))).fetchone()
        except psycopg.Error as error:
            log.warning("leader.unreachable", duty=self.name, error=type(error).__name__)
            await self.close()
            return False
        return bool(row and row[0])

    async def held(self) -> bool:
        """Whether the lock's connection is still alive (the lock lives exactly as long as it)."""
        if self._conn is None or self._conn.closed:
            return False
        try:
            await self._conn.execute("SELECT 1")
        except psycopg.Error:
            await self.close()
            return False
        return True

    async def release(self) -> None:
        """Give the lock back (closing the connection releases it too)."""
        if self._conn is not None and not self._conn.closed:
            with contextlib.suppress(psycopg.Error):
                await self._conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        await self.close()

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                await self._conn.close()
            self._conn = None


async def _first(stop: asyncio.Event, task: asyncio.Task[None] | None, timeout: float) -> None:
    """Wait until ``stop`` is set, ``task`` ends, or ``timeout`` passes."""
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({waiter} | ({task} if task else set()), timeout=timeout, return_when="FIRST_COMPLETED")
    finally:
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter


async def _lead(lock: LeaderLock, duty: Duty, stop: asyncio.Event, retry_s: float, grace_s: float) -> None:
    duty_stop = asyncio.Event()
    task = asyncio.create_task(duty(duty_stop), name=f"leader:{lock.name}")
    try:
        while not stop.is_set() and not task.done():
            await _first(stop, task, retry_s)
            if stop.is_set() or task.done():
                break
            if not await lock.held():
                log.warning("leader.lost", duty=lock.name)
                break
    finally:
        duty_stop.set()
        try:
            await asyncio.wait({task}, timeout=grace_s)
        finally:  # also when this process is being cancelled: the duty never outlives its lock
            if not task.done():
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            if not task.cancelled() and task.exception() is not None:
                log.error("leader.duty_failed", duty=lock.name, error=repr(task.exception()))
            await lock.release()  # only once the duty has stopped, so a successor never overlaps with it here


async def run_as_leader(
    url: str,
    name: str,
    duty: Duty,
    stop: asyncio.Event,
    *,
    retry_s: float = 5.0,
    grace_s: float = 5.0,
    on_attempt: Callable[[bool], Awaitable[None]] | None = None,
) -> None:
    """Run ``duty`` while this process holds the lock of ``name``; follow (and keep trying) otherwise.

    Returns when ``stop`` is set, after the duty (if leading) has stopped (``grace_s``, then it is cancelled) and
    the lock is released. ``on_attempt(acquired)`` is told the outcome of every try.
    """
    lock = LeaderLock(url, name)
    following = False
    try:
        while not stop.is_set():
            acquired = await lock.acquire()
            if on_attempt is not None:
                await on_attempt(acquired)
            if not acquired:
                if not following:
                    log.info("leader.following", duty=name, retry_s=retry_s)
                    following = True
                await _first(stop, None, retry_s)
                continue
            following = False
            log.info("leader.acquired", duty=name)
            await _lead(lock, duty, stop, retry_s, grace_s)
            if not stop.is_set():
                await _first(stop, None, retry_s)  # a duty that ended or a lost lock: let another replica try
    finally:
        await lock.release()
