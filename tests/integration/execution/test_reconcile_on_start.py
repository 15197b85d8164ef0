"""Startup reconciliation, the crash-recovery submit path and the trading-mode gate, on the real database with a
paper venue (the venue outlives the "process": a new OrderManager on the same broker is a restarted worker)."""

from __future__ import annotations

import io
import json
import sys
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from pydantic import SecretStr

from approvals import service as approvals
from approvals.service import Requester
from approvals.users import Role, User
from engine.bus import InProcessBus
from engine.execution.broker import ApprovedOrder, VenueOrder
from engine.execution.ccxt import WithdrawalKeyError
from engine.execution.gate import GateRefusedError
from engine.execution.models import OrderIntent, OrderStatus
from engine.execution.modes import LIVE_CONFIRM_ENV, LIVE_CONFIRM_PHRASE, ModeError
from engine.execution.oms import OrderManager, get_order
from engine.execution.paper import ManualPriceFeed, PaperBroker, PaperBrokerConfig, PriceBar
from engine.execution.router import Router
from engine.execution.worker import ExecutionWorker, build_order_manager
from engine.runtime import Runtime
from engine.settings import AccountSettings, Settings
from engine.store.database import Database
from tests.support.loopback import ApiKeyRestrictions, LoopbackConfig, LoopbackExchange

APPROVER = User(id=-1, username="ann-approver", role=Role.APPROVER)
TRADER = Requester(user="tom-trader", kind="mcp", session="test")
PRICE = Decimal(8700)  # near the last stored BTC/USD close, which the risk checks use


class _Crash(BaseException):
    """The process dies: nothing after this line of the submit path runs."""


class _CrashAfterSend:
    """The venue receives and executes the order, then the worker dies before it records the answer."""

    def __init__(self, inner: PaperBroker) -> None:
        self.inner = inner
        self.name = inner.name

    async def submit(self, order: ApprovedOrder) -> VenueOrder:
        await self.inner.submit(order)
        raise _Crash

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class Env:
    runtime: Runtime
    account: str
    feed: ManualPriceFeed
    broker: PaperBroker

    def manager(self, broker: object | None = None) -> OrderManager:
        """A fresh OMS (a restarted worker) on the same venue."""
        return build_order_manager(self.runtime, Router({self.account: broker or self.broker}))  # type: ignore[dict-item]

    def intent(self, **changes: object) -> OrderIntent:
        base: dict[str, object] = {
            "account": self.account,
            "symbol": "BTC/USD",
            "side": "buy",
            "type": "market",
            "quantity": Decimal("0.02"),
        }
        return OrderIntent.model_validate(base | changes)

    async def approved(self, intent: OrderIntent, settings: Settings | None = None) -> str:
        settings = settings or self.runtime.settings
        request = await approvals.propose_order(self.runtime.db, self.runtime.bus, settings, intent, TRADER, "test")
        assert request.status == "pending", request.decision_reason
        await approvals.decide(
            self.runtime.db, self.runtime.bus, settings, request.id, APPROVER, approve=True, auth="password"
        )
        return request.id

    def order(self, approval_id: str) -> Any:
        with self.runtime.db.connection() as conn:
            return get_order(conn, approval_id=approval_id)


def _bar(close: Decimal) -> PriceBar:
    return PriceBar(int(time.time() * 1000), close, close, close, close, Decimal(1000))


@pytest.fixture
def env(settings: Settings, db: Database, sample_loaded: None, unique: str) -> Env:
    with db.connection() as conn:
        conn.execute("DELETE FROM system_state WHERE key IN ('kill_switch', 'breakers')")
    account = f"paper{unique}"
    own = settings.model_copy(
        update={"accounts": [AccountSettings(name=account, initial_cash={"USD": Decimal(100_000)})]}
    )
    feed = ManualPriceFeed()
    feed.push("BTC/USD", _bar(PRICE))
    broker = PaperBroker(PaperBrokerConfig(name=account, initial_balances={"USD": Decimal(100_000)}), feed)
    return Env(Runtime(settings=own, db=db, bus=InProcessBus()), account, feed, broker)


def _fills(env: Env, order_id: int) -> list[tuple[Decimal, Decimal]]:
    with env.runtime.db.connection() as conn:
        rows = conn.execute("SELECT quantity, price FROM fills WHERE order_id = %s", (order_id,)).fetchall()
    return [(r[0], r[1]) for r in rows]


