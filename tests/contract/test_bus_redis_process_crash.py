"""The crash case with a real process: a worker process is SIGKILLed before it acks."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap

from engine.bus.consumer import process_once
from engine.bus.protocol import Message
from engine.bus.redis_streams import RedisStreamsBus

WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from engine.bus.redis_streams import RedisStreamsBus

    async def main(url, prefix):
        bus = RedisStreamsBus(url, prefix=prefix)
        batch = await bus.read("jobs", "workers", "victim", count=5, block_ms=2000)
        await bus.ack("jobs", "workers", batch[0].id)   # finishes one message
        sys.stdout.write("ready\\n"); sys.stdout.flush()
        await asyncio.sleep(3600)                         # killed here, 4 messages unacked

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_killed_worker_process_loses_nothing(redis_url: str, unique: str) -> None:
    prefix = f"test:{unique}:"
    bus = RedisStreamsBus(redis_url, prefix=prefix)
    await bus.ensure_group("jobs", "workers")
    for n in range(8):
        await bus.publish("jobs", {"n": n})
    proc = subprocess.Popen([sys.executable, "-c", WORKER, redis_url, prefix], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = await asyncio.to_thread(proc.stdout.readline)
    assert line.strip() == "ready"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert await bus.pending("jobs", "workers") == 4

    seen: list[int] = []

    async def handle(message: Message) -> None:
        seen.append(message.payload["n"])

    await asyncio.sleep(0.05)
    while await process_once(bus, "jobs", "workers", "heir", handle, block_ms=50, reclaim_idle_ms=20):
        pass
    assert sorted(seen) == list(range(1, 8))
    assert await bus.pending("jobs", "workers") == 0
    await bus.close()
