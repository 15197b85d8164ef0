"""The trade journal of decisions and fills: one note per decided approval request and one per filled order.

Backtests and studies are journaled by the research service as they are stored. Decisions and fills happen in
other processes (the inbox, the execution worker), so the ``journal`` duty catches up on them from PostgreSQL,
the record of truth: each round reads the decisions and filled orders after its bookmark (kept in
``kb_docstore``, collection ``trade_journal``), writes their notes and moves the bookmark. A note is written again
when its order changes (one more fill) and is otherwise idempotent, so a round cut short repeats harmlessly.
Rationales are redacted as the logs are (a secret pasted into one never reaches the index).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from pydantic import BaseModel

from engine.errors import ValidationFailedError
from engine.execution.models import Fill
from engine.execution.oms import OrderRecord, fills_of, orders_filled_after
from engine.intents import intent_data
from engine.risk.models import Verdict
from engine.store import approval_requests
from engine.store.approval_requests import ApprovalRequest
from engine.store.database import Database
from engine.telemetry import get_logger, redact_text
from knowledge.models import JournalKind

if TYPE_CHECKING:
    from knowledge.base import KnowledgeBase
    from knowledge.docstore import PostgresKVStore

log = get_logger(__name__)

BOOKMARK_COLLECTION: Final = "trade_journal"
BOOKMARK_KEY: Final = "bookmark"
MAX_RATIONALE: Final = 1_000
_INTENT_FIELDS: Final = ("account", "symbol", "side", "type", "quantity", "price", "stop_price", "mode", "strategy")


class Bookmark(BaseModel):
    """The last decision and the last order update journaled (``None``: from the beginning)."""

    decided_at: datetime | None = None
    approval_id: str = ""
    order_updated_at: datetime | None = None
    order_id: int = 0


class JournalRound(BaseModel):
    decisions: int = 0
    orders: int = 0


def _number(value: Decimal | None) -> str:
    return "n/a" if value is None else f"{value.normalize():f}"


def _risk_line(request: ApprovalRequest) -> str:
    if not request.risk_verdict:
        return "none for this kind"
    return Verdict.model_validate(request.risk_verdict).summary()


def decision_note(request: ApprovalRequest) -> tuple[str, str, dict[str, Any]]:
    """Title, body and metadata of the journal note about a decided request."""
    decision = "approved" if request.status in ("approved", "executed", "failed") else request.status
    when = f"{request.decided_at:%Y-%m-%d %H:%M:%S} UTC" if request.decided_at else "unknown time"
    rationale = redact_text(request.rationale.strip())[:MAX_RATIONALE] or "none given"
    lines = [
        f"Approval request {request.id} was {decision} by {request.decided_by} at {when}: {request.describe()}.",
        f"Requested by {request.requested_by} via {request.requester_kind}; risk check: {_risk_line(request)}.",
        f"Rationale given: {rationale}",
    ]
    if request.decision_reason:
        lines.append(f"Reason for the decision: {redact_text(request.decision_reason)}")
    if request.status != decision:
        lines.append(f"Outcome: {request.status}.")
    intent = intent_data(request.intent)
    metadata: dict[str, Any] = {
        "approval_id": request.id,
        "request_kind": request.kind,
        "decision": decision,
        "status": request.status,
        "decided_by": request.decided_by,
        "requested_by": request.requested_by,
        **{k: intent[k] for k in _INTENT_FIELDS if intent.get(k) is not None},
    }
    return f"Decision {request.id}: {decision} {request.describe()}", "\n".join(lines), metadata


def fill_note(order: OrderRecord, fills: list[Fill]) -> tuple[str, str, dict[str, Any]]:
    """Title, body and metadata of the journal note about a filled (or partly filled) order."""
    fees: dict[str, Decimal] = {}
    for fill in fills:
        fees[fill.fee_currency] = fees.get(fill.fee_currency, Decimal(0)) + fill.fee
    fee_text = ", ".join(f"{_number(v)} {c}" for c, v in sorted(fees.items())) or "none"
    lines = [
        f"Order {order.id} ({order.client_order_id}) for approval {order.approval_id}: {order.side} "
        f"{_number(order.quantity)} {order.symbol} {order.type} on {order.venue} (account {order.account}); "
        f"status {order.status.value}, filled {_number(order.filled_quantity)} at an average price of "
        f"{_number(order.average_price)}; fees {fee_text}.",
        f"{len(fills)} fill(s):",
        *(
            f"- {_number(f.quantity)} at {_number(f.price)}, fee {_number(f.fee)} {f.fee_currency}, {f.liquidity}, "
            f"{f.ts:%Y-%m-%d %H:%M:%S} UTC"
            for f in fills
        ),
    ]
    metadata: dict[str, Any] = {
        "order_id": order.id,
        "approval_id": order.approval_id,
        "client_order_id": order.client_order_id,
        "account": order.account,
        "venue": order.venue,
        "symbol": order.symbol,
        "side": order.side,
        "status": order.status.value,
        "filled_quantity": _number(order.filled_quantity),
        "average_price": _number(order.average_price),
        "fills": len(fills),
    }
    return f"Fills of order {order.id}: {order.side} {order.symbol}", "\n".join(lines), metadata


class TradeJournal:
    """Catches the journal up on decisions and fills; the knowledge base (and its embedder) is built on the first
    note to write, so a process with nothing to journal never loads the model."""

    def __init__(self, db: Database, kb: KnowledgeBase | None = None, *, page: int = 100) -> None:
        self.db = db
        self.page = page
        self._kb = kb
        self._store: PostgresKVStore | None = None

    @property
    def kb(self) -> KnowledgeBase:
        if self._kb is None:
            from knowledge.base import KnowledgeBase

            self._kb = KnowledgeBase(self.db)
        return self._kb

    @property
    def _bookmarks(self) -> PostgresKVStore:
        """The bookmark's store, imported on first use: ``knowledge.docstore`` pulls in LlamaIndex (about 2 s),
        which must not delay the start of the worker that runs this duty."""
        if self._store is None:
            from knowledge.docstore import PostgresKVStore

            self._store = PostgresKVStore(self.db)
        return self._store

    def bookmark(self) -> Bookmark:
        stored = self._bookmarks.get(BOOKMARK_KEY, collection=BOOKMARK_COLLECTION)
        return Bookmark.model_validate(stored) if stored else Bookmark()

    def _save(self, mark: Bookmark) -> None:
        self._bookmarks.put(BOOKMARK_KEY, mark.model_dump(mode="json"), collection=BOOKMARK_COLLECTION)

    def _write(self, kind: JournalKind, subject: str, title: str, body: str, metadata: dict[str, Any]) -> None:
        try:
            self.kb.journal_entry(kind, subject, title, body, metadata)
        except ValidationFailedError as error:  # a note that can never be written must not hold up the rest
            log.warning("kb.journal_skipped", kind=kind, subject=subject, error=str(error))

    def catch_up(self) -> JournalRound:
        """Journal every decision and filled order after the bookmark (page by page); what was written."""
        done = JournalRound()
        mark = self.bookmark()
        while True:
            with self.db.connection() as conn:
                decided = approval_requests.decided_after(
                    conn, (mark.decided_at, mark.approval_id) if mark.decided_at else None, limit=self.page
                )
                orders = orders_filled_after(
                    conn, (mark.order_updated_at, mark.order_id) if mark.order_updated_at else None, limit=self.page
                )
                fills = {order.id: fills_of(conn, order.id) for order in orders}
            if not decided and not orders:
                return done
            for request in decided:
                self._write("approval", request.id, *decision_note(request))
                mark = mark.model_copy(update={"decided_at": request.decided_at, "approval_id": request.id})
                self._save(mark)
                done.decisions += 1
            for order in orders:
                self._write("fill", str(order.id), *fill_note(order, fills[order.id]))
                mark = mark.model_copy(update={"order_updated_at": order.updated_at, "order_id": order.id})
                self._save(mark)
                done.orders += 1


async def run_journal(
    db: Database, stop: asyncio.Event, *, interval_s: float, journal: TradeJournal | None = None
) -> None:
    """The ``journal`` duty: catch up every ``interval_s`` until ``stop`` is set (a failed round is logged and
    retried on the next)."""
    journal = journal or TradeJournal(db)
    log.info("kb.journal_started", interval_s=interval_s)
    while not stop.is_set():
        try:
            written = await asyncio.to_thread(journal.catch_up)
            if written.decisions or written.orders:
                log.info("kb.journal_round", decisions=written.decisions, orders=written.orders)
        except Exception:
            log.exception("kb.journal_failed")
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
        except TimeoutError:
            continue
