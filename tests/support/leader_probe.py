"""A process that competes for a leader lock (tests of engine.store.leader with real processes).

``python -m tests.support.leader_probe URL NAME RETRY_S``: records each try (``follow``) and the start of its
leadership (``lead``) in the table ``leader_probe`` of the database at URL; stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import psycopg

from engine.store.leader import run_as_leader


async def main(url: str, name: str, retry_s: float) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    async def record(event: str) -> None:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute("INSERT INTO leader_probe (pid, event) VALUES (%s, %s)", (os.getpid(), event))

    async def attempt(acquired: bool) -> None:
        if not acquired:
            await record("follow")

    async def duty(duty_stop: asyncio.Event) -> None:
        await record("lead")
        await duty_stop.wait()
        await record("resign")

    await run_as_leader(url, name, duty, stop, retry_s=retry_s, on_attempt=attempt)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