async def test_an_order_sent_before_a_crash_is_recovered_from_the_venue_not_sent_again(env: Env) -> None:
    intent = env.intent()
    approval_id = await env.approved(intent)
    with pytest.raises(_Crash):
        await env.manager(_CrashAfterSend(env.broker)).submit_approved(intent, approval_id)
    crashed = env.order(approval_id)
    assert crashed.status is OrderStatus.NEW  # recorded before the venue heard of it, never updated
    held = await env.broker.fetch("BTC/USD", crashed.client_order_id)
    assert held is not None and held.status is OrderStatus.FILLED

    restarted = env.manager()
    changed = await restarted.reconcile_on_start()
    assert [c.approval_id for c in changed if c.account == env.account] == [approval_id]
    record = env.order(approval_id)
    assert record.status is OrderStatus.FILLED and record.filled_quantity == held.filled_quantity
    assert _fills(env, record.id) == [(f.quantity, f.price) for f in held.fills]
    assert approvals.get_request(env.runtime.db, approval_id).status == "executed"

    again = await restarted.submit_approved(intent, approval_id)  # the approval message, redelivered
    assert again.id == record.id and again.status is OrderStatus.FILLED
    assert [o for o in await env.broker.reconcile([]) if o.client_order_id == record.client_order_id] == []
    assert len(_fills(env, record.id)) == 1
    with env.runtime.db.connection() as conn:
        actions = [
            r[0]
            for r in conn.execute(
                "SELECT action FROM audit_log WHERE subject = %s ORDER BY seq DESC LIMIT 1", (f"account:{env.account}",)
            )
        ]
    assert actions == ["execution.reconciled"]


async def test_a_new_order_the_venue_never_received_waits_for_the_submit_retry(env: Env) -> None:
    intent = env.intent()
    approval_id = await env.approved(intent)

    class _CrashBeforeSend(_CrashAfterSend):
        async def submit(self, order: ApprovedOrder) -> VenueOrder:
            raise _Crash

    with pytest.raises(_Crash):
        await env.manager(_CrashBeforeSend(env.broker)).submit_approved(intent, approval_id)
    restarted = env.manager()
    await restarted.reconcile_on_start()
    assert env.order(approval_id).status is OrderStatus.NEW  # untouched: the pending message will send it
    assert approvals.get_request(env.runtime.db, approval_id).status == "approved"
    record = await restarted.submit_approved(intent, approval_id)  # the retry goes through the gate again
    assert record.status is OrderStatus.FILLED


async def test_a_recorded_order_is_never_sent_if_the_gate_now_refuses_it(env: Env) -> None:
    intent = env.intent()
    approval_id = await env.approved(intent)

    class _CrashBeforeSend(_CrashAfterSend):
        async def submit(self, order: ApprovedOrder) -> VenueOrder:
            raise _Crash

    with pytest.raises(_Crash):
        await env.manager(_CrashBeforeSend(env.broker)).submit_approved(intent, approval_id)
    with env.runtime.db.connection() as conn:  # the approval ran out while the worker was down
        conn.execute(
            "UPDATE approval_requests SET expires_at = now() - interval '1 second' WHERE id = %s", (approval_id,)
        )
    with pytest.raises(GateRefusedError, match="expired"):
        await env.manager().submit_approved(intent, approval_id)
    record = env.order(approval_id)
    assert record.status is OrderStatus.REJECTED and record.reason is not None
    assert record.reason.startswith("never sent: refused") and "expired" in record.reason
    assert await env.broker.fetch("BTC/USD", record.client_order_id) is None
    assert approvals.get_request(env.runtime.db, approval_id).status == "expired"  # ran out: expired, with why


async def test_an_acknowledged_order_the_venue_forgot_is_expired_on_start(env: Env) -> None:
    """A paper venue keeps its book in memory: after a restart a resting order is gone and will never fill."""
    intent = env.intent(type="limit", price=Decimal(8500), quantity=Decimal("0.01"))
    approval_id = await env.approved(intent)
    resting = await env.manager().submit_approved(intent, approval_id)
    assert resting.status is OrderStatus.SUBMITTED
    fresh_venue = PaperBroker(PaperBrokerConfig(name=env.account, initial_balances={"USD": Decimal(100_000)}), env.feed)
    changed = await env.manager(fresh_venue).reconcile_on_start()
    record = env.order(approval_id)
    assert record.id in {c.id for c in changed}
    assert record.status is OrderStatus.EXPIRED and "no longer holds this order" in (record.reason or "")
    assert approvals.get_request(env.runtime.db, approval_id).status == "failed"


