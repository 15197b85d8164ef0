"""The production split as docker-compose runs it: `iqts api` and `iqts worker` as real processes on one database
and one Redis. The worker leads the singleton duties, so a loss trips the risk monitor's breaker and a request
past its TTL is expired, with nothing but these two processes running (before the process plan, neither ran).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import redis

from approvals import service as approvals
from approvals.service import Requester
from engine.audit import entries
from engine.bus.redis_streams import RedisStreamsBus
from engine.data.provider import MarketData
from engine.portfolio.service import portfolio_snapshot
from engine.risk.monitor import breakers
from engine.settings import Settings
from engine.store.database import Database
from tests.support.live_server import free_port
from tests.support.polling import wait_for
from ui.process.plan import singletons

REPO = Path(__file__).resolve().parents[3]
SYMBOL = "BTC/USD"
ACCOUNT = "paper"


def _iqts() -> list[str]:
    script = Path(sys.executable).with_name("iqts")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ui.cli.main"]


@dataclass
class Split:
    api_url: str
    bus_url: str
    processes: dict[str, subprocess.Popen[bytes]]
    logs: Path

    def tail(self) -> str:
        return "\n".join(
            f"--- {n}\n{(self.logs / f'{n}.log').read_text(errors='replace')[-2500:]}" for n in self.processes
        )


@pytest.fixture(scope="module")
def split(
    settings: Settings, db: Database, sample_loaded: None, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Split]:
    portfolio_snapshot(db, settings)  # the day-start and peak marks, at the current prices
    parts = urlsplit(redis_url)
    bus_url = urlunsplit(parts._replace(path=f"/{random.randint(1, 15)}"))
    redis.Redis.from_url(bus_url).flushdb()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IQTS_") or k == "IQTS_DATABASE_URL"}
    env |= {
        "IQTS_STATE_DIR": str(settings.state_dir),
        "IQTS_DB_NAME": settings.db_name,
        "IQTS_REDIS_URL": bus_url,
        "IQTS_API_PORT": str(port),
        "IQTS_LOG_FORMAT": "json",
        "IQTS_RISK_MONITOR_S": "0.5",
        "IQTS_LEADER_RETRY_S": "0.5",
        "IQTS_EXECUTION_POLL_S": "0.5",
    }
    logs = tmp_path_factory.mktemp("split")
    processes = {
        name: subprocess.Popen(
            [*_iqts(), name], cwd=REPO, env=env, stdout=(logs / f"{name}.log").open("wb"), stderr=subprocess.STDOUT
        )
        for name in ("api", "worker")
    }
    running = Split(api_url=f"http://127.0.0.1:{port}", bus_url=bus_url, processes=processes, logs=logs)
    try:
        yield running
    finally:
        for proc in processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in processes.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _leaders(db: Database) -> list[str]:
    """The singleton duties whose advisory lock a connection of this database holds."""
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT a.application_name FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid "
            "WHERE a.datname = current_database() AND l.locktype = 'advisory' AND l.granted "
            "AND a.application_name LIKE 'iqts-leader:%%'"
        ).fetchall()
    return sorted(str(r[0]).removeprefix("iqts-leader:") for r in rows)


def test_the_split_runs_each_singleton_once_in_the_worker(split: Split, db: Database) -> None:
    procs = list(split.processes.values())
    wait_for("the API to be ready", lambda: _ready(split.api_url), timeout=120, processes=procs)
    try:
        held = wait_for(
            "the worker to lead every singleton",
            lambda: len(_leaders(db)) == len(singletons()) and _leaders(db),
            timeout=120,
            processes=procs,
        )
    except AssertionError as error:
        raise AssertionError(f"{error}\n{split.tail()}") from None
    assert held == sorted(d.value for d in singletons())


def _insert_losing_fill(db: Database, settings: Settings, approval_id: str, price: Decimal) -> None:
    """A fill at twice the market price: the account is down by about the price at once (a crash, condensed)."""
    with db.connection() as conn:
        row = conn.execute(
            "INSERT INTO orders (approval_id, client_order_id, account, venue, symbol, side, type, quantity, mode, "
            "status, filled_quantity, average_price) VALUES (%s, %s, %s, 'paper', %s, 'buy', 'market', 1, %s, "
            "'filled', 1, %s) RETURNING id",
            (approval_id, f"split-{approval_id}", ACCOUNT, SYMBOL, settings.mode, price),
        ).fetchone()
        assert row is not None
        conn.execute(
            "INSERT INTO fills (order_id, fill_key, account, symbol, side, quantity, price, fee, fee_currency, "
            "liquidity, ts) VALUES (%s, 'f1', %s, %s, 'buy', 1, %s, 0, 'USD', 'taker', %s)",
            (row[0], ACCOUNT, SYMBOL, price, datetime.now(UTC)),
        )


async def test_a_loss_trips_the_daily_loss_breaker_in_the_worker(
    split: Split, db: Database, settings: Settings
) -> None:
    assert breakers(db) == ()
    last = MarketData(db).quotes([SYMBOL])[SYMBOL].price
    bus = RedisStreamsBus(split.bus_url)
    try:
        carrier = await approvals.propose_simple(
            db, bus, settings, "strategy_deployment", {"strategy": "split-test"}, Requester(user="tom", kind="cli")
        )
    finally:
        await bus.close()
    _insert_losing_fill(db, settings, carrier.id, last * 2)
    try:
        [trip] = await asyncio.to_thread(
            wait_for, "the worker's risk monitor to trip a breaker", lambda: breakers(db), timeout=60,
            processes=list(split.processes.values()),
        )  # fmt: skip
    except AssertionError as error:
        raise AssertionError(f"{error}\n{split.tail()}") from None
    assert trip.account == ACCOUNT and trip.breaker in ("max_daily_loss", "max_drawdown")
    [audited] = entries(db, subject=f"account:{ACCOUNT}", action="risk.breaker_tripped")
    assert audited.actor == "risk-monitor"
    assert audited.payload["breaker"] == trip.breaker


async def test_a_request_past_its_ttl_is_expired_by_the_worker(split: Split, db: Database, settings: Settings) -> None:
    short = settings.model_copy(update={"approval_ttl_s": 1})  # below the setting's minimum: a test-only TTL
    bus = RedisStreamsBus(split.bus_url)
    try:
        request = await approvals.propose_simple(
            db, bus, short, "strategy_deployment", {"strategy": "expiring"}, Requester(user="tom", kind="cli")
        )
    finally:
        await bus.close()
    assert request.status == "pending"
    try:
        await asyncio.to_thread(
            wait_for, "the request to expire", lambda: approvals.get_request(db, request.id).status == "expired",
            timeout=60, processes=list(split.processes.values()),
        )  # fmt: skip
    except AssertionError as error:
        raise AssertionError(f"{error}\n{split.tail()}") from None
    [audited] = entries(db, subject=f"approval:{request.id}", action="approval.expired")
    assert audited.actor == "system"


def test_both_stop_cleanly(split: Split) -> None:
    for proc in split.processes.values():
        proc.send_signal(signal.SIGINT)
    codes = {name: proc.wait(timeout=60) for name, proc in split.processes.items()}
    assert all(code in (0, 130) for code in codes.values()), f"{codes}\n{split.tail()}"
