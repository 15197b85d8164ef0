"""Inbox fixtures: the sample market data, people with roles, signed-in clients, order requests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import httpx
import pytest
from argon2 import PasswordHasher

from approvals import users
from approvals.service import ApprovalRequest, Requester, propose_order
from approvals.users import Role, create_user, issue_token
from engine.bus import InProcessBus
from engine.data.market import last_prices
from engine.data.sample import load_sample_series
from engine.data.store import BarStore, make_key
from engine.execution.models import OrderIntent, OrderSide, OrderType
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database
from tests.integration.inbox.helpers import PASSWORD, People, Propose
from ui.api.app import create_app

GLOBAL_KEYS = ("kill_switch", "breakers", "risk_policy_active")
# argon2id at its lightest: four fresh people per test cost 0.4 s of hashing with the production parameters (65 MiB,
# 3 passes each), most of each test's time. Signing in verifies with the parameters stored in the hash, so the same
# code runs; tests/integration/approvals/test_users.py checks the production hashes.
_LIGHT_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture(scope="module")
def market(db: Database) -> Decimal:
    """The bundled real history in the store (risk check #1 needs prices); the last BTC/USD price."""
    store = BarStore(db)
    for series in load_sample_series():
        store.upsert_bars(make_key(series.exchange, series.symbol, series.timeframe), series.frame)
    return last_prices(store, ["BTC/USD"])["BTC/USD"].price


@pytest.fixture
def clean_controls(db: Database) -> Iterator[None]:
    """No kill switch, breakers or activated policy (the bundled default applies); restored afterwards."""
    with db.connection() as conn:
        saved = conn.execute("SELECT key, value FROM system_state WHERE key = ANY(%s)", (list(GLOBAL_KEYS),)).fetchall()
        conn.execute("DELETE FROM system_state WHERE key = ANY(%s)", (list(GLOBAL_KEYS),))
    yield
    with db.connection() as conn:
        conn.execute("DELETE FROM system_state WHERE key = ANY(%s)", (list(GLOBAL_KEYS),))
        for key, value in saved:
            conn.execute("INSERT INTO system_state (key, value) VALUES (%s, %s::jsonb)", (key, json.dumps(value)))


@pytest.fixture
def runtime(settings: Settings, db: Database) -> Runtime:
    return Runtime(settings=settings, db=db, bus=InProcessBus())


@pytest.fixture
def people(db: Database, unique: str) -> People:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(users, "_hasher", _LIGHT_HASHER)
        approver = create_user(db, f"carol{unique}", PASSWORD, Role.APPROVER)
        approver2 = create_user(db, f"dave{unique}", PASSWORD, Role.APPROVER)
        viewer = create_user(db, f"vic{unique}", PASSWORD, Role.VIEWER)
        trader = create_user(db, f"bob{unique}", PASSWORD, Role.TRADER)
    return People(
        approver=approver,
        approver2=approver2,
        viewer=viewer,
        trader=trader,
        trader_token=issue_token(db, trader.username, "mcp", actor="test"),
        approver_token=issue_token(db, approver.username, "ide", actor="test"),
    )


@pytest.fixture
def propose(runtime: Runtime, market: Decimal, people: People, clean_controls: None) -> Propose:
    """Propose a BTC/USD limit buy near the last price, as the trader over MCP (or as ``by``)."""

    async def make(
        *,
        by: str | None = None,
        quantity: str = "0.05",
        runtime_: Runtime | None = None,
        rationale: str = "mean reversion after a 3% drop",
    ) -> ApprovalRequest:
        rt = runtime_ or runtime
        intent = OrderIntent(
            account="paper",
            symbol="BTC/USD",
            side=OrderSide.BUY,
            type=OrderType.LIMIT,
            quantity=Decimal(quantity),
            price=(market * Decimal("0.99")).quantize(Decimal("0.01")),
            mode=rt.settings.mode,
        )
        requester = Requester(user=by or people.trader.username, kind="mcp", session="test-session")
        request = await propose_order(rt.db, rt.bus, rt.settings, intent, requester, rationale)
        assert request.status == "pending", request.risk_verdict
        return request

    return make


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
