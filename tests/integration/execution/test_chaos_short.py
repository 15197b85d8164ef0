"""The short chaos table (issue 11, item 6, in-process part): for each fault, N approvals made around it all end
executed exactly once or expired with a reason; zero lost, zero duplicated. Real PostgreSQL and Redis, the real
worker and paper venue in this process (the real-process kills are in test_worker_crash.py)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis

from approvals import service as approvals
from approvals.service import Requester
from engine.bus import Bus, InProcessBus
from engine.bus.redis_streams import RedisStreamsBus
from engine.execution.broker import ApprovedOrder, VenueOrder, client_order_id_for
from engine.execution.paper import PaperBroker
from engine.execution.router import Router
from engine.execution.worker import ExecutionWorker, build_order_manager
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database
from engine.telemetry import get_logger
from tests.support.orders import approve_market_buy, paper_venue
from tests.support.polling import eventually
from tests.support.tcp_proxy import TcpProxy

log = get_logger(__name__)
TRADER = Requester(user="tom-trader", kind="mcp", session="chaos")
N = 2  # five faults x N orders stay under the default policy's 10 orders a minute
TABLE: list[tuple[str, int, int, int, int, int, int]] = []


class CountingPaper(PaperBroker):
    """The paper venue, counting what reaches it per client order id (a double would show as 2)."""

    sent: Counter[str]

    async def submit(self, order: ApprovedOrder) -> VenueOrder:
        self.sent[order.client_order_id] += 1
        return await super().submit(order)


def _venue() -> CountingPaper:
    broker = paper_venue(CountingPaper, cash=Decimal(10_000_000))
    assert isinstance(broker, CountingPaper)
    broker.sent = Counter()
    return broker


async def _settle(db: Database, ids: list[str], timeout: float = 60) -> dict[str, str]:
    def states() -> dict[str, str]:
        return {i: approvals.get_request(db, i).status for i in ids}

    def settled() -> dict[str, str] | None:
        now = states()
        return now if all(s in ("executed", "expired", "failed") for s in now.values()) else None

    try:
        return await eventually("every approval to settle", settled, timeout=timeout, interval=0.1)
    except AssertionError:
        return states()  # the table reports what is stuck


Fault = Callable[[Runtime, Settings, Database, str], Awaitable[tuple[list[str], set[str], Bus]]]


async def _lost_bus(api: Runtime, settings: Settings, db: Database, redis_url: str) -> tuple[list[str], set[str], Bus]:
    return (
        [await approve_market_buy(api, TRADER) for _ in range(N)],
        set(),
        InProcessBus(),
    )  # the worker's bus is a fresh one


async def _redis_down(
    api: Runtime, settings: Settings, db: Database, redis_url: str
) -> tuple[list[str], set[str], Bus]:
    target = urlsplit(redis_url)
    proxy = TcpProxy(host=target.hostname or "127.0.0.1", port=target.port or 6379)  # not listening: Redis away
    down = Runtime(settings=settings, db=db, bus=RedisStreamsBus(f"redis://127.0.0.1:{proxy.port}/0", prefix="chaos:"))
    ids = [await approve_market_buy(down, TRADER) for _ in range(N)]
    await down.bus.close()
    proxy.close()
    return ids, set(), RedisStreamsBus(redis_url, prefix="chaos:")


async def _redis_emptied(
    api: Runtime, settings: Settings, db: Database, redis_url: str
) -> tuple[list[str], set[str], Bus]:
    bus = RedisStreamsBus(redis_url, prefix="chaos-empty:")
    ids = [await approve_market_buy(Runtime(settings=settings, db=db, bus=bus), TRADER) for _ in range(N)]
    raw = aioredis.Redis.from_url(redis_url)
    keys = [k async for k in raw.scan_iter(match="chaos-empty:*")]
    if keys:
        await raw.delete(*keys)  # Redis restarted without persistence
    await raw.aclose()
    return ids, set(), bus


async def _poison(api: Runtime, settings: Settings, db: Database, redis_url: str) -> tuple[list[str], set[str], Bus]:
    raw = aioredis.Redis.from_url(redis_url, decode_responses=True)
    for junk in ("null", "[1]", "{not json", '{"approval_id": null}'):
        await raw.xadd("chaos-poison:orders.approved", {"p": junk})
    await raw.aclose()
    bus = RedisStreamsBus(redis_url, prefix="chaos-poison:")
    return [await approve_market_buy(Runtime(settings=settings, db=db, bus=bus), TRADER) for _ in range(N)], set(), bus


async def _expired(api: Runtime, settings: Settings, db: Database, redis_url: str) -> tuple[list[str], set[str], Bus]:
    ids = [await approve_market_buy(api, TRADER) for _ in range(N)]
    ran_out = set(ids[: N // 2])  # their approval runs out while the worker is down
    with db.connection() as conn:
        for approval_id in ran_out:
            conn.execute("UPDATE approval_requests SET expires_at = %s WHERE id = %s",
                         (datetime.now(UTC) - timedelta(seconds=1), approval_id))  # fmt: skip
    return ids, ran_out, InProcessBus()


FAULTS: dict[str, Fault] = {
    "in-process bus lost in a crash": _lost_bus,
    "Redis down during approval": _redis_down,
    "Redis restarted without persistence": _redis_emptied,
    "poison messages ahead": _poison,
    "approval expired while the worker was down": _expired,
}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_no_approval_is_lost_or_doubled(
    fault: str, settings: Settings, db: Database, sample_loaded: None, redis_url: str
) -> None:
    fast = settings.model_copy(update={"bus_block_ms": 50, "bus_reclaim_idle_ms": 200, "execution_sweep_s": 0.2})
    api = Runtime(settings=fast, db=db, bus=InProcessBus())
    ids, should_expire, bus = await FAULTS[fault](api, fast, db, redis_url)
    venue = _venue()
    runtime = Runtime(settings=fast, db=db, bus=bus)
    worker = ExecutionWorker(runtime, build_order_manager(runtime, Router({"paper": venue})), name=f"chaos-{fault}")
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        states = await _settle(db, ids)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await bus.close()
    executed = [i for i in ids if states[i] == "executed"]
    expired = [i for i in ids if states[i] == "expired"]
    duplicated = sum(1 for i in ids if venue.sent[client_order_id_for(i)] > 1)
    lost = len(ids) - len(executed) - len(expired)
    TABLE.append((fault, 1, len(ids), len(executed), len(expired), lost, duplicated))
    log.info("chaos.row", fault=fault, approvals=len(ids), executed=len(executed), expired=len(expired), lost=lost,
             duplicated=duplicated)  # fmt: skip
    assert lost == 0 and duplicated == 0, {i: approvals.get_request(db, i).result for i in ids}
    assert set(expired) == should_expire
    for approval_id in expired:
        result = approvals.get_request(db, approval_id).result
        assert result is not None and "expired" in result["reason"]
    assert all(venue.sent[client_order_id_for(i)] == 1 for i in executed)
    assert all(venue.sent[client_order_id_for(i)] == 0 for i in expired)


def test_print_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    header = ["fault", "runs", "approvals", "executed", "expired", "lost", "duplicated"]
    rows = [header, *([str(c) for c in row] for row in TABLE)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    with capsys.disabled():
        print()  # noqa: T201 - the table is the point of this test
        for row in rows:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))  # noqa: T201
    assert sum(int(r[5]) + int(r[6]) for r in rows[1:]) == 0
