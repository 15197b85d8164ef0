"""The chaos table with real processes (issue 11, items 6 and 7): for each fault, the approvals made around it all
end executed exactly once at the venue or expired with a reason; zero lost, zero duplicated, zero stuck.

`iqts worker` and `iqts api` run as processes on a Redis of the test's own and the real ccxt binance client against
the loopback exchange. A process dies by SIGKILL at a named step (``IQTS_CHAOS_KILL_AT``, engine/chaos.py) or, for
a request in flight, by the test's own signal while the venue's request log shows the POST unanswered.

The default suite runs the short version (one worker killed after the venue answered, then Redis restarted empty
under the restarted worker); ``make test-all`` runs every fault (``-m slow``). Both print the table.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from approvals import service as approvals
from engine.bus import InProcessBus
from engine.execution.worker import APPROVED_TOPIC
from engine.portfolio.service import portfolio_snapshot
from engine.risk.monitor import breakers
from engine.settings import Settings, load_settings
from engine.store.database import Database, connect
from engine.store.embedded import EmbeddedPostgres
from engine.store.migrate import upgrade
from tests.chaos.harness import ORDER_PATH, PRICE, SYMBOL, TRADER, OwnRedis, Row, Stack, make_stack, print_table
from tests.support.poison import POISON

TABLE: list[Row] = []
N = 3  # approvals per fault in the long table


@pytest.fixture
async def stack(
    settings: Settings, db: Database, unique: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Stack]:
    persistent = bool(getattr(request, "param", False))
    redis = OwnRedis(tmp_path / "redis", persistent=persistent).start()
    running = await make_stack(settings, db, redis, unique, tmp_path)
    try:
        yield running
    finally:
        running.stop_all()
        running.exchange.stop()
        redis.stop(kill=True)


def _holder(stack: Stack, approval_id: str) -> subprocess.Popen[bytes] | None:
    """The worker process whose lease the approval's order carries."""
    with stack.db.connection() as conn:
        row = conn.execute("SELECT lease_owner FROM orders WHERE approval_id = %s", (approval_id,)).fetchone()
    if row is None or row[0] is None:
        return None
    return next((p for p in stack.procs if row[0] == f"{socket.gethostname()}-{p.pid}"), None)


