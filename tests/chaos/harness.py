"""The real-process chaos harness: `iqts worker` and `iqts api` processes on a Redis server of the test's own (its
own port and directory, with or without persistence), the real ccxt binance client against the loopback exchange,
and PostgreSQL (the suite's, or a server of the test's own when the fault restarts it).

Outcomes are read from the real state only: the approval's status and result in PostgreSQL, and what the venue
received and holds per client order id (the loopback exchange's request log and book).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import httpx
import numpy as np
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr

from approvals import service as approvals
from approvals.service import Requester
from approvals.users import Role, User, create_user, issue_token
from engine.bus.redis_streams import RedisStreamsBus
from engine.data.frame import frame_from_arrays
from engine.data.store import BarStore, make_key
from engine.execution.broker import client_order_id_for
from engine.execution.models import OrderIntent
from engine.settings import AccountSettings, Settings
from engine.store.database import Database
from tests.integration.inbox.helpers import PASSWORD, session_csrf, sign_in
from tests.support.live_server import free_port
from tests.support.loopback import LoopbackConfig, LoopbackExchange
from tests.support.polling import eventually

REPO: Final = Path(__file__).resolve().parents[2]
SYMBOL: Final = "BTC/USDT"
ORDER_PATH: Final = "/api/v3/order"
MINUTE: Final = 60_000
PRICE: Final = 20_000
RECEIVE_WINDOW_MS: Final = 2_000  # the venue refuses a signed request older than this
LEASE_S: Final = 4.0  # > the receive window + the margin (refused at start otherwise)
TRADER: Final = Requester(user="tom-trader", kind="mcp", session="chaos")
FINAL: Final = ("executed", "expired", "failed", "rejected")


def iqts() -> list[str]:
    script = Path(sys.executable).with_name("iqts")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ui.cli.main"]


class OwnRedis:
    """A redis-server of the test's own: its port, its directory; restartable with or without persistence."""

    def __init__(self, directory: Path, *, persistent: bool) -> None:
        self.directory, self.persistent = directory, persistent
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OwnRedis:
        self.directory.mkdir(parents=True, exist_ok=True)
        durability = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--save", "", *durability],
            stdout=(self.directory / "redis.log").open("ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"redis-server did not start: {(self.directory / 'redis.log').read_text()[-800:]}")
            time.sleep(0.05)

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            self.proc.wait(20)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass
class Row:
    """One line of the chaos table."""

    fault: str
    runs: int
    approvals: int
    executed: int
    expired: int
    lost: int
    duplicated: int

    def cells(self) -> list[str]:
        return [self.fault, *(str(v) for v in (self.runs, self.approvals, self.executed, self.expired, self.lost,
                                                 self.duplicated))]  # fmt: skip


def print_table(rows: list[Row], capsys: pytest.CaptureFixture[str]) -> None:
    header = ["fault", "runs", "approvals", "executed", "expired", "lost", "duplicated"]
    lines = [header, *(r.cells() for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    with capsys.disabled():
        print()  # noqa: T201 - the table is what the chaos suite reports
        for line in lines:
            print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))  # noqa: T201


@dataclass
class Stack:
    """One account on the loopback venue, the processes that serve it, and the tally of its approvals."""

    exchange: LoopbackExchange
    settings: Settings  # the test process's view (sandbox mode, the loopback account, the own Redis)
    db: Database
    redis: OwnRedis
    account: str
    env: dict[str, str]
    logs: Path
    approver: User
    trader_token: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)
    api_port: int = field(default_factory=free_port)

    # -- processes ----------------------------------------------------------------------------------
    def _spawn(self, what: str, kill_at: str | None, extra: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        name = f"{what}{len(self.procs)}" + (f"-{kill_at}" if kill_at else "")
        env = self.env | (extra or {}) | ({"IQTS_CHAOS_KILL_AT": kill_at} if kill_at else {})
        proc = subprocess.Popen(
            [*iqts(), what], cwd=REPO, env=env, stdout=(self.logs / f"{name}.log").open("wb"), stderr=subprocess.STDOUT
        )
        self.procs.append(proc)
        self.names[proc.pid] = name
        return proc

    def start_worker(self, kill_at: str | None = None) -> subprocess.Popen[bytes]:
        return self._spawn("worker", kill_at)

    def start_api(self, kill_at: str | None = None) -> subprocess.Popen[bytes]:
        return self._spawn("api", kill_at, {"IQTS_API_PORT": str(self.api_port)})

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def log_of(self, proc: subprocess.Popen[bytes]) -> str:
        return (self.logs / f"{self.names[proc.pid]}.log").read_text(errors="replace")

    def tails(self) -> str:
        return "\n".join(f"--- {self.names[p.pid]}\n{self.log_of(p)[-2500:]}" for p in self.procs)

    @property
    def running(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.procs if p.poll() is None]

    async def until(self, what: str, condition: Callable[[], Any], timeout: float = 60,
                    keep: list[subprocess.Popen[bytes]] | None = None) -> Any:  # fmt: skip
        """``condition``'s first truthy value; fails with every process's log tail, or as soon as one of ``keep``
        (processes that must stay up) exits."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = condition()
            except Exception:  # a dependency the fault took away: read again
                value = None
            if value:
                return value
            for proc in keep or []:
                if proc.poll() is not None:
                    raise AssertionError(f"{self.names[proc.pid]} exited ({proc.returncode}) waiting for {what}\n"
                                         f"{self.tails()}")  # fmt: skip
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{self.tails()}")
            await asyncio.sleep(0.1)

    async def worker_ready(self, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
        """The worker checked its key, reconciled and audited its start (its consumers start right after)."""
        subject = f"worker:{socket.gethostname()}-{proc.pid}"

        def started() -> bool:
            with self.db.connection() as conn:
                row = conn.execute(
                    "SELECT 1 FROM audit_log WHERE action = 'execution.started' AND subject = %s", (subject,)
                ).fetchone()
            return row is not None

        await self.until(f"{self.names[proc.pid]} to start", started, timeout, [proc])

    async def api_ready(self, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
        def ready() -> bool:
            try:
                return httpx.get(f"{self.api_url}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        await self.until(f"{self.names[proc.pid]} to be ready", ready, timeout, [proc])

    async def killed(self, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
        """Wait until ``proc`` died of SIGKILL (its own chaos point, or the test's signal)."""
        await self.until(f"{self.names[proc.pid]} to be killed", lambda: proc.poll() is not None, timeout)
        assert proc.returncode == -signal.SIGKILL, (proc.returncode, self.log_of(proc)[-3000:])

    async def dies_during(self, call: Awaitable[Any], proc: subprocess.Popen[bytes]) -> None:
        """A request ``proc`` kills itself in the middle of: it must not succeed. The HTTP client fails on the cut
        connection; the MCP client may instead wait on its stream for good, so it is cancelled once ``proc`` died."""
        task = asyncio.ensure_future(call)
        await self.killed(proc)
        done, _ = await asyncio.wait({task}, timeout=5)
        if not done:
            task.cancel()
            await asyncio.wait({task}, timeout=5)
            return
        assert task.exception() is not None, f"the request succeeded although {self.names[proc.pid]} died in it"

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL

    def stop_all(self) -> None:
        for proc in self.running:
            proc.send_signal(signal.SIGKILL)
        for proc in self.procs:
            proc.wait(10)

    # -- approvals ----------------------------------------------------------------------------------
    def intent(self, quantity: str = "0.01") -> OrderIntent:
        return OrderIntent(account=self.account, symbol=SYMBOL, side="buy", type="market", quantity=Decimal(quantity),
                           mode="sandbox")  # fmt: skip

    async def approve(self, *, bus_url: str | None = None, settings: Settings | None = None) -> str:
        """Propose and approve one order from this process (the approvals service, as the API runs it), publishing
        on ``bus_url`` (default: the own Redis; a dead address is Redis down at the moment of approval)."""
        bus = RedisStreamsBus(bus_url or self.redis.url)
        own = settings or self.settings
        try:
            request = await approvals.propose_order(self.db, bus, own, self.intent(), TRADER, "chaos")
            assert request.status == "pending", request.decision_reason
            decided = await approvals.decide(self.db, bus, own, request.id, self.approver, approve=True,
                                             auth="password")  # fmt: skip
            assert decided.status == "approved"
        finally:
            await bus.close()
        return request.id

    @asynccontextmanager
    async def mcp(self) -> AsyncIterator[ClientSession]:
        """A real MCP client session on the API process (streamable HTTP, the trader's bearer token)."""
        headers = {"Authorization": f"Bearer {self.trader_token}"}
        async with (
            httpx.AsyncClient(headers=headers, timeout=30) as http,
            streamable_http_client(f"{self.api_url}/mcp", http_client=http) as (r, w, _),
            ClientSession(r, w) as s,
        ):
            await s.initialize()
            yield s

    def order_args(self) -> dict[str, Any]:
        return {"order": {"symbol": SYMBOL, "side": "buy", "quantity": "0.01", "account": self.account},
                "rationale": "chaos"}  # fmt: skip

    async def propose_over_mcp(self) -> dict[str, Any]:
        async with self.mcp() as s:
            result = await s.call_tool("propose_order", self.order_args())
        assert not result.isError, result.content
        assert result.structuredContent is not None
        return dict(result.structuredContent)

    async def approve_over_http(self, approval_id: str) -> httpx.Response:
        """The approver signs in through the real form and approves in the inbox API (with the CSRF token)."""
        seen = approvals.get_request(self.db, approval_id).intent_hash
        async with httpx.AsyncClient(base_url=self.api_url, timeout=30) as http:
            await sign_in(http, self.approver.username)
            csrf = await session_csrf(http)
            return await http.post(f"/api/approvals/{approval_id}/approve", json={"seen_hash": seen},
                                   headers={"X-CSRF-Token": csrf})  # fmt: skip

    def pending_of_account(self) -> list[str]:
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT id FROM approval_requests WHERE status = 'pending' AND kind = 'order' "
                "AND intent->>'account' = %s ORDER BY created_at",
                (self.account,),
            ).fetchall()
        return [str(r[0]) for r in rows]

    # -- outcomes -----------------------------------------------------------------------------------
    def venue_orders(self, approval_id: str) -> int:
        cid = client_order_id_for(approval_id)
        return sum(1 for o in self.exchange.state.orders() if o.client_order_id == cid)

    def posts(self, approval_id: str) -> int:
        cid = client_order_id_for(approval_id)
        return sum(1 for r in self.exchange.order_submissions() if r.params.get("newClientOrderId") == cid)

    def statuses(self, ids: list[str]) -> dict[str, str]:
        return {i: approvals.get_request(self.db, i).status for i in ids}

    async def settle(self, ids: list[str], timeout: float = 90) -> dict[str, str]:
        """Every approval final (or the states at the timeout: the table then shows what is stuck)."""

        def settled() -> dict[str, str] | None:
            now = self.statuses(ids)
            return now if all(s in FINAL for s in now.values()) else None

        try:
            return await eventually("every approval to settle", settled, timeout=timeout, interval=0.2)
        except AssertionError:
            return self.statuses(ids)

    async def row(self, fault: str, ids: list[str], *, may_expire: set[str] = frozenset(),  # type: ignore[assignment]
                  timeout: float = 90) -> Row:  # fmt: skip
        """Wait for ``ids`` to settle and count them; asserts the invariants (with the logs when they fail)."""
        states = await self.settle(ids, timeout)
        executed = [i for i in ids if states[i] == "executed" and self.venue_orders(i) == 1]
        expired = []
        for i in ids:
            result = approvals.get_request(self.db, i).result or {}
            if states[i] == "expired" and "expired" in str(result.get("reason", "")) and self.venue_orders(i) == 0:
                expired.append(i)
        duplicated = sum(1 for i in ids if self.venue_orders(i) > 1)
        row = Row(fault, 1, len(ids), len(executed), len(expired), len(ids) - len(executed) - len(expired),
                  duplicated)  # fmt: skip
        detail = {i: (states[i], self.venue_orders(i), self.posts(i), approvals.get_request(self.db, i).result)
                  for i in ids}  # fmt: skip
        assert row.lost == 0 and row.duplicated == 0, f"{row}\n{detail}\n{self.tails()}"
        assert set(expired) <= may_expire, detail
        return row


async def make_stack(settings: Settings, db: Database, redis: OwnRedis, unique: str, logs: Path) -> Stack:
    """The loopback venue (sandbox mode, duplicate client ids refused only while open, as real venues do), one
    account of this test's own with a fresh price for the risk checks, an approver and a trader."""
    exchange = LoopbackExchange(LoopbackConfig(duplicate_client_order_id="open")).start()
    exchange.state.load_bars(SYMBOL, MINUTE, [(1_704_067_200_000, PRICE, PRICE, PRICE, PRICE, 100)])
    now_ms = (int(time.time() * 1000) // MINUTE - 1) * MINUTE
    one = np.array([float(PRICE)])
    BarStore(db).upsert_bars(make_key(f"loopback{unique}", SYMBOL, "1m"), frame_from_arrays(
        ts=np.array([now_ms]), open=one, high=one, low=one, close=one, volume=np.array([10.0])))  # fmt: skip
    account = f"lb{unique}"
    account_json = {"name": account, "venue": "ccxt", "exchange": "binance", "sandbox": True,
                    "valuation_currency": "USDT", "initial_cash": {"USDT": "100000"},
                    "receive_window_ms": RECEIVE_WINDOW_MS}  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("IQTS_") or k == "IQTS_DATABASE_URL"}
    env |= {
        "IQTS_STATE_DIR": str(settings.state_dir),
        "IQTS_DB_NAME": settings.db_name,
        "IQTS_REDIS_URL": redis.url,
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
        "IQTS_RISK_MONITOR_S": "0.5",
        "IQTS_LEADER_RETRY_S": "0.5",
        "IQTS_DB_CONNECT_TIMEOUT_S": "2",
        "IQTS_LOG_FORMAT": "json",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    if settings.database_url is not None:
        env["IQTS_DATABASE_URL"] = settings.database_url.get_secret_value()
    own = settings.model_copy(
        update={
            "mode": "sandbox",
            "accounts": [AccountSettings.model_validate(account_json)],
            "exchange_api_key": SecretStr(exchange.api_key),
            "exchange_api_secret": SecretStr(exchange.secret),
            "exchange_urls": {"binance": exchange.url},
            "redis_url": SecretStr(redis.url),
        }
    )
    approver = create_user(db, f"ann{unique}", PASSWORD, Role.APPROVER)
    trader = create_user(db, f"tom{unique}", PASSWORD, Role.TRADER)
    token = issue_token(db, trader.username, "chaos", actor="chaos")
    return Stack(exchange, own, db, redis, account, env, logs, approver, token)
