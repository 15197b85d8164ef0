"""The order path end to end on the real database: proposal, human decision, gate, risk #2, OMS, paper venue."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from approvals import service as approvals
from approvals.service import Requester
from approvals.users import Role, User
from engine.bus import InProcessBus
from engine.execution.broker import ApprovedOrder, UnapprovedOrderError
from engine.execution.gate import GateRefusedError
from engine.execution.models import OrderIntent, OrderStatus
from engine.execution.oms import OrderManager, list_orders
from engine.execution.paper import ManualPriceFeed, PaperBroker, PaperBrokerConfig, PriceBar
from engine.execution.router import Router
from engine.execution.worker import APPROVED_TOPIC, KILL_TOPIC, ExecutionWorker, build_order_manager
from engine.portfolio.service import load_ledger
from engine.risk import killswitch
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database

REPO = Path(__file__).resolve().parents[3]
APPROVER = User(id=-1, username="ann-approver", role=Role.APPROVER)
TRADER = Requester(user="tom-trader", kind="mcp", session="test")
PRICE = Decimal(8700)  # near the last stored BTC/USD close (8,709.49), which risk checks use


def _bar(close: Decimal, low: Decimal | None = None, high: Decimal | None = None) -> PriceBar:
    now_ms = int(time.time() * 1000)
    low = low if low is not None else close
    high = high if high is not None else close
    return PriceBar(now_ms, close, high, low, close, Decimal(1000))


@pytest.fixture
async def env(
    settings: Settings, db: Database, sample_loaded: None
) -> AsyncIterator[tuple[Runtime, OrderManager, PaperBroker, ManualPriceFeed]]:
    """A runtime on the test database with a paper venue fed by hand, and a clean kill switch and ledger."""
    with db.connection() as conn:
        conn.execute("DELETE FROM system_state WHERE key IN ('kill_switch', 'breakers', 'ledger')")
    feed = ManualPriceFeed()
    feed.push("BTC/USD", _bar(PRICE))
    broker = PaperBroker(PaperBrokerConfig(name="paper", initial_balances={"USD": Decimal(100_000)}), feed)
    runtime = Runtime(settings=settings, db=db, bus=InProcessBus())
    manager = build_order_manager(runtime, Router({"paper": broker}))
    yield runtime, manager, broker, feed
    with db.connection() as conn:
        conn.execute("DELETE FROM system_state WHERE key IN ('kill_switch', 'breakers')")


def _intent(**changes: object) -> OrderIntent:
    base: dict[str, object] = {
        "account": "paper",
        "symbol": "BTC/USD",
        "side": "buy",
        "type": "market",
        "quantity": Decimal("0.05"),
    }
    return OrderIntent.model_validate(base | changes)


async def _approved(runtime: Runtime, intent: OrderIntent) -> str:
    request = await approvals.propose_order(runtime.db, runtime.bus, runtime.settings, intent, TRADER, "test")
    assert request.status == "pending", request.decision_reason
    decided = await approvals.decide(
        runtime.db,
        runtime.bus,
        runtime.settings,
        request.id,
        APPROVER,
        approve=True,
        auth="password",
        seen_hash=request.intent_hash,
    )
    assert decided.status == "approved"
    return request.id


async def test_approved_market_order_fills_and_is_recorded_everywhere(env: tuple) -> None:
    runtime, manager, _broker, _ = env
    intent = _intent()
    approval_id = await _approved(runtime, intent)
    record = await manager.submit_approved(intent, approval_id)
    assert record.status is OrderStatus.FILLED
    assert record.filled_quantity == Decimal("0.05")
    request = approvals.get_request(runtime.db, approval_id)
    assert request.status == "executed" and request.result is not None
    assert request.result["status"] == "filled"
    with runtime.db.connection() as conn:
        fills = conn.execute("SELECT quantity, price, fee FROM fills WHERE order_id = %s", (record.id,)).fetchall()
        events = [
            r[0] for r in conn.execute("SELECT event FROM order_events WHERE order_id = %s ORDER BY id", (record.id,))
        ]
        actions = {
            r[0]
            for r in conn.execute(
                "SELECT action FROM audit_log WHERE subject IN (%s, %s)",
                (f"order:{record.id}", f"approval:{approval_id}"),
            )
        }
    assert len(fills) == 1 and fills[0][0] == Decimal("0.05") and fills[0][1] >= PRICE
    assert events == ["created", "submit", "fill"]
    assert {"approval.requested", "approval.approved", "risk.verdict", "order.created", "order.fill"} <= actions
    ledger = load_ledger(runtime.db, runtime.settings)
    quantity, avg_cost = ledger.position("paper", "BTC/USD")
    assert quantity >= Decimal("0.05") and avg_cost > 0


async def test_the_same_approval_submitted_twice_makes_one_order(env: tuple) -> None:
    runtime, manager, broker, _ = env
    intent = _intent(quantity=Decimal("0.02"))
    approval_id = await _approved(runtime, intent)
    first, second = await asyncio.gather(
        manager.submit_approved(intent, approval_id), manager.submit_approved(intent, approval_id)
    )
    assert first.id == second.id
    venue_orders = [o for o in await broker.open_orders() if o.client_order_id == first.client_order_id]
    fetched = await broker.fetch("BTC/USD", first.client_order_id)
    assert fetched is not None and not venue_orders  # filled once, nothing left open
    with runtime.db.connection() as conn:
        n = conn.execute("SELECT count(*) FROM orders WHERE approval_id = %s", (approval_id,)).fetchone()
        f = conn.execute("SELECT count(*) FROM fills WHERE order_id = %s", (first.id,)).fetchone()
    assert n == (1,) and f == (1,)


@pytest.mark.parametrize(
    "change",
    [
        {"quantity": Decimal("0.051")},
        {"side": "sell"},
        {"symbol": "ETH/USD"},
        {"type": "limit", "price": Decimal(7000)},
        {"time_in_force": "ioc"},
        {"account": "other"},
    ],
)
async def test_any_change_after_approval_needs_a_new_approval(env: tuple, change: dict[str, object]) -> None:
    runtime, manager, _, _ = env
    approval_id = await _approved(runtime, _intent())
    with pytest.raises(GateRefusedError, match="differs from what was approved"):
        await manager.submit_approved(_intent(**change), approval_id)
    with runtime.db.connection() as conn:
        assert conn.execute("SELECT count(*) FROM orders WHERE approval_id = %s", (approval_id,)).fetchone() == (0,)


async def test_pending_rejected_and_expired_approvals_release_nothing(env: tuple) -> None:
    runtime, manager, _, _ = env
    intent = _intent()
    pending = await approvals.propose_order(runtime.db, runtime.bus, runtime.settings, intent, TRADER)
    with pytest.raises(GateRefusedError, match="pending, not approved"):
        await manager.submit_approved(intent, pending.id)
    rejected = await approvals.propose_order(runtime.db, runtime.bus, runtime.settings, intent, TRADER)
    await approvals.decide(
        runtime.db,
        runtime.bus,
        runtime.settings,
        rejected.id,
        APPROVER,
        approve=False,
        auth="password",
        reason="not today",
    )
    with pytest.raises(GateRefusedError, match="not approved"):
        await manager.submit_approved(intent, rejected.id)
    approval_id = await _approved(runtime, intent)
    with runtime.db.connection() as conn:  # the approval ran out before the worker got to it
        conn.execute(
            "UPDATE approval_requests SET expires_at = now() - interval '1 second' WHERE id = %s", (approval_id,)
        )
    with pytest.raises(GateRefusedError, match="expired"):
        await manager.submit_approved(intent, approval_id)
    ran_out = approvals.get_request(runtime.db, approval_id)  # expired with the reason, not a generic failure
    assert ran_out.status == "expired" and ran_out.result is not None and "expired" in ran_out.result["reason"]


async def test_tokens_cannot_decide_and_rejections_need_a_reason(env: tuple) -> None:
    runtime, _, _, _ = env
    request = await approvals.propose_order(runtime.db, runtime.bus, runtime.settings, _intent(), TRADER)
    with pytest.raises(Exception, match="signed-in person"):
        await approvals.decide(
            runtime.db, runtime.bus, runtime.settings, request.id, APPROVER, approve=True, auth="token"
        )
    with pytest.raises(Exception, match="needs a reason"):
        await approvals.decide(
            runtime.db, runtime.bus, runtime.settings, request.id, APPROVER, approve=False, auth="password"
        )
    trader = User(id=-2, username="tom-trader", role=Role.TRADER)
    with pytest.raises(Exception, match="needs approver"):
        await approvals.decide(
            runtime.db, runtime.bus, runtime.settings, request.id, trader, approve=True, auth="password"
        )
    four_eyes = runtime.settings.model_copy(update={"four_eyes": True})
    self_approver = User(id=-3, username="tom-trader", role=Role.APPROVER)
    with pytest.raises(Exception, match="four-eyes"):
        await approvals.decide(
            runtime.db, runtime.bus, four_eyes, request.id, self_approver, approve=True, auth="password"
        )


async def test_risk_check_two_catches_what_changed_since_approval(env: tuple) -> None:
    runtime, manager, _, _ = env
    intent = _intent()
    approval_id = await _approved(runtime, intent)
    # between approval and submission the market moved: the same quantity is now far too large
    manager.snapshots = _with_price(manager, Decimal(200_000))
    record = await manager.submit_approved(intent, approval_id)
    assert record.status is OrderStatus.REJECTED
    assert record.reason is not None and "max_order_notional" in record.reason
    assert approvals.get_request(runtime.db, approval_id).status == "failed"


def _with_price(manager: OrderManager, price: Decimal):  # type: ignore[no-untyped-def]
    original = manager.snapshots

    def snapshots():  # type: ignore[no-untyped-def]
        portfolio, market = original()
        return portfolio, market.model_copy(update={"last_prices": {**market.last_prices, "BTC/USD": price}})

    return snapshots


async def test_worker_consumes_approvals_and_kill_switch_cancels_open_orders(env: tuple) -> None:
    runtime, manager, broker, _ = env
    worker = ExecutionWorker(runtime, manager, name="test-worker")
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        resting = _intent(type="limit", price=Decimal(8400), quantity=Decimal("0.01"))
        approval_id = await _approved(runtime, resting)  # the decision publishes on orders.approved
        deadline = time.monotonic() + 10
        record = None
        while time.monotonic() < deadline:
            with runtime.db.connection() as conn:
                from engine.execution.oms import get_order

                record = get_order(conn, approval_id=approval_id)
            if record is not None and record.status is OrderStatus.SUBMITTED:
                break
            await asyncio.sleep(0.05)
        assert record is not None and record.status is OrderStatus.SUBMITTED
        started = time.monotonic()  # how fast: `iqts bench execution` (the kill-switch rows)
        await killswitch.engage(runtime.db, runtime.bus, "tom-trader", "test: stop everything")
        while time.monotonic() - started < 30:
            open_now = [o for o in list_orders(runtime.db, open_only=True) if o.approval_id == approval_id]
            if not open_now:
                break
            await asyncio.sleep(0.02)
        assert not open_now
        venue = await broker.fetch("BTC/USD", record.client_order_id)
        assert venue is not None and venue.status is OrderStatus.CANCELLED
        # and new orders are blocked: at proposal (risk #1) and at the gate
        blocked = await approvals.propose_order(runtime.db, runtime.bus, runtime.settings, _intent(), TRADER)
        assert blocked.status == "rejected" and "kill switch" in (blocked.decision_reason or "")
    finally:
        stop.set()
        await task
    assert APPROVED_TOPIC and KILL_TOPIC


async def test_only_the_gate_can_release_an_order_to_a_broker(env: tuple) -> None:
    _, _, broker, _ = env
    forged = ApprovedOrder(_intent(), "apr_forged")
    with pytest.raises(UnapprovedOrderError):
        await broker.submit(forged)
    assert await broker.fetch("BTC/USD", forged.client_order_id) is None


# The execution benchmark times a paper venue on its own: it seals its orders itself and submits them directly.
# It is the one exception, it never reaches anything but an in-memory PaperBroker, and it is named here.
BENCH_EXCEPTION = "bench/execution_bench.py"


def test_no_code_outside_the_oms_submits_to_a_broker() -> None:
    """Static guard: `.submit(` on a broker only in the OMS; the seal `_release` only in the gate."""
    offenders = []
    bench = (REPO / BENCH_EXCEPTION).read_text(encoding="utf-8")
    assert "ccxt" not in bench and "dry-run" in bench  # paper venues only (dry-run mode refuses any other)
    for path in REPO.glob("**/*.py"):
        rel = path.relative_to(REPO).as_posix()
        if rel.startswith((".venv/", ".iqts/", "tests/")):
            continue
        text = path.read_text(encoding="utf-8")
        uses_seal = re.search(r"broker\._release\(|import[^\n]*\b_release\b", text)
        if uses_seal and rel not in ("engine/execution/gate.py", "engine/execution/broker.py", BENCH_EXCEPTION):
            offenders.append(f"{rel}: _release")
        if re.search(r"(broker|venue|adapter)\w*\.submit\(", text) and rel not in (
            "engine/execution/oms.py",
            BENCH_EXCEPTION,
        ):
            offenders.append(f"{rel}: broker.submit")
        if re.search(r"\.create_order\(", text) and not rel.startswith(("engine/execution/ccxt/", "engine/loopback/")):
            offenders.append(f"{rel}: create_order")
    assert offenders == []
