"""Issue 5's acceptance cases with real processes: `iqts worker` on Redis, the real ccxt binance client and the
loopback exchange (sandbox mode, the venue's real duplicate-client-order-id rule: refused only while open).

* a worker SIGKILLed between submit and ack, restarted: exactly one order exists at the exchange and the OMS
  state matches it (the fresh worker reconciles on start, then reclaims the pending message);
* the same approval submitted twice yields one order: published twice to one worker, and (slow) delivered to
  two worker processes at once, where the per-approval submission lock makes the second wait for the first (a
  reclaim of a message still being worked on, or a duplicate publish, would otherwise send it again once the
  venue's duplicate-id rule lapses with the first order filled).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pytest
from pydantic import SecretStr

from approvals import service as approvals
from approvals.service import Requester
from approvals.users import Role, User
from engine.bus.redis_streams import RedisStreamsBus
from engine.data.frame import frame_from_arrays
from engine.data.store import BarStore, make_key
from engine.execution.broker import client_order_id_for
from engine.execution.models import OrderIntent, OrderStatus
from engine.execution.oms import OrderRecord, get_order
from engine.execution.worker import APPROVED_TOPIC
from engine.settings import AccountSettings, Settings
from engine.store.database import Database
from tests.support.loopback import LoopbackConfig, LoopbackExchange

REPO = Path(__file__).resolve().parents[3]
SYMBOL = "BTC/USDT"
ORDER_PATH = "/api/v3/order"
MINUTE = 60_000
PRICE = 20_000
RECEIVE_WINDOW_MS = 3_000  # the venue refuses a signed request older than this
LEASE_S = 5.0  # > the receive window + the margin (refused at start otherwise)
APPROVER = User(id=-1, username="ann-approver", role=Role.APPROVER)
TRADER = Requester(user="tom-trader", kind="mcp", session="crash-test")
STREAMS = ("orders.approved", "orders.approved.dead", "risk.kill_switch", "orders.updates", "approvals.events")
_VENUE_STATUS = {"NEW": "submitted", "PARTIALLY_FILLED": "partially_filled", "FILLED": "filled",
                 "CANCELED": "cancelled", "REJECTED": "rejected", "EXPIRED": "expired"}  # fmt: skip


def _iqts() -> list[str]:
    script = Path(sys.executable).with_name("iqts")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ui.cli.main"]


def _own_redis_db(url: str) -> str:
    """The same Redis server, a database of its own (the worker's streams are the fixed ``iqts:`` ones)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{random.randint(1, 15)}"))


async def _until(what: str, condition: Callable[[], Any], timeout: float, procs: list[subprocess.Popen[bytes]]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        for proc in procs:
            assert proc.poll() is None, f"a worker exited early (code {proc.returncode}) while waiting for {what}"
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class CrashEnv:
    exchange: LoopbackExchange
    settings: Settings
    db: Database
    bus: RedisStreamsBus
    account: str
    env: dict[str, str]
    logs: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_worker(self) -> subprocess.Popen[bytes]:
        n = len(self.procs)
        proc = subprocess.Popen(
            [*_iqts(), "worker"],
            cwd=REPO,
            env=self.env,
            stdout=(self.logs / f"worker{n}.out").open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def log_of(self, proc: subprocess.Popen[bytes]) -> str:
        return (self.logs / f"worker{self.procs.index(proc)}.out").read_text(errors="replace")

    async def ready(self, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
        """The worker checked its key, reconciled and audited its start (its consumers start right after).

        Nothing published from here on is missed: the consumer groups start at the stream's beginning ("0").
        """
        subject = f"worker:{socket.gethostname()}-{proc.pid}"

        def started() -> bool:
            with self.db.connection() as conn:
                row = conn.execute(
                    "SELECT 1 FROM audit_log WHERE action = 'execution.started' AND subject = %s", (subject,)
                ).fetchone()
            return row is not None

        try:
            await _until(f"{subject} to start", started, timeout, [proc])
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.log_of(proc)[-3000:]}") from None

    async def approved(self, quantity: str = "0.01") -> str:
        intent = OrderIntent(
            account=self.account, symbol=SYMBOL, side="buy", type="market", quantity=Decimal(quantity), mode="sandbox"
        )
        request = await approvals.propose_order(self.db, self.bus, self.settings, intent, TRADER, "crash test")
        assert request.status == "pending", request.decision_reason
        decided = await approvals.decide(
            self.db, self.bus, self.settings, request.id, APPROVER, approve=True, auth="password"
        )  # publishes orders.approved on Redis
        assert decided.status == "approved"
        return request.id

    def order(self, approval_id: str) -> OrderRecord | None:
        with self.db.connection() as conn:
            return get_order(conn, approval_id=approval_id)

    def posts(self, cid: str) -> list[Any]:
        return [r for r in self.exchange.order_submissions() if r.params.get("newClientOrderId") == cid]

    def venue_orders(self, cid: str) -> list[Any]:
        return [o for o in self.exchange.state.orders() if o.client_order_id == cid]

    async def settled(self, approval_id: str, timeout: float = 60) -> OrderRecord:
        """The order is final in the database, its approval executed and no approval message left pending."""

        def done() -> bool:
            record = self.order(approval_id)
            return bool(
                record is not None
                and record.status is OrderStatus.FILLED
                and approvals.get_request(self.db, approval_id).status == "executed"
            )

        try:
            await _until(f"order of {approval_id} to settle", done, timeout, self.running)
        except AssertionError as error:
            tails = "\n".join(self.log_of(p)[-2000:] for p in self.procs)
            raise AssertionError(f"{error}\n{tails}") from None
        deadline = time.monotonic() + timeout
        while await self.bus.pending(APPROVED_TOPIC, "execution") and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert await self.bus.pending(APPROVED_TOPIC, "execution") == 0
        record = self.order(approval_id)
        assert record is not None
        return record

    @property
    def running(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.procs if p.returncode is None and p.poll() is None]

    def assert_matches_venue(self, record: OrderRecord) -> None:
        (venue,) = self.venue_orders(record.client_order_id)
        assert record.status.value == _VENUE_STATUS[venue.status]
        assert record.filled_quantity == venue.executed_qty
        assert record.venue_order_id == str(venue.order_id)
        if venue.executed_qty:
            assert record.average_price == venue.cummulative_quote_qty / venue.executed_qty
        with self.db.connection() as conn:
            fills = conn.execute(
                "SELECT fill_key, quantity, price FROM fills WHERE order_id = %s ORDER BY fill_key", (record.id,)
            ).fetchall()
        assert sorted((str(f.id), f.qty, f.price) for f in venue.fills) == [tuple(f) for f in fills]


@pytest.fixture
async def crash_env(
    settings: Settings, db: Database, redis_url: str, unique: str, tmp_path: Path
) -> AsyncIterator[CrashEnv]:
    exchange = LoopbackExchange(LoopbackConfig(duplicate_client_order_id="open")).start()
    exchange.state.load_bars(SYMBOL, MINUTE, [(1_704_067_200_000, PRICE, PRICE, PRICE, PRICE, 100)])
    # the last price the risk checks read: a series of this test's own, left in place afterwards, because the
    # portfolio ledger keeps this account's BTC/USDT position and every later valuation needs a price for it
    store = BarStore(db)
    key = make_key(f"loopback{unique}", SYMBOL, "1m")
    now_ms = (int(time.time() * 1000) // MINUTE - 1) * MINUTE
    one = np.array([float(PRICE)])
    store.upsert_bars(key, frame_from_arrays(ts=np.array([now_ms]), open=one, high=one, low=one, close=one,
                                             volume=np.array([10.0])))  # fmt: skip
    with db.connection() as conn:
        conn.execute("DELETE FROM system_state WHERE key IN ('kill_switch', 'breakers')")
    bus_url = _own_redis_db(redis_url)
    account = f"lb{unique}"
    account_json = {"name": account, "venue": "ccxt", "exchange": "binance", "sandbox": True,
                    "valuation_currency": "USDT", "initial_cash": {"USDT": "100000"},
                    "receive_window_ms": RECEIVE_WINDOW_MS}  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("IQTS_") or k == "IQTS_DATABASE_URL"}
    env |= {
        "IQTS_STATE_DIR": str(settings.state_dir),
        "IQTS_DB_NAME": settings.db_name,
        "IQTS_REDIS_URL": bus_url,
        "IQTS_MODE": "sandbox",
        "IQTS_ACCOUNTS": json.dumps([account_json]),
        "IQTS_EXCHANGE_URLS": json.dumps({"binance": exchange.url}),
        "IQTS_EXCHANGE_API_KEY": exchange.api_key,
        "IQTS_EXCHANGE_API_SECRET": exchange.secret,
        "IQTS_BUS_RECLAIM_IDLE_MS": "800",
        "IQTS_BUS_BLOCK_MS": "200",
        "IQTS_EXECUTION_POLL_S": "0.5",
        "IQTS_EXECUTION_SWEEP_S": "0.5",
        "IQTS_EXECUTION_LEASE_S": str(LEASE_S),
        "IQTS_LOG_FORMAT": "json",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    own = settings.model_copy(
        update={
            "mode": "sandbox",
            "accounts": [AccountSettings.model_validate(account_json)],
            "exchange_api_key": SecretStr(exchange.api_key),
            "exchange_api_secret": SecretStr(exchange.secret),
            "exchange_urls": {"binance": exchange.url},
            "redis_url": SecretStr(bus_url),
        }
    )
    bus = RedisStreamsBus(bus_url)
    crash = CrashEnv(exchange, own, db, bus, account, env, tmp_path)
    try:
        yield crash
    finally:
        for proc in crash.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        exchange.stop()
        import redis.asyncio as aioredis

        raw = aioredis.Redis.from_url(bus_url)
        await raw.delete(*(f"iqts:{s}" for s in STREAMS))
        await raw.aclose()
        await bus.close()


async def test_a_worker_killed_between_submit_and_ack_leaves_exactly_one_order(crash_env: CrashEnv) -> None:
    env = crash_env
    first = env.start_worker()
    await env.ready(first)
    env.exchange.hold_after_submit_next(60)  # the venue takes the order; its answer never reaches the worker

    approval_id = await env.approved()
    cid = client_order_id_for(approval_id)
    await _until("the order to reach the venue", lambda: env.venue_orders(cid) and env.posts(cid), 30, [first])
    (post,) = env.posts(cid)
    assert post.status is None  # the worker is still waiting for the answer
    recorded = env.order(approval_id)
    assert recorded is not None and recorded.status is OrderStatus.NEW  # committed before the venue heard of it
    first.send_signal(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    assert await env.bus.pending(APPROVED_TOPIC, "execution") == 1  # taken, never acked

    second = env.start_worker()
    await env.ready(second)
    record = await env.settled(approval_id)

    assert len(env.venue_orders(cid)) == 1, "the exchange holds a second order"
    assert len(env.posts(cid)) == 1, "the restarted worker sent the order again"
    env.assert_matches_venue(record)
    assert record.status is OrderStatus.FILLED and record.filled_quantity == Decimal("0.01")
    result = approvals.get_request(env.db, approval_id).result
    assert result is not None and result["order_id"] == record.id and result["status"] == "filled"
    with env.db.connection() as conn:
        reconciled = conn.execute(
            "SELECT payload FROM audit_log WHERE action = 'execution.reconciled' AND subject = %s "
            "ORDER BY seq DESC LIMIT 1",
            (f"account:{env.account}",),
        ).fetchone()
        events = [
            r[0] for r in conn.execute("SELECT event FROM order_events WHERE order_id = %s ORDER BY id", (record.id,))
        ]
    assert reconciled is not None
    summary = reconciled[0] if isinstance(reconciled[0], dict) else json.loads(reconciled[0])
    assert summary["checked"] == 1 and summary["changed"] == 1  # recovered at start, before the message came back
    assert events == ["created", "submit", "fill"]

    # the same approval published twice (a redelivery, a double click upstream): one order
    twice = await env.approved(quantity="0.02")
    await env.bus.publish(APPROVED_TOPIC, {"approval_id": twice})
    again = await env.settled(twice)
    assert len(env.venue_orders(again.client_order_id)) == 1 and len(env.posts(again.client_order_id)) == 1
    env.assert_matches_venue(again)

    second.send_signal(signal.SIGTERM)
    assert second.wait(15) == 0
    verify = subprocess.run(
        [*_iqts(), "audit", "verify"], check=False, cwd=REPO, env=env.env, capture_output=True, timeout=60
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert b"chain intact" in verify.stdout


@pytest.mark.slow  # two more worker processes (~15 s each to import ccxt on a small machine)
async def test_the_same_approval_delivered_twice_to_two_workers_makes_one_order(crash_env: CrashEnv) -> None:
    env = crash_env
    one, two = env.start_worker(), env.start_worker()
    await asyncio.gather(env.ready(one), env.ready(two))
    # the venue takes its time with the first send: the second delivery arrives while it is in flight
    env.exchange.set_latency(1.5, n=1, method="POST", path=ORDER_PATH)

    approval_id = await env.approved()
    cid = client_order_id_for(approval_id)
    await _until("the first send to be in flight", lambda: env.posts(cid), 30, [one, two])
    await env.bus.publish(APPROVED_TOPIC, {"approval_id": approval_id})  # the same approval, again
    record = await env.settled(approval_id)

    assert len(env.venue_orders(cid)) == 1
    assert len(env.posts(cid)) == 1  # the second delivery never reached the venue
    env.assert_matches_venue(record)
    logs = env.log_of(one) + env.log_of(two)
    # it waited for the first, then found it
    assert "is being submitted by another worker right now" in logs, logs[-4000:]
    with env.db.connection() as conn:
        n = conn.execute("SELECT count(*) FROM orders WHERE approval_id = %s", (approval_id,)).fetchone()
    assert n == (1,)


def _holder(env: CrashEnv, approval_id: str) -> subprocess.Popen[bytes] | None:
    """The worker process whose lease the approval's order carries."""
    with env.db.connection() as conn:
        row = conn.execute("SELECT lease_owner FROM orders WHERE approval_id = %s", (approval_id,)).fetchone()
    if row is None or row[0] is None:
        return None
    return next((p for p in env.procs if row[0] == f"{socket.gethostname()}-{p.pid}"), None)


@pytest.mark.slow  # two and three worker processes (~15 s each to import ccxt on a small machine)
@pytest.mark.parametrize("workers", [2, 3])
async def test_a_worker_killed_while_its_order_is_in_flight_is_not_doubled_by_the_others(
    crash_env: CrashEnv, workers: int
) -> None:
    """Issue 11's finding: the standby reclaimed the message after 800 ms, found nothing at the venue yet (the
    POST still travelling) and sent again: two orders for one approval. Now it waits for the lease to run out
    (longer than the venue's receive window), then asks the venue, which by then has the first one or never will."""
    env = crash_env
    procs = [env.start_worker() for _ in range(workers)]
    await asyncio.gather(*(env.ready(p) for p in procs))
    env.exchange.set_latency(1.5, n=1, method="POST", path=ORDER_PATH)  # the first send takes its time

    approval_id = await env.approved()
    cid = client_order_id_for(approval_id)
    holder = await _until("the first send to be in flight", lambda: env.posts(cid) and _holder(env, approval_id),
                          30, procs)  # fmt: skip
    holder.send_signal(signal.SIGKILL)
    assert holder.wait(10) == -signal.SIGKILL
    record = await env.settled(approval_id, timeout=90)

    assert len(env.venue_orders(cid)) == 1, "the venue holds a second order for one approval"
    assert len(env.posts(cid)) == 1, "a standby sent the order again"
    env.assert_matches_venue(record)
    logs = "".join(env.log_of(p) for p in procs if p is not holder)
    assert "is leased to" in logs, logs[-4000:]  # a standby saw the lease and waited