async def test_an_approved_dry_run_order_never_goes_out_of_a_live_worker(env: Env) -> None:
    intent = env.intent()
    assert intent.mode == "dry-run"
    approval_id = await env.approved(intent)
    live = env.manager()
    live.mode = "live"  # the same OMS in a process trading real money
    with pytest.raises(GateRefusedError, match="is for a dry-run order and this worker trades in live mode"):
        await live.submit_approved(intent, approval_id)
    assert env.order(approval_id) is None
    assert await env.broker.open_orders() == []
    assert approvals.get_request(env.runtime.db, approval_id).status == "failed"


async def test_worker_start_reconciles_and_audits_the_mode(env: Env) -> None:
    manager = env.manager()
    worker = ExecutionWorker(env.runtime, manager, name=f"w-{env.account}")
    await worker.startup()
    await worker.startup()  # once only
    with env.runtime.db.connection() as conn:
        rows = conn.execute(
            "SELECT payload FROM audit_log WHERE action = 'execution.started' AND subject = %s",
            (f"worker:w-{env.account}",),
        ).fetchall()
    assert len(rows) == 1
    payload = rows[0][0] if isinstance(rows[0][0], dict) else json.loads(rows[0][0])
    assert payload["mode"] == "dry-run" and payload["accounts"] == {env.account: "paper"}
    assert payload["live_confirmation"] == "not needed" and payload["key_permissions"] == {}


@pytest.mark.parametrize("withdrawals", [True, False])
async def test_a_live_start_checks_the_confirmation_and_refuses_keys_that_can_withdraw(
    settings: Settings, db: Database, unique: str, monkeypatch: pytest.MonkeyPatch, withdrawals: bool
) -> None:
    """Live mode end to end at start, against the loopback exchange (its /sapi apiRestrictions answer)."""
    restrictions = ApiKeyRestrictions(enable_withdrawals=withdrawals)
    with LoopbackExchange(LoopbackConfig(api_key_restrictions=restrictions)) as ex:
        account = f"live{unique}"
        live = settings.model_copy(
            update={
                "mode": "live",
                "accounts": [AccountSettings(name=account, venue="ccxt", exchange="binance", sandbox=False)],
                "exchange_api_key": SecretStr(ex.api_key),
                "exchange_api_secret": SecretStr(ex.secret),
                "exchange_urls": {"binance": ex.url},
            }
        )
        runtime = Runtime(settings=live, db=db, bus=InProcessBus())
        monkeypatch.setenv("IQTS_MODE", "live")
        monkeypatch.delenv(LIVE_CONFIRM_ENV, raising=False)
        monkeypatch.setattr(sys, "stdin", io.StringIO())  # no terminal to ask at, even under `pytest -s`
        with pytest.raises(ModeError, match="explicit confirmation"):  # no phrase, no terminal
            build_order_manager(runtime)
        monkeypatch.setenv(LIVE_CONFIRM_ENV, LIVE_CONFIRM_PHRASE)
        manager = build_order_manager(runtime)
        assert manager.mode == "live" and manager.mode_check is not None
        assert manager.mode_check.confirmation == "environment"
        worker = ExecutionWorker(runtime, manager, name=f"w-{account}")
        try:
            if withdrawals:
                with pytest.raises(WithdrawalKeyError, match=f"account {account}: .* withdrawal rights"):
                    await worker.startup()
            else:
                await worker.startup()
        finally:
            await manager.router.close()
        assert ex.order_submissions() == []
        assert ex.requests("GET", "/sapi/v1/account/apiRestrictions")
    with db.connection() as conn:
        row = conn.execute(
            "SELECT payload FROM audit_log WHERE action = 'execution.started' AND subject = %s",
            (f"worker:w-{account}",),
        ).fetchone()
    if withdrawals:
        assert row is None  # refused before it took any work
    else:
        assert row is not None
        payload = row[0] if isinstance(row[0], dict) else json.loads(row[0])
        assert payload["mode"] == "live" and payload["live_confirmation"] == "environment"
        assert payload["key_permissions"] == {account: "the key cannot withdraw"}
