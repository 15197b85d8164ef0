"""Execution benchmark: paper venue throughput, and approved-order-to-fill latency on both buses.

* ``paper market``: market orders submitted straight to a ``PaperBroker`` priced at the last real BTC/USD bar of the
  bundled sample. Each order is sealed with ``engine.execution.broker._release`` (the bench stands in for the
  approval gate here, which the end-to-end rows measure); orders/s and per-order p50/p95.
* ``paper limit fills``: limit orders resting on the paper book, then one bar that crosses them all: fills/s.
* ``approved -> fill``: an order is proposed (risk check #1, not timed), then timed from the approver's decision to
  the fill committed in the database: ``decide`` -> ``orders.approved`` on the bus -> ``ExecutionWorker`` -> gate ->
  risk check #2 -> order row -> paper venue -> fill, order events and audit rows committed (the OMS's update hook
  fires right after that commit). One order at a time, on the in-process bus and on Redis Streams
  (``IQTS_TEST_REDIS_URL``; skipped with a note if unset), the buses taking turns (a fresh worker per turn, a
  short untimed warm-up each) so that the machine's load drifts over both alike. The worker runs in the bench's
  process and event loop, so the Redis rows add exactly the bus's network round trips. The ratio column compares
  each bus with in-process.
* ``bus hop``: publish -> a consumer blocked in its read holds the message, alone (500 messages per bus): the bus's
  own share of the end-to-end figure.
* ``kill switch``: 20 limit orders resting at the paper venue, then ``engage``: the seconds until the worker has
  cancelled them all; the ratio is against the promise of one second (below 1 keeps it).

Everything runs against a throwaway database ``iqts_bench`` on the embedded server (created fresh, dropped after);
with ``IQTS_DATABASE_URL`` set the end-to-end rows are skipped rather than writing orders into that database.
Run: ``uv run python -m bench.execution_bench [--json] [--orders N] [--paper-orders N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from decimal import Decimal
from typing import Final

import psycopg
from psycopg import sql
from pydantic import BaseModel

from approvals.service import Requester, decide, propose_order
from approvals.users import Role, User
from engine.bus import Bus, InProcessBus
from engine.data.sample import load_sample_series
from engine.data.store import BarStore, make_key
from engine.execution.broker import VenueOrder, _release
from engine.execution.models import OrderIntent, OrderStatus
from engine.execution.oms import OrderRecord
from engine.execution.paper import ManualPriceFeed, PaperBroker, PaperBrokerConfig, PriceBar
from engine.execution.worker import ExecutionWorker, build_order_manager
from engine.risk.killswitch import engage
from engine.risk.store import save_and_activate
from engine.runtime import Runtime
from engine.settings import AccountSettings, Settings, load_settings
from engine.store.database import Database, connect
from engine.store.embedded import EmbeddedPostgres
from engine.store.migrate import upgrade
from engine.telemetry import configure_logging

BENCH_DB: Final = "iqts_bench"
ACCOUNT: Final = "bench"
SYMBOL: Final = "BTC/USD"
QUANTITY: Final = Decimal("0.01")
REDIS_ENV: Final = "IQTS_TEST_REDIS_URL"
HOPS: Final = 500
KILL_SWITCH_TARGET_S: Final = 1.0  # the kill-switch rows' ratio is against this promise (all open orders cancelled)
APPROVER: Final = User(id=-1, username="bench-approver", role=Role.APPROVER)
REQUESTER: Final = Requester(user="bench-trader", kind="cli", session="bench")

POLICY_YAML: Final = """
version: 1
description: execution bench (wide limits so that a hundred orders a minute pass)
defaults:
  allowed_modes: [dry-run]
  allowed_symbols: [BTC/USD]
  allowed_order_types: [market, limit]
  min_order_notional: 1
  max_order_notional: 100000
  max_position_notional: 100000000
  allow_short: false
  max_open_positions: 4
  max_gross_exposure: 100000000
  max_leverage: 1
  max_orders_per_minute: 100000
