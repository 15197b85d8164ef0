"""The trade journal of decisions and fills (the ``journal`` duty): a real order proposed, approved and filled on
the paper venue, a rejected one, then the journal caught up from PostgreSQL; its notes are searchable, written
once, rewritten when an order changes, and never hold a secret pasted into a rationale."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from approvals import service as approvals
from approvals.service import Requester
from engine.bus import InProcessBus
from engine.execution.models import OrderIntent, OrderStatus
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database
from engine.telemetry import REDACTED, register_secrets
from knowledge.base import KnowledgeBase
from knowledge.embeddings.base import Embedder
from knowledge.trade_journal import TradeJournal, run_journal
from tests.support.orders import APPROVER, approve_market_buy, paper_worker, until_order_is
from tests.support.polling import eventually

TRADER = Requester(user="tom-trader", kind="mcp", session="journal")
SECRET = "sk-journal-test-0123456789abcdef"


@pytest.fixture
def fast(settings: Settings, sample_loaded: None) -> Settings:
    return settings.model_copy(update={"bus_block_ms": 50, "bus_reclaim_idle_ms": 200, "execution_sweep_s": 0.2})


@pytest.fixture
def kb(db: Database, minilm: Embedder) -> KnowledgeBase:
    return KnowledgeBase(db, minilm)


async def _filled_and_rejected(runtime: Runtime) -> tuple[str, str]:
    filled = await approve_market_buy(runtime, TRADER)
    stop = asyncio.Event()
    task = asyncio.create_task(paper_worker(runtime, "journal-worker").run(stop))
    try:
        await until_order_is(runtime, filled, OrderStatus.FILLED)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    register_secrets([SECRET])
    intent = OrderIntent(account="paper", symbol="BTC/USD", side="buy", type="market", quantity=Decimal("0.02"))
    pending = await approvals.propose_order(
        runtime.db, runtime.bus, runtime.settings, intent, TRADER, f"add to the position; my key is {SECRET}"
    )
    rejected = await approvals.decide(
        runtime.db, runtime.bus, runtime.settings, pending.id, APPROVER, approve=False, auth="password",
        reason="no adding into this rally",
    )  # fmt: skip
    assert rejected.status == "rejected"
    return filled, pending.id


async def test_decisions_and_fills_are_journaled_once_and_found(
    fast: Settings, db: Database, kb: KnowledgeBase
) -> None:
    runtime = Runtime(settings=fast, db=db, bus=InProcessBus())
    filled, rejected = await _filled_and_rejected(runtime)
    journal = TradeJournal(db, kb)
    first = journal.catch_up()
    assert first.decisions >= 2 and first.orders >= 1  # this module's orders (earlier tests may have made more)

    approved_note = kb.store.chunks_of(f"journal://approval/{filled}")
    assert approved_note and f"was approved by {APPROVER.username}" in approved_note[0].text
    assert "buy 0.01 BTC/USD market on paper" in approved_note[0].text
    rejected_text = "\n".join(c.text for c in kb.store.chunks_of(f"journal://approval/{rejected}"))
    assert "was rejected by" in rejected_text and "no adding into this rally" in rejected_text
    assert SECRET not in rejected_text and REDACTED in rejected_text

    with db.connection() as conn:
        row = conn.execute("SELECT id, average_price FROM orders WHERE approval_id = %s", (filled,)).fetchone()
    assert row is not None
    order_id, average = row
    fill_text = "\n".join(c.text for c in kb.store.chunks_of(f"journal://fill/{order_id}"))
    assert f"for approval {filled}: buy 0.01 BTC/USD market on paper" in fill_text
    assert f"status filled, filled 0.01 at an average price of {average.normalize():f}" in fill_text
    assert "1 fill(s):" in fill_text

    hits = kb.search("the order that bought 0.01 BTC on paper and its fills", k=5, kinds=["journal"])
    assert any(h.source == f"journal://fill/{order_id}" for h in hits), [h.citation for h in hits]
    hits = kb.search("which order did the approver reject and why", k=5, kinds=["journal"])
    assert any(h.source == f"journal://approval/{rejected}" for h in hits), [h.citation for h in hits]

    assert journal.catch_up().model_dump() == {"decisions": 0, "orders": 0}  # nothing new: nothing written

    with db.connection() as conn:  # the order changes (as on a late fill): its note is written again
        conn.execute("UPDATE orders SET updated_at = now() WHERE id = %s", (order_id,))
    assert journal.catch_up().model_dump() == {"decisions": 0, "orders": 1}


async def test_the_duty_catches_up_until_stopped(fast: Settings, db: Database, kb: KnowledgeBase) -> None:
    runtime = Runtime(settings=fast, db=db, bus=InProcessBus())
    journal = TradeJournal(db, kb)
    journal.catch_up()
    stop = asyncio.Event()
    task = asyncio.create_task(run_journal(db, stop, interval_s=0.05, journal=journal))
    try:
        approval_id = await approve_market_buy(runtime, TRADER, quantity="0.03")
        await eventually(
            "the decision to be journaled", lambda: kb.store.chunks_of(f"journal://approval/{approval_id}"), timeout=60
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert task.done() and task.exception() is None