# -- the short version (default suite) -------------------------------------------------------------------------
async def test_short_table_worker_killed_after_the_venue_answered_then_redis_restarted_empty(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = stack.start_worker(kill_at="order.venue_answered")
    await stack.worker_ready(victim)
    ids = [await stack.approve(), await stack.approve()]
    await stack.killed(victim)  # the venue took the first order; the database never heard its answer
    heir = stack.start_worker()
    await stack.worker_ready(heir)
    rows = [await stack.row("worker SIGKILL after the venue answered (1 worker)", ids)]
    assert stack.posts(ids[0]) == 1, "the heir sent the answered order again"  # it found it at the venue instead

    before = await stack.approve()
    await stack.row("-", [before])
    stack.redis.restart()  # no persistence: streams and consumer groups are gone under a running worker
    after = [await stack.approve(), await stack.approve()]
    rows.append(await stack.row("Redis restarted without persistence (worker running)", [before, *after]))
    assert heir.poll() is None
    print_table(rows, capsys)


# -- the long version (make test-all) --------------------------------------------------------------------------
KILL_POINTS = ["order.recorded_new", "post in flight", "order.venue_answered", "order.recorded"]


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("point", KILL_POINTS)
async def test_worker_sigkill_at_each_step(stack: Stack, point: str, workers: int) -> None:
    in_flight = point == "post in flight"
    victim = stack.start_worker(kill_at=None if in_flight else point)
    standby = stack.start_worker() if workers == 2 else None
    await asyncio.gather(*(stack.worker_ready(p) for p in stack.running))
    if in_flight:
        stack.exchange.set_latency(1.5, n=1, method="POST", path=ORDER_PATH)  # the first send takes its time
    ids: list[str] = []
    while victim.poll() is None:  # with a standby, the bus may hand the first orders to it: go on until it died
        assert len(ids) < 8, f"the armed worker never took an order\n{stack.tails()}"
        approval_id = await stack.approve()
        ids.append(approval_id)
        if in_flight:

            def sending(approval_id: str = approval_id) -> subprocess.Popen[bytes] | None:
                return _holder(stack, approval_id) if stack.posts(approval_id) else None

            victim = await stack.until("the first send to be in flight", sending, 30)
            stack.kill(victim)
            break

        def died_or_done(approval_id: str = approval_id, armed: subprocess.Popen[bytes] = victim) -> bool:
            return armed.poll() is not None or stack.statuses([approval_id])[approval_id] == "executed"

        await stack.until("the armed worker to die or the order to settle", died_or_done, 60)
    assert victim.poll() is not None, "the fault never happened"
    ids += [await stack.approve() for _ in range(max(0, N - len(ids)))]
    if standby is None or standby.poll() is not None:
        heir = stack.start_worker()
        await stack.worker_ready(heir)
    TABLE.append(await stack.row(f"worker SIGKILL at {point} ({workers} worker{'s' * (workers - 1)})", ids))
    assert all(stack.posts(i) <= 2 for i in ids)  # a resend only after a provably empty lookup


API_POINTS = ["approval.proposed", "relay.published", "approval.decided"]


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("point", API_POINTS)
async def test_api_sigkill_at_each_step(stack: Stack, point: str, workers: int) -> None:
    pool = [stack.start_worker() for _ in range(workers)]
    api = stack.start_api(kill_at=point)
    await asyncio.gather(*(stack.worker_ready(w) for w in pool), stack.api_ready(api))
    ids: list[str] = []
    if point == "approval.decided":
        ids = [str((await stack.propose_over_mcp())["approval_id"]) for _ in range(N)]
        await stack.dies_during(stack.approve_over_http(ids[0]), api)
    else:
        await stack.dies_during(stack.propose_over_mcp(), api)
        ids = await stack.until("the proposal to be recorded", stack.pending_of_account, 30)
    heir = stack.start_api()
    await stack.api_ready(heir)
    while len(ids) < N:
        ids.append(str((await stack.propose_over_mcp())["approval_id"]))
    for approval_id in ids:
        if approvals.get_request(stack.db, approval_id).status == "pending":
            answer = await stack.approve_over_http(approval_id)
            assert answer.status_code == 200, answer.text
    TABLE.append(await stack.row(f"API SIGKILL at {point} ({workers} worker{'s' * (workers - 1)})", ids))


@pytest.mark.slow
@pytest.mark.parametrize("stack", [True, False], ids=["appendonly", "no-persistence"], indirect=True)
async def test_redis_restarted(stack: Stack) -> None:
    first = stack.start_worker()
    await stack.worker_ready(first)
    ids = [await stack.approve()]
    await stack.row("-", ids)
    stack.kill(first)
    ids.append(await stack.approve())  # queued on the stream while no worker runs
    stack.redis.restart()
    heir = stack.start_worker()
    await stack.worker_ready(heir)
    ids.append(await stack.approve())
    stack.redis.restart()  # and again under the running worker
    ids.append(await stack.approve())
    kind = "with appendonly" if stack.redis.persistent else "without persistence"
    TABLE.append(await stack.row(f"Redis restarted {kind}", ids))


@pytest.mark.slow
async def test_redis_down_during_approval(stack: Stack) -> None:
    worker = stack.start_worker()
    api = stack.start_api()
    await asyncio.gather(stack.worker_ready(worker), stack.api_ready(api))
    stack.redis.stop(kill=True)
    ids = []
    for _ in range(N):
        proposed = await stack.propose_over_mcp()  # the proposal commits; its announcement waits in the outbox
        answer = await stack.approve_over_http(str(proposed["approval_id"]))
        assert answer.status_code == 200, answer.text  # committed with its execution request
        ids.append(str(proposed["approval_id"]))
    stack.redis.start()
    TABLE.append(await stack.row("Redis down during approval", ids))
    assert worker.poll() is None and api.poll() is None


@pytest.mark.slow
async def test_poison_messages_of_each_kind_ahead_of_real_approvals(stack: Stack) -> None:
    raw = aioredis.Redis.from_url(stack.redis.url, decode_responses=True)
    try:
        for fields in POISON.values():
            await raw.xadd(f"iqts:{APPROVED_TOPIC}", fields)  # type: ignore[arg-type]
        worker = stack.start_worker()
        await stack.worker_ready(worker)
        ids = [await stack.approve() for _ in range(N)]
        TABLE.append(await stack.row(f"poison messages ahead ({len(POISON)} kinds)", ids))
        dead = await raw.xlen(f"iqts:{APPROVED_TOPIC}.dead")
    finally:
        await raw.aclose()
    assert dead == len(POISON)
    assert worker.poll() is None


@pytest.mark.slow
async def test_an_approval_never_executes_after_its_expiry_even_with_the_worker_down(stack: Stack) -> None:
    first = stack.start_worker()
    await stack.worker_ready(first)
    stack.kill(first)
    short = stack.settings.model_copy(update={"approval_ttl_s": 2})  # below the setting's minimum: test-only
    ran_out = [await stack.approve(settings=short) for _ in range(N)]
    latest = max(approvals.get_request(stack.db, i).expires_at for i in ran_out)
    await stack.until("the approvals to run out", lambda: datetime.now(UTC) > latest + timedelta(seconds=0.5), 30)
    heir = stack.start_worker()
    await stack.worker_ready(heir)
    fresh = await stack.approve()
    TABLE.append(await stack.row("approvals expired while the worker was down", [*ran_out, fresh],
                                 may_expire=set(ran_out)))  # fmt: skip
    assert all(stack.posts(i) == 0 for i in ran_out)
    assert approvals.get_request(stack.db, fresh).status == "executed"


def _lose(stack: Stack, carrier: str) -> None:
    """A fill at twice the market price: the account is down by about the price at once (a crash, condensed)."""
    with stack.db.connection() as conn:
        row = conn.execute(
            "INSERT INTO orders (approval_id, client_order_id, account, venue, symbol, side, type, quantity, mode, "
            "status, filled_quantity, average_price) VALUES (%s, %s, %s, 'ccxt', %s, 'buy', 'market', 1, 'sandbox', "
            "'filled', 1, %s) RETURNING id",
            (carrier, f"loss-{carrier}", stack.account, SYMBOL, PRICE * 2),
        ).fetchone()
        assert row is not None
        conn.execute(
            "INSERT INTO fills (order_id, fill_key, account, symbol, side, quantity, price, fee, fee_currency, "
            "liquidity, ts) VALUES (%s, 'f1', %s, %s, 'buy', 1, %s, 0, 'USDT', 'taker', %s)",
            (row[0], stack.account, SYMBOL, Decimal(PRICE * 2), datetime.now(UTC)),
        )


@pytest.mark.slow
async def test_a_breaker_trips_after_a_restart_and_stays_enforced_through_the_next(stack: Stack) -> None:
    first = stack.start_worker()
    await stack.worker_ready(first)
    executed = await stack.approve()
    await stack.row("-", [executed])
    stack.kill(first)  # it led the risk monitor: the lock goes with its session
    heir = stack.start_worker()
    await stack.worker_ready(heir)
    portfolio_snapshot(stack.db, stack.settings)  # the day-start and peak marks at the current price
    carrier = await approvals.propose_simple(stack.db, InProcessBus(), stack.settings, "strategy_deployment",
                                             {"strategy": "chaos-loss"}, TRADER)  # fmt: skip
    _lose(stack, carrier.id)
    trips = await stack.until(
        "the restarted worker's monitor to trip a breaker",
        lambda: [t for t in breakers(stack.db) if t.account == stack.account],
        60,
        [heir],
    )
    stack.kill(heir)
    last = stack.start_worker()
    await stack.worker_ready(last)
    await stack.until("the last worker's monitor to hold the breaker", lambda: [
        t for t in breakers(stack.db) if t.account == stack.account], 60, [last])  # fmt: skip
    refused = await approvals.propose_order(stack.db, InProcessBus(), stack.settings, stack.intent(), TRADER, "chaos")
    assert refused.status != "pending", refused.status  # refused at proposal: risk check #1 sees the breaker
    assert "circuit breaker tripped" in (refused.decision_reason or ""), refused.decision_reason
    assert trips and stack.posts(refused.id) == 0


# -- PostgreSQL restarted: a server of this test's own, so no other module notices ---------------------------
@pytest.fixture
def own_pg(tmp_path: Path, settings: Settings) -> Iterator[tuple[EmbeddedPostgres, Settings, Database]]:
    state = tmp_path / "pgstate"
    server = EmbeddedPostgres(state)
    server.start()
    server.ensure_database("chaos")
    own = load_settings(state_dir=state, db_name="chaos")
    database = connect(own)
    upgrade(database)
    try:
        yield server, own, database
    finally:
        database.close()
        server.stop()
        home = server.layout.data_dir.parent
        shutil.rmtree(home, ignore_errors=True)
        (state / "postgres").unlink(missing_ok=True)


@pytest.mark.slow
async def test_postgres_restarted(own_pg: tuple[EmbeddedPostgres, Settings, Database], unique: str,
                                  tmp_path: Path) -> None:  # fmt: skip
    server, settings, db = own_pg
    redis = OwnRedis(tmp_path / "redis", persistent=False).start()
    stack = await make_stack(settings, db, redis, unique, tmp_path)
    try:
        worker = stack.start_worker()
        await stack.worker_ready(worker)
        ids = [await stack.approve()]
        await stack.row("-", ids)
        stack.exchange.set_latency(2.0, n=1, method="POST", path=ORDER_PATH)
        ids.append(await stack.approve())
        await stack.until("the send to be in flight", lambda: stack.posts(ids[-1]), 30, [worker])
        server.stop()  # the venue answers while the database is away
        await asyncio.to_thread(server.start)
        ids += [await stack.approve() for _ in range(N - 1)]
        TABLE.append(await stack.row("PostgreSQL restarted (a send in flight)", ids))
        assert worker.poll() is None
    finally:
        stack.stop_all()
        stack.exchange.stop()
        redis.stop(kill=True)


@pytest.mark.slow
def test_print_the_long_table(capsys: pytest.CaptureFixture[str]) -> None:
    print_table(TABLE, capsys)
    assert sum(r.lost + r.duplicated for r in TABLE) == 0