accounts: {}
"""


class ExecutionBenchRow(BaseModel):
    workload: str
    bus: str
    n: int
    p50_ms: float
    p95_ms: float
    per_s: float  # orders (or fills) per second over the whole run (end to end: proposals included, one at a time)
    ratio: float  # p50 against the reference of its group (paper: itself; end to end: the in-process bus)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def _last_real_bar() -> PriceBar:
    """The newest BTC/USD day of the bundled sample (real prices)."""
    series = next(s for s in load_sample_series() if s.symbol == SYMBOL and s.timeframe == "1d")
    row = series.frame.iloc[-1]
    values = [Decimal(repr(float(row[c]))) for c in ("open", "high", "low", "close", "volume")]
    return PriceBar.of([int(row["ts"]), *values])


def _intent(**changes: object) -> OrderIntent:
    values: dict[str, object] = {"account": ACCOUNT, "symbol": SYMBOL, "side": "buy", "type": "market",
                                 "quantity": QUANTITY}  # fmt: skip
    return OrderIntent.model_validate(values | changes)


# -- the paper venue alone --------------------------------------------------------------------------------------
async def _paper_rows(n: int) -> list[ExecutionBenchRow]:
    bar = _last_real_bar()
    feed = ManualPriceFeed()
    feed.push(SYMBOL, bar)
    config = PaperBrokerConfig(name=ACCOUNT, initial_balances={"USD": Decimal(10) ** 12, "BTC": Decimal(10) ** 6})
    broker = PaperBroker(config, feed)
    orders = [_release(_intent(), f"bench-market-{i}") for i in range(n)]
    times: list[float] = []
    started = time.perf_counter()
    for order in orders:
        t = time.perf_counter()
        venue = await broker.submit(order)
        times.append(time.perf_counter() - t)
        assert venue.status is OrderStatus.FILLED
    market_total = time.perf_counter() - started

    below = bar.close * Decimal("0.99")
    resting = [_release(_intent(type="limit", price=below), f"bench-limit-{i}") for i in range(n)]
    for order in resting:
        venue = await broker.submit(order)
        assert venue.status is OrderStatus.SUBMITTED
    crossing = PriceBar(bar.ts_ms + 86_400_000, bar.close, bar.close, below * Decimal("0.99"), below, bar.volume * n)
    t = time.perf_counter()
    filled = await broker.on_bar(SYMBOL, crossing)
    match_total = time.perf_counter() - t
    assert sum(1 for v in filled if v.status is OrderStatus.FILLED) == n
    ms = 1000.0
    return [
        ExecutionBenchRow(workload="paper market", bus="-", n=n, p50_ms=_percentile(times, 0.5) * ms,
                          p95_ms=_percentile(times, 0.95) * ms, per_s=n / market_total, ratio=1.0),
        ExecutionBenchRow(workload="paper limit fills (one bar)", bus="-", n=n, p50_ms=match_total / n * ms,
                          p95_ms=match_total / n * ms, per_s=n / match_total, ratio=1.0),
    ]  # fmt: skip


# -- approved order to fill through the worker ------------------------------------------------------------------
class _Unavailable(Exception):
    """This part of the bench cannot run here (the reason is printed)."""


def _fresh_database() -> tuple[Settings, Database, EmbeddedPostgres]:
    base = load_settings(db_name=BENCH_DB)
    if base.database_url is not None:
        raise _Unavailable("IQTS_DATABASE_URL is set: end-to-end rows need the embedded server's throwaway database")
    settings = base.model_copy(
        update={
            "mode": "dry-run",
            "accounts": [AccountSettings(name=ACCOUNT, initial_cash={"USD": Decimal(10) ** 9})],
            "four_eyes": False,
            "execution_poll_s": 3600.0,  # the follow-up loop (marks, paper bars) stays out of the timings
            "redis_url": None,
        }
    )
    embedded = EmbeddedPostgres(settings.state_dir, start_timeout_s=settings.embedded_pg_start_timeout_s)
    embedded.start()
    _drop(embedded)
    db = connect(settings)
    upgrade(db)
    series = next(s for s in load_sample_series() if s.symbol == SYMBOL and s.timeframe == "1d")
    BarStore(db).upsert_bars(make_key(series.exchange, series.symbol, series.timeframe), series.frame)
    save_and_activate(db, POLICY_YAML, "bench")
    return settings, db, embedded


def _drop(embedded: EmbeddedPostgres) -> None:
    with psycopg.connect(embedded.layout.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(BENCH_DB)))


async def _end_to_end(settings: Settings, db: Database, bus: Bus, n: int, warmup: int) -> tuple[list[float], float]:
    runtime = Runtime(settings=settings, db=db, bus=bus)
    manager = build_order_manager(runtime)
    filled_at: dict[str, float] = {}
    waiting: dict[str, asyncio.Event] = {}
    forward = manager.on_update

    def on_update(record: OrderRecord, venue: VenueOrder | None, latency: float | None) -> None:
        if forward is not None:
            forward(record, venue, latency)
        if record.status is OrderStatus.FILLED and record.approval_id in waiting:
            filled_at[record.approval_id] = time.perf_counter()  # the fill's transaction has just committed
            waiting[record.approval_id].set()

    manager.on_update = on_update
    worker = ExecutionWorker(runtime, manager, name="bench-worker")
    await worker.startup()
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    latencies: list[float] = []
    started = time.perf_counter()
    try:
        for i in range(warmup + n):
            if i == warmup:
                started = time.perf_counter()
            request = await propose_order(db, bus, settings, _intent(), REQUESTER, "bench")
            if request.status != "pending":
                raise RuntimeError(f"the bench order was refused at proposal: {request.decision_reason}")
            waiting[request.id] = asyncio.Event()
            t0 = time.perf_counter()
            await decide(db, bus, settings, request.id, APPROVER, approve=True, auth="password")
            await asyncio.wait_for(waiting[request.id].wait(), timeout=30)
            if i >= warmup:
                latencies.append(filled_at[request.id] - t0)
        elapsed = time.perf_counter() - started
    finally:
        stop.set()
        await task
        await manager.router.close()
    return latencies, elapsed


async def _bus_hop(bus: Bus, n: int) -> tuple[list[float], float]:
    """Publish -> a consumer blocked in ``read`` has the message: the bus's own share of the end-to-end latency."""
    topic, group = "bench.hop", "bench"
    await bus.ensure_group(topic, group)
    arrived: dict[int, float] = {}
    signal = asyncio.Event()
    done = asyncio.Event()

    async def consume() -> None:
        while not done.is_set():
            for message in await bus.read(topic, group, "hop", count=1, block_ms=200):
                arrived[int(message.payload["seq"])] = time.perf_counter()
                await bus.ack(topic, group, message.id)
                signal.set()

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0.05)  # blocked in its read
    hops: list[float] = []
    started = time.perf_counter()
    try:
        for seq in range(n):
            signal.clear()
            t0 = time.perf_counter()
            await bus.publish(topic, {"seq": seq})
            await asyncio.wait_for(signal.wait(), timeout=10)
            hops.append(arrived[seq] - t0)
    finally:
        done.set()
        await consumer
    return hops, time.perf_counter() - started


