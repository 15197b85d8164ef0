"""Leader election for the singleton duties: a PostgreSQL advisory lock held by one process at a time.

Two real processes compete for one duty's lock: one leads, the other follows (tries and fails, and never runs the
duty) until the leader is SIGKILLed, then it takes over. In one process, a leader that stops hands over.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.store.database import Database
from engine.store.leader import LeaderLock, lock_key, run_as_leader
from tests.support.polling import wait_for

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def probe_table(db: Database) -> None:
    with db.connection() as conn:
        conn.execute("CREATE TABLE leader_probe (id serial PRIMARY KEY, pid int NOT NULL, event text NOT NULL)")


def _events(db: Database, pid: int, event: str) -> int:
    with db.connection() as conn:
        row = conn.execute("SELECT count(*) FROM leader_probe WHERE pid = %s AND event = %s", (pid, event)).fetchone()
    return int(row[0]) if row else 0


@pytest.fixture
def probes(db: Database) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def _probe(db: Database, name: str, started: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IQTS_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.leader_probe", db.url, name, "0.2"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started.append(proc)
    return proc


@pytest.mark.usefixtures("probe_table")
def test_two_processes_one_leader_and_takeover_when_it_dies(
    db: Database, unique: str, probes: list[subprocess.Popen[bytes]]
) -> None:
    name = f"duty-{unique}"
    first = _probe(db, name, probes)
    wait_for("the first process to lead", lambda: _events(db, first.pid, "lead"), processes=[first])
    second = _probe(db, name, probes)
    wait_for("five failed tries of the second", lambda: _events(db, second.pid, "follow") >= 5, processes=probes)
    assert _events(db, second.pid, "lead") == 0  # it tried, and never ran the duty while the first led
    assert _events(db, first.pid, "lead") == 1

    first.send_signal(signal.SIGKILL)  # no clean release: PostgreSQL drops the lock with the connection
    first.wait(timeout=30)
    wait_for("the second to take over", lambda: _events(db, second.pid, "lead"), processes=[second])

    second.send_signal(signal.SIGTERM)  # a clean stop: the duty is told to stop before the lock is released
    assert second.wait(timeout=30) == 0
    assert _events(db, second.pid, "resign") == 1


async def test_a_stopping_leader_hands_over_in_one_process(db: Database, unique: str) -> None:
    name = f"duty-{unique}"
    running: list[str] = []
    led: dict[str, asyncio.Event] = {"a": asyncio.Event(), "b": asyncio.Event()}
    stops = {"a": asyncio.Event(), "b": asyncio.Event()}

    def duty(who: str) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
        async def run(duty_stop: asyncio.Event) -> None:
            assert running == [], f"{who} started while {running} ran"
            running.append(who)
            led[who].set()
            await duty_stop.wait()
            running.remove(who)

        return run

    tasks = {who: asyncio.create_task(run_as_leader(db.url, name, duty(who), stops[who], retry_s=0.05)) for who in led}
    async with asyncio.timeout(30):
        await asyncio.wait([asyncio.create_task(e.wait()) for e in led.values()], return_when="FIRST_COMPLETED")
    leader = "a" if led["a"].is_set() else "b"
    other = "b" if leader == "a" else "a"
    assert running == [leader]
    stops[leader].set()
    await tasks[leader]
    async with asyncio.timeout(30):
        await led[other].wait()
    assert running == [other]
    stops[other].set()
    await tasks[other]
    assert running == []


async def test_the_lock_is_exclusive_and_keyed_by_duty(db: Database, unique: str) -> None:
    assert lock_key("risk-monitor") == lock_key("risk-monitor") != lock_key("notifier")
    one, two, elsewhere = (LeaderLock(db.url, f"d-{unique}"), LeaderLock(db.url, f"d-{unique}"),
                           LeaderLock(db.url, f"e-{unique}"))  # fmt: skip
    try:
        assert await one.acquire()
        assert not await two.acquire()
        assert await elsewhere.acquire()
        assert await one.held()
        await one.release()
        assert not await one.held()
        assert await two.acquire()
    finally:
        for lock in (one, two, elsewhere):
            await lock.release()


async def test_a_duty_that_ignores_its_stop_is_cancelled_and_the_lock_freed(db: Database, unique: str) -> None:
    name = f"duty-{unique}"
    for how in ("stop", "cancel"):
        started, ended = asyncio.Event(), asyncio.Event()

        async def stubborn(_: asyncio.Event, started: asyncio.Event = started, ended: asyncio.Event = ended) -> None:
            started.set()
            try:
                await asyncio.Event().wait()  # never looks at its stop event
            finally:
                ended.set()

        stop = asyncio.Event()
        task = asyncio.create_task(run_as_leader(db.url, name, stubborn, stop, retry_s=0.05, grace_s=0.1))
        await asyncio.wait_for(started.wait(), timeout=30)
        if how == "stop":
            stop.set()
            await asyncio.wait_for(task, timeout=30)
        else:  # the process shutting down cancels the leader itself (`iqts up` after its grace)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert ended.is_set(), how
        successor = LeaderLock(db.url, name)
        try:
            assert await successor.acquire(), how
        finally:
            await successor.release()