async def _bus_rows(n: int, warmup: int, rounds: int, notes: list[str]) -> list[ExecutionBenchRow]:
    try:
        settings, db, embedded = await asyncio.to_thread(_fresh_database)
    except _Unavailable as reason:
        notes.append(f"end-to-end rows skipped: {reason}")
        return []
    redis_url = os.environ.get(REDIS_ENV)
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    buses: list[tuple[str, Bus]] = [("in-process", InProcessBus())]
    if redis_url:
        from engine.bus.redis_streams import RedisStreamsBus

        buses.append(("redis", RedisStreamsBus(redis_url, prefix=prefix)))
    else:
        notes.append(f"Redis rows skipped: set {REDIS_ENV} (e.g. redis://127.0.0.1:6390/0) to measure them")
    latencies: dict[str, list[float]] = {name: [] for name, _ in buses}
    elapsed: dict[str, float] = dict.fromkeys(latencies, 0.0)
    hops: dict[str, tuple[list[float], float]] = {}
    try:
        for name, bus in buses:
            hops[name] = await _bus_hop(bus, HOPS)
        # the buses take turns, a few orders each, so that drift in the machine's load hits both alike
        per_round = [n // rounds + (1 if r < n % rounds else 0) for r in range(rounds)]
        for count in per_round:
            for name, bus in buses:
                taken, seconds = await _end_to_end(settings, db, bus, count, warmup)
                latencies[name] += taken
                elapsed[name] += seconds
    finally:
        for _, bus in buses:
            await bus.close()
        if redis_url:
            await _delete_streams(redis_url, prefix)
        db.close()
        _drop(embedded)
        if embedded.started_here:
            embedded.stop()
    hop_reference = _percentile(hops["in-process"][0], 0.5)
    reference = _percentile(latencies["in-process"], 0.5)
    hop_rows = [
        ExecutionBenchRow(workload="bus hop (publish -> consumer)", bus=name, n=len(values),
                          p50_ms=_percentile(values, 0.5) * 1000, p95_ms=_percentile(values, 0.95) * 1000,
                          per_s=len(values) / seconds, ratio=_percentile(values, 0.5) / hop_reference)
        for name, (values, seconds) in hops.items()
    ]  # fmt: skip
    return hop_rows + [
        ExecutionBenchRow(workload="approved -> fill", bus=name, n=len(values), p50_ms=_percentile(values, 0.5) * 1000,
                          p95_ms=_percentile(values, 0.95) * 1000, per_s=len(values) / elapsed[name],
                          ratio=_percentile(values, 0.5) / reference)
        for name, values in latencies.items()
    ]  # fmt: skip


async def _kill_switch_once(settings: Settings, db: Database, bus: Bus, resting: int) -> float:
    """Seconds from ``engage`` until the worker has cancelled ``resting`` open limit orders at the paper venue."""
    runtime = Runtime(settings=settings, db=db, bus=bus)
    manager = build_order_manager(runtime)
    submitted: set[str] = set()
    cancelled: set[str] = set()
    all_submitted, all_cancelled = asyncio.Event(), asyncio.Event()
    forward = manager.on_update

    def on_update(record: OrderRecord, venue: VenueOrder | None, latency: float | None) -> None:
        if forward is not None:
            forward(record, venue, latency)
        if record.approval_id is None:
            return
        if record.status is OrderStatus.SUBMITTED:
            submitted.add(record.approval_id)
            if len(submitted) == resting:
                all_submitted.set()
        elif record.status is OrderStatus.CANCELLED:
            cancelled.add(record.approval_id)
            if len(cancelled) == resting:
                all_cancelled.set()

    manager.on_update = on_update
    worker = ExecutionWorker(runtime, manager, name="bench-kill-worker")
    await worker.startup()
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    below = _last_real_bar().close * Decimal("0.9")
    try:
        for _ in range(resting):
            request = await propose_order(db, bus, settings, _intent(type="limit", price=below), REQUESTER, "bench")
            if request.status != "pending":
                raise RuntimeError(f"the bench order was refused at proposal: {request.decision_reason}")
            await decide(db, bus, settings, request.id, APPROVER, approve=True, auth="password")
        await asyncio.wait_for(all_submitted.wait(), timeout=60)
        t0 = time.perf_counter()
        await engage(db, bus, "bench-trader", "bench: cancel everything")
        await asyncio.wait_for(all_cancelled.wait(), timeout=60)
        return time.perf_counter() - t0
    finally:
        stop.set()
        await task
        await manager.router.close()


async def _kill_switch_rows(resting: int, notes: list[str]) -> list[ExecutionBenchRow]:
    """The kill switch's promise: every open order cancelled within a second of engaging it (fresh database per bus)."""
    redis_url = os.environ.get(REDIS_ENV)
    names = ["in-process", *(["redis"] if redis_url else [])]
    rows: list[ExecutionBenchRow] = []
    for name in names:
        try:
            settings, db, embedded = await asyncio.to_thread(_fresh_database)
        except _Unavailable as reason:
            notes.append(f"kill-switch rows skipped: {reason}")
            return []
        prefix = f"bench:{uuid.uuid4().hex[:8]}:"
        bus: Bus = InProcessBus()
        if name == "redis" and redis_url:
            from engine.bus.redis_streams import RedisStreamsBus

            bus = RedisStreamsBus(redis_url, prefix=prefix)
        try:
            seconds = await _kill_switch_once(settings, db, bus, resting)
        finally:
            await bus.close()
            if name == "redis" and redis_url:
                await _delete_streams(redis_url, prefix)
            db.close()
            _drop(embedded)
            if embedded.started_here:
                embedded.stop()
        rows.append(ExecutionBenchRow(workload=f"kill switch -> {resting} open orders cancelled", bus=name, n=resting,
                                      p50_ms=seconds * 1000, p95_ms=seconds * 1000, per_s=resting / seconds,
                                      ratio=seconds / KILL_SWITCH_TARGET_S))  # fmt: skip
    return rows


async def _delete_streams(url: str, prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def run_execution_bench(
    orders: int = 50,
    warmup: int = 2,
    paper_orders: int = 2000,
    rounds: int = 5,
    notes: list[str] | None = None,
    resting: int = 20,
) -> list[ExecutionBenchRow]:
    """The rows of the execution benchmark (``notes`` collects what was skipped and why; printed if not given).

    ``orders`` timed end-to-end orders per bus, in ``rounds`` turns per bus, each after ``warmup`` untimed ones.
    """
    collected: list[str] = [] if notes is None else notes
    rounds = max(1, min(rounds, orders))

    async def run() -> list[ExecutionBenchRow]:
        return [
            *await _paper_rows(paper_orders),
            *await _bus_rows(orders, warmup, rounds, collected),
            *await _kill_switch_rows(resting, collected),
        ]

    rows = asyncio.run(run())
    if notes is None:
        for note in collected:
            print(f"note: {note}", file=sys.stderr)
    return rows


def _print_table(rows: list[ExecutionBenchRow]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("workload", "bus", "n", "p50 ms", "p95 ms", "per s", "ratio (p50)",
                  title="execution: paper venue throughput, approved order -> fill latency")  # fmt: skip
    for r in rows:
        table.add_row(r.workload, r.bus, str(r.n), f"{r.p50_ms:.3f}", f"{r.p95_ms:.3f}", f"{r.per_s:,.0f}",
                      f"{r.ratio:.2f}x")  # fmt: skip
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--orders", type=int, default=50, help="timed end-to-end orders per bus")
    parser.add_argument("--warmup", type=int, default=2, help="untimed orders at the start of each turn")
    parser.add_argument("--rounds", type=int, default=5, help="turns the buses take, alternating")
    parser.add_argument("--paper-orders", type=int, default=2000)
    args = parser.parse_args(argv)
    configure_logging(level="WARNING")  # stdout is for the figures
    rows = run_execution_bench(args.orders, args.warmup, args.paper_orders, args.rounds)
    if args.json:
        print(json.dumps([r.model_dump() for r in rows], indent=2))
    else:
        _print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
