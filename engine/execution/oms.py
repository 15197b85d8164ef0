"""The order management system: the one path from an approved intent to a broker, and back.

``submit_approved(intent, approval_id)`` is the only function that calls ``Broker.submit``. It

1. takes the approval's submission lock (one submission per approval at a time, across processes), then the
   approval row lock, and finds any order already made for this approval (idempotency: the client order id
   derives from the approval id, and ``orders.approval_id`` is unique);
2. releases the intent through the gate (approved, same hash, unexpired, the process's trading mode, kill
   switch off);
3. runs the pre-trade risk check again on the current portfolio and market (risk check #2);
4. records the order (status ``new``) and commits *before* talking to the venue, so a crash afterwards is
   recovered by reconciling with the venue by client order id, never by sending a second order;
5. submits, then records every state change, fill, audit row and metric, and reports the outcome on the
   approval and on the bus.

An order recorded ``new`` by an earlier attempt (a crash, a lost answer) is first looked up at the venue by
client order id; only if the venue provably does not hold it is it released through the gate again and sent.
``reconcile_on_start`` brings every not-final order in line with its venue when a worker starts.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from psycopg import Connection
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from engine import chaos
from engine.audit.log import append as audit
from engine.bus import Bus
from engine.errors import ConfigError, IQTSError
from engine.execution import gate
from engine.execution.broker import (
    ApprovedOrder,
    OrderNotCancellableError,
    VenueOrder,
    VenueRejectedError,
    VenueUnavailableError,
    receive_window_s,
)
from engine.execution.models import Fill, OrderIntent, OrderStatus
from engine.execution.modes import ModeCheck
from engine.execution.router import Router
from engine.portfolio.models import PortfolioSnapshot
from engine.risk.check import check
from engine.risk.models import MarketSnapshot, TradingControls, Verdict
from engine.risk.policy import RiskPolicy
from engine.settings import TradingMode
from engine.store import approval_requests
from engine.store.database import Database
from engine.telemetry import get_logger

log = get_logger(__name__)

ORDER_UPDATES_TOPIC = "orders.updates"
WORKER_ACTOR = "execution-worker"

# (portfolio snapshot, market snapshot) of the moment; policy; trading controls
SnapshotProvider = Callable[[], tuple[PortfolioSnapshot, MarketSnapshot]]
PolicyProvider = Callable[[], RiskPolicy]
ControlsProvider = Callable[[], TradingControls]


class OrderRecord(BaseModel):
    """An order as the OMS knows it."""

    id: int
    approval_id: str
    client_order_id: str
    account: str
    venue: str
    symbol: str
    side: str
    type: str
    quantity: Decimal
    price: Decimal | None
    status: OrderStatus
    filled_quantity: Decimal
    average_price: Decimal | None
    venue_order_id: str | None
    reason: str | None
    created_at: datetime
    updated_at: datetime


_ORDER_COLUMNS = (
    "id, approval_id, client_order_id, account, venue, symbol, side, type, quantity, price, status, "
    "filled_quantity, average_price, venue_order_id, reason, created_at, updated_at"
)


def _record(row: tuple[Any, ...]) -> OrderRecord:
    keys = [c.strip() for c in _ORDER_COLUMNS.split(",")]
    return OrderRecord.model_validate(dict(zip(keys, row, strict=True)))


def get_order(
    conn: Connection[TupleRow], *, approval_id: str | None = None, order_id: int | None = None
) -> OrderRecord | None:
    if approval_id is not None:
        row = conn.execute(f"SELECT {_ORDER_COLUMNS} FROM orders WHERE approval_id = %s", (approval_id,)).fetchone()
    else:
        row = conn.execute(f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = %s", (order_id,)).fetchone()
    return None if row is None else _record(row)


def get_order_by_client_id(conn: Connection[TupleRow], client_order_id: str) -> OrderRecord | None:
    row = conn.execute(f"SELECT {_ORDER_COLUMNS} FROM orders WHERE client_order_id = %s", (client_order_id,)).fetchone()
    return None if row is None else _record(row)


def list_orders(db: Database, *, open_only: bool = False, limit: int = 100) -> list[OrderRecord]:
    where = "WHERE status IN ('new', 'submitted', 'partially_filled')" if open_only else ""
    with db.connection() as conn:
        rows = conn.execute(f"SELECT {_ORDER_COLUMNS} FROM orders {where} ORDER BY id DESC LIMIT %s", (limit,))
        return [_record(r) for r in rows]


def orders_filled_after(
    conn: Connection[TupleRow], after: tuple[datetime, int] | None, *, limit: int = 100
) -> list[OrderRecord]:
    """Orders with at least one fill, least recently updated first, after the ``(updated_at, id)`` given: a reader
    catching up on fills (the trade journal) pages with the last one and sees an order again when it changes."""
    at, last = after if after is not None else (None, 0)
    rows = conn.execute(
        f"SELECT {_ORDER_COLUMNS} FROM orders WHERE filled_quantity > 0 "
        "AND (%(at)s::timestamptz IS NULL OR (updated_at, id) > (%(at)s::timestamptz, %(id)s)) "
        "ORDER BY updated_at, id LIMIT %(n)s",
        {"at": at, "id": last, "n": limit},
    )
    return [_record(r) for r in rows]


def fills_of(conn: Connection[TupleRow], order_id: int) -> list[Fill]:
    """An order's recorded fills, oldest first."""
    rows = conn.execute(
        "SELECT fill_key, symbol, side, quantity, price, fee, fee_currency, liquidity, ts FROM fills "
        "WHERE order_id = %s ORDER BY id",
        (order_id,),
    )
    return [
        Fill(
            order_id=str(order_id),
            fill_id=r[0],
            symbol=r[1],
            side=r[2],
            quantity=r[3],
            price=r[4],
            fee=r[5],
            fee_currency=r[6],
            liquidity=r[7],
            ts=r[8],
        )
        for r in rows
    ]


class SubmissionBusyError(IQTSError):
    """Another worker process is submitting this approval right now; try again later (nothing was sent)."""


def _refused_status(refusal: gate.GateRefusedError) -> Literal["failed", "expired"]:
    """An approval that ran out before its order could go out ends expired (with the reason); other refusals fail."""
    return "expired" if isinstance(refusal, gate.ApprovalExpiredError) else "failed"


DEFAULT_LEASE_S = 30.0
LEASE_MARGIN_S = 2.0
"""A lease must outlast the venue's receive window by this much (clock skew between us and the venue)."""


class OrderLease(BaseModel):
    """Who holds the submission of an order still ``new``, since when, until when."""

    owner: str | None
    since: datetime | None
    until: datetime | None
    live: bool


def _lease(conn: Connection[TupleRow], order_id: int) -> OrderLease:
    row = conn.execute(
        "SELECT lease_owner, lease_since, lease_until, coalesce(lease_until > now(), false) FROM orders WHERE id = %s",
        (order_id,),
    ).fetchone()
    assert row is not None
    return OrderLease(owner=row[0], since=row[1], until=row[2], live=row[3])


def check_lease_covers_receive_window(lease_s: float, router: Router) -> None:
    """Refuse (ConfigError) a lease not longer than some account's venue receive window plus the margin: with it, a
    first request still travelling when the lease runs out could be accepted by the venue after a resend."""
    for account in router.accounts:
        window = receive_window_s(router.broker(account))
        if window is None:
            log.warning("oms.venue_without_receive_window", account=account, lease_s=lease_s)
        elif lease_s < window + LEASE_MARGIN_S:
            raise ConfigError(
                f"IQTS_EXECUTION_LEASE_S={lease_s:g} is too short for account {account}: its venue accepts a request "
                f"up to {window:g}s after it was signed, so the lease must be at least {window + LEASE_MARGIN_S:g}s "
                "(raise IQTS_EXECUTION_LEASE_S or lower the account's receive_window_ms)"
            )


_SUBMIT_LOCK_NAMESPACE = 0x0A55_1D0E  # pg advisory lock namespace: one submission per approval at a time


class OrderManager:
    """Submits approved orders and follows them to the end."""

    def __init__(
        self,
        db: Database,
        bus: Bus,
        router: Router,
        *,
        mode: TradingMode,
        snapshots: SnapshotProvider,
        policy: PolicyProvider,
        controls: ControlsProvider,
        on_verdict: Callable[[Verdict, str], None] | None = None,
        on_update: Callable[[OrderRecord, VenueOrder | None, float | None], None] | None = None,
        mode_check: ModeCheck | None = None,
        owner: str | None = None,
        lease_s: float = DEFAULT_LEASE_S,
    ) -> None:
        self.db = db
        self.owner = owner or f"{socket.gethostname()}-{os.getpid()}"
        self.lease_s = lease_s
        self.bus = bus
        self.router = router
        self.mode = mode
        self.snapshots = snapshots
        self.policy = policy
        self.controls = controls
        self.on_verdict = on_verdict
        self.on_update = on_update
        self.mode_check = mode_check
        self._local_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._publishing: set[asyncio.Task[None]] = set()

    # -- the one path to a broker ------------------------------------------------------------------
    async def submit_approved(self, intent: OrderIntent, approval_id: str) -> OrderRecord:
        """Submit the order a human approved (idempotent: a second call never makes a second order).

        One submission per approval at a time: concurrent calls in this process wait for each other (the later
        one then finds the order made); a call while another process holds the approval's advisory lock raises
        ``SubmissionBusyError`` (the worker leaves the message pending and retries it later).
        """
        lock = self._local_locks.get(approval_id)
        if lock is None:
            lock = asyncio.Lock()
            self._local_locks[approval_id] = lock
        async with lock:
            # held (an open transaction on its own connection) until the venue has answered and it is recorded;
            # a crash ends the session and releases it
            with self.db.connection() as guard:
                row = guard.execute(
                    "SELECT pg_try_advisory_xact_lock(%s, hashtext(%s))", (_SUBMIT_LOCK_NAMESPACE, approval_id)
                ).fetchone()
                if row is None or not row[0]:
                    raise SubmissionBusyError(
                        f"approval {approval_id} is being submitted by another worker right now; nothing was sent"
                    )
                return await self._submit(intent, approval_id)

    async def _submit(self, intent: OrderIntent, approval_id: str) -> OrderRecord:
        approved: ApprovedOrder | None
        with self.db.connection() as conn:
            stored = approval_requests.decision_state(conn, approval_id, for_update=True)
            if stored is not None and stored.intent_hash != intent.intent_hash():
                # checked before anything else, even for an order already made: a changed intent never rides on
                # an earlier approval (it is refused, and the approval keeps its own state)
                reason = (
                    f"refused: the order differs from what was approved in {approval_id}; "
                    "any change needs a new approval"
                )
                audit(conn, WORKER_ACTOR, "order.refused", f"approval:{approval_id}", {"reason": reason})
                conn.commit()
                raise gate.GateRefusedError(reason)
            existing = get_order(conn, approval_id=approval_id)
            if existing is not None and existing.status is not OrderStatus.NEW:
                return existing  # already submitted (or finished): nothing to send
            if existing is None:
                try:
                    approved = gate.release(conn, approval_id, intent, mode=self.mode)
                except gate.GateRefusedError as refusal:
                    # recorded in a transaction of its own (this one rolls back as the error leaves it)
                    conn.rollback()
                    audit(conn, WORKER_ACTOR, "order.refused", f"approval:{approval_id}", {"reason": str(refusal)})
                    self._finish_approval(conn, approval_id, _refused_status(refusal), {"reason": str(refusal)})
                    conn.commit()
                    raise
                verdict = self._risk_check(intent)
                audit(
                    conn,
                    WORKER_ACTOR,
                    "risk.verdict",
                    f"approval:{approval_id}",
                    {"stage": "submission", **verdict.model_dump(mode="json")},
                )
                record = self._insert_order(conn, approved, intent, self.router.broker(intent.account).name)
                if not verdict.allowed:
                    reason = f"risk check at submission failed: {verdict.summary()}"
                    record = self._set_status(conn, record, OrderStatus.REJECTED, "reject", reason=reason)
                    self._finish_approval(conn, approval_id, "failed", {"reason": reason})
                    self._notify(record, None, None)
                    return record
            else:
                approved = None  # recorded by an earlier attempt that may or may not have reached the venue
                record = existing
                lease = _lease(conn, record.id)
                if lease.live and lease.owner != self.owner:
                    # its submitter may have died with the request still travelling: nobody resends before the lease
                    # (longer than the venue's receive window) has run out, when the venue has it or never will
                    raise SubmissionBusyError(
                        f"order {record.id} of approval {approval_id} is leased to {lease.owner} since "
                        f"{lease.since.isoformat() if lease.since else '?'} until "
                        f"{lease.until.isoformat() if lease.until else '?'}; nothing was sent"
                    )
        # committed: the order row exists before the venue hears of it
        chaos.reach("order.recorded_new")
        broker = self.router.broker(intent.account)
        started = time.perf_counter()
        venue: VenueOrder | None = None
        try:
            if approved is None:
                venue = await broker.fetch(intent.symbol, record.client_order_id)
                if venue is None:  # provably never received: it may go out only if the gate still says so
                    approved = self._release_again(record, intent, approval_id)
            if venue is None:
                assert approved is not None
                venue = await broker.submit(approved)
        except VenueRejectedError as rejection:
            with self.db.connection() as conn:
                record = self._set_status(conn, record, OrderStatus.REJECTED, "reject", reason=str(rejection))
                self._finish_approval(conn, approval_id, "failed", {"reason": str(rejection)})
            self._notify(record, None, None)
            return record
        except VenueUnavailableError:
            log.warning("oms.venue_unavailable", approval_id=approval_id)
            raise  # the worker leaves the message unacked; the retry reconciles by client order id
        latency = time.perf_counter() - started
        chaos.reach("order.venue_answered")
        with self.db.connection() as conn:
            record = self._apply_venue(conn, record, venue)
        self._notify(record, venue, latency)
        chaos.reach("order.recorded")
        return record

    def _release_again(self, record: OrderRecord, intent: OrderIntent, approval_id: str) -> ApprovedOrder:
        """Release a recorded order the venue never received; if the gate now refuses, it is rejected unsent."""
        with self.db.connection() as conn:
            try:
                approved = gate.release(conn, approval_id, intent, mode=self.mode)
                taken = conn.execute(
                    "UPDATE orders SET lease_owner = %s, lease_since = now(), "
                    "lease_until = now() + make_interval(secs => %s) "
                    "WHERE id = %s AND status = 'new' AND (lease_owner IS NOT DISTINCT FROM %s "
                    "OR lease_until IS NULL OR lease_until <= now()) RETURNING id",
                    (self.owner, self.lease_s, record.id, self.owner),
                ).fetchone()
                if taken is None:
                    raise SubmissionBusyError(f"order {record.id} is leased to another worker; nothing was sent")
                return approved
            except gate.GateRefusedError as refusal:
                conn.rollback()
                reason = f"never sent: {refusal}"
                rejected = self._set_status(conn, record, OrderStatus.REJECTED, "reject", reason=reason)
                self._finish_approval(
                    conn, approval_id, _refused_status(refusal), {"order_id": record.id, "reason": reason}
                )
                conn.commit()
                self._notify(rejected, None, None)
                raise

    def _risk_check(self, intent: OrderIntent) -> Verdict:
        portfolio, market = self.snapshots()
        verdict = check(
            intent, portfolio, market, policy=self.policy(), controls=self.controls(), now=datetime.now(UTC)
        )
        if self.on_verdict is not None:
            self.on_verdict(verdict, "submission")
        return verdict

    # -- following orders --------------------------------------------------------------------------
    async def reconcile_on_start(self) -> list[OrderRecord]:
        """Bring every not-final order in line with its venue before taking new work (worker start).

        Each account's broker is asked once (``Broker.reconcile``) about the account's orders in status new,
        submitted or partially filled; what the venue reports (fills, status) is recorded through the same path as
        any venue answer. Then:

        * an order still ``new`` that the venue does not hold stays as it is: it was never received, and its
          approval message is still pending on the bus, so the submit retry sends it (through the gate again);
        * an acknowledged order the venue no longer holds (a paper venue forgets its book on restart; an exchange
          archives old closed orders) is recorded as expired, keeping any fills it had;
        * an IQTS order the venue holds that the database does not know is reported (log and audit), not adopted.

        An account without an adapter in this process is skipped with a warning; a venue that does not answer is
        skipped too (the follow-up loop keeps asking). Returns the orders whose state changed.
        """
        by_account: dict[str, list[OrderRecord]] = {}
        for record in list_orders(self.db, open_only=True, limit=100_000):
            by_account.setdefault(record.account, []).append(record)
        configured = set(self.router.accounts)
        changed: list[OrderRecord] = []
        for account in sorted(set(by_account) | configured):
            records = by_account.get(account, [])
            if account not in configured:
                log.warning("oms.reconcile_account_not_configured", account=account, open_orders=len(records))
                continue
            try:
                reported = await self.router.broker(account).reconcile({r.client_order_id: r.symbol for r in records})
            except VenueUnavailableError as error:
                log.warning("oms.reconcile_unavailable", account=account, error=str(error))
                continue
            changed.extend(self._apply_reconciliation(account, records, reported))
        return changed

    def _apply_reconciliation(
        self, account: str, records: list[OrderRecord], reported: list[VenueOrder]
    ) -> list[OrderRecord]:
        by_cid = {v.client_order_id: v for v in reported}
        known = {r.client_order_id for r in records}
        changed: list[OrderRecord] = []
        waiting = missing = 0
        for record in records:
            venue = by_cid.get(record.client_order_id)
            if venue is None and record.status is OrderStatus.NEW:
                waiting += 1  # never received: the pending approval message submits it
                continue
            with self.db.connection() as conn:
                if venue is None:
                    missing += 1
                    updated = self._set_status(
                        conn,
                        record,
                        OrderStatus.EXPIRED,
                        "expire",
                        reason=f"{record.venue} no longer holds this order (found at reconciliation on start)",
                    )
                    self._finish_if_terminal(conn, updated)
                else:
                    updated = self._apply_venue(conn, record, venue)
            if updated.status != record.status or updated.filled_quantity != record.filled_quantity:
                self._notify(updated, venue, None)
                changed.append(updated)
        unknown = sorted(cid for cid in by_cid if cid not in known)
        with self.db.connection() as conn:
            for cid in unknown:
                held = get_order_by_client_id(conn, cid)
                if held is not None:
                    continue  # known, already final here: nothing to do
                log.warning("oms.reconcile_unknown_order", account=account, client_order_id=cid)
                audit(
                    conn,
                    WORKER_ACTOR,
                    "order.unknown_at_venue",
                    f"account:{account}",
                    {"client_order_id": cid, "status": by_cid[cid].status.value, "symbol": by_cid[cid].symbol},
                )
            audit(
                conn,
                WORKER_ACTOR,
                "execution.reconciled",
                f"account:{account}",
                {
                    "checked": len(records),
                    "changed": len(changed),
                    "awaiting_submission": waiting,
                    "expired_missing": missing,
                    "unknown_at_venue": len(unknown),
                },
            )
        log.info("oms.reconciled", account=account, checked=len(records), changed=len(changed), waiting=waiting)
        return changed

    async def sync_open_orders(self) -> list[OrderRecord]:
        """Ask each venue about our open orders and record what changed."""
        changed: list[OrderRecord] = []
        configured = set(self.router.accounts)
        for record in list_orders(self.db, open_only=True, limit=1000):
            if record.status is OrderStatus.NEW:
                continue  # not yet acknowledged: the submit path (or its retry) owns it
            if record.account not in configured:
                continue  # traded by another process (or an account removed from the configuration)
            try:
                venue = await self.router.broker(record.account).fetch(record.symbol, record.client_order_id)
            except VenueUnavailableError:
                continue
            if venue is None:
                continue
            with self.db.connection() as conn:
                updated = self._apply_venue(conn, record, venue)
            if updated.status != record.status or updated.filled_quantity != record.filled_quantity:
                self._notify(updated, venue, None)
                changed.append(updated)
        return changed

    async def cancel(self, record: OrderRecord, actor: str, reason: str) -> OrderRecord:
        """Cancel an open order at its venue (kill switch, or an approved cancel request)."""
        broker = self.router.broker(record.account)
        venue: VenueOrder | None
        try:
            venue = await broker.cancel(record.symbol, record.client_order_id)
        except OrderNotCancellableError:
            venue = await broker.fetch(record.symbol, record.client_order_id)
            if venue is None:
                raise
        with self.db.connection() as conn:
            audit(conn, actor, "order.cancel_requested", f"order:{record.id}", {"reason": reason})
            updated = self._apply_venue(conn, record, venue)
        self._notify(updated, venue, None)
        return updated

    async def cancel_all(self, actor: str, reason: str) -> list[OrderRecord]:
        """Cancel every open order (the kill switch)."""
        results: list[OrderRecord] = []
        for record in list_orders(self.db, open_only=True, limit=10_000):
            try:
                results.append(await self.cancel(record, actor, reason))
            except IQTSError as error:
                log.error("oms.cancel_failed", order_id=record.id, error=str(error))
        return results

    # -- persistence -------------------------------------------------------------------------------
    def _insert_order(
        self, conn: Connection[TupleRow], approved: ApprovedOrder, intent: OrderIntent, venue: str
    ) -> OrderRecord:
        row = conn.execute(
            f"INSERT INTO orders (approval_id, client_order_id, account, venue, symbol, side, type, quantity, price, "
            f"stop_price, mode, strategy, status, lease_owner, lease_since, lease_until) VALUES (%s, %s, %s, %s, %s, "
            f"%s, %s, %s, %s, %s, %s, %s, 'new', %s, now(), now() + make_interval(secs => %s)) "
            f"RETURNING {_ORDER_COLUMNS}",
            (
                approved.approval_id,
                approved.client_order_id,
                intent.account,
                venue,
                intent.symbol,
                intent.side.value,
                intent.type.value,
                intent.quantity,
                intent.price,
                intent.stop_price,
                intent.mode,
                intent.strategy,
                self.owner,
                self.lease_s,
            ),
        ).fetchone()
        assert row is not None
        record = _record(row)
        self._event(conn, record, "created", {"intent_hash": intent.intent_hash(), "lease_owner": self.owner})
        return record

    def _event(self, conn: Connection[TupleRow], record: OrderRecord, event: str, detail: dict[str, Any]) -> None:
        conn.execute(
            "INSERT INTO order_events (order_id, event, status, detail) VALUES (%s, %s, %s, %s)",
            (record.id, event, record.status.value, Jsonb(detail)),
        )
        audit(
            conn,
            WORKER_ACTOR,
            f"order.{event}",
            f"order:{record.id}",
            {"approval_id": record.approval_id, "status": record.status.value, **detail},
        )

    def _set_status(
        self,
        conn: Connection[TupleRow],
        record: OrderRecord,
        status: OrderStatus,
        event: str,
        *,
        reason: str | None = None,
        venue: VenueOrder | None = None,
    ) -> OrderRecord:
        row = conn.execute(
            f"UPDATE orders SET status = %s, reason = coalesce(%s, reason), "
            f"filled_quantity = coalesce(%s, filled_quantity), average_price = coalesce(%s, average_price), "
            f"venue_order_id = coalesce(%s, venue_order_id), updated_at = now() "
            f"WHERE id = %s RETURNING {_ORDER_COLUMNS}",
            (
                status.value,
                reason,
                venue.filled_quantity if venue else None,
                venue.average_price if venue else None,
                venue.venue_order_id if venue else None,
                record.id,
            ),
        ).fetchone()
        assert row is not None
        updated = _record(row)
        self._event(conn, updated, event, {"reason": reason} if reason else {})
        return updated

    def _apply_venue(self, conn: Connection[TupleRow], record: OrderRecord, venue: VenueOrder) -> OrderRecord:
        """Record the venue's view: new fills, then the status (via the state machine's legal path).

        The order row is locked and read again first, so concurrent followers (the submit path, the follow-up
        loop, a cancel, a reconciliation in another process) apply each change once, from the current status.
        """
        row = conn.execute(f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = %s FOR UPDATE", (record.id,)).fetchone()
        current = record if row is None else _record(row)
        for index, fill in enumerate(venue.fills):
            key = fill.fill_id or f"{current.client_order_id}:{index}"
            inserted = conn.execute(
                "INSERT INTO fills (order_id, fill_key, account, strategy, symbol, side, quantity, price, fee, "
                "fee_currency, liquidity, ts, quote) SELECT %s, %s, account, strategy, symbol, side, %s, %s, %s, %s, "
                "%s, %s, %s::jsonb FROM orders WHERE id = %s ON CONFLICT (order_id, fill_key) DO NOTHING RETURNING id",
                (
                    current.id,
                    key,
                    fill.quantity,
                    fill.price,
                    fill.fee,
                    fill.fee_currency,
                    fill.liquidity.value,
                    fill.ts,
                    None if fill.quote is None else fill.quote.model_dump_json(),
                    current.id,
                ),
            ).fetchone()
            if inserted is not None:
                payload: dict[str, object] = {
                    "quantity": fill.quantity,
                    "price": fill.price,
                    "fee": fill.fee,
                    "fill_key": key,
                }
                if fill.quote is not None:
                    payload["quote"] = {
                        "series": fill.quote.series,
                        "ts": fill.quote.ts,
                        "age_seconds": fill.quote.age_seconds,
                        "replayed": fill.quote.replayed,
                        "note": fill.quote.note,
                    }
                audit(conn, WORKER_ACTOR, "order.fill", f"order:{current.id}", payload)
        if current.status.is_terminal:
            if venue.status is not current.status:
                log.warning(
                    "oms.venue_disagrees_with_final_status",
                    order_id=current.id,
                    recorded=current.status.value,
                    venue=venue.status.value,
                )
            return current
        steps = _path(current.status, venue.status)
        for status, event in steps:
            reason = (
                venue.reason if status in (OrderStatus.REJECTED, OrderStatus.CANCELLED, OrderStatus.EXPIRED) else None
            )
            current = self._set_status(conn, current, status, event, reason=reason, venue=venue)
        if not steps and venue.filled_quantity != current.filled_quantity:  # more fills, same status
            current = self._set_status(conn, current, current.status, "partial_fill", venue=venue)
        self._finish_if_terminal(conn, current)
        return current

    def _finish_if_terminal(self, conn: Connection[TupleRow], current: OrderRecord) -> None:
        if current.status.is_terminal:
            self._finish_approval(
                conn,
                current.approval_id,
                "executed" if current.filled_quantity > 0 else "failed",
                {
                    "order_id": current.id,
                    "status": current.status.value,
                    "filled_quantity": str(current.filled_quantity),
                    "average_price": None if current.average_price is None else str(current.average_price),
                    "reason": current.reason,
                },
            )

    def _finish_approval(
        self,
        conn: Connection[TupleRow],
        approval_id: str,
        status: Literal["executed", "failed", "expired"],
        result: dict[str, Any],
    ) -> None:
        approval_requests.record_result(conn, approval_id, status, result, from_statuses=("approved", "executed"))

    def _notify(self, record: OrderRecord, venue: VenueOrder | None, latency: float | None) -> None:
        if self.on_update is not None:
            self.on_update(record, venue, latency)

    async def publish_update(self, record: OrderRecord) -> None:
        await self.bus.publish(ORDER_UPDATES_TOPIC, record.model_dump(mode="json"))

    def publish_later(self, record: OrderRecord) -> None:
        """Publish an order update without waiting (from the synchronous update hook); ``drain`` awaits them."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not in an event loop: nobody to publish to
        task = loop.create_task(self.publish_update(record))
        self._publishing.add(task)  # a strong reference until it is done
        task.add_done_callback(self._published)

    def _published(self, task: asyncio.Task[None]) -> None:
        self._publishing.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.warning("oms.update_not_published", topic=ORDER_UPDATES_TOPIC, error=str(error))

    async def drain(self) -> None:
        """Wait for the order updates still being published."""
        while self._publishing:
            await asyncio.gather(*list(self._publishing), return_exceptions=True)


_FORWARD: dict[OrderStatus, list[tuple[OrderStatus, str]]] = {
    OrderStatus.SUBMITTED: [(OrderStatus.SUBMITTED, "submit")],
    OrderStatus.PARTIALLY_FILLED: [(OrderStatus.SUBMITTED, "submit"), (OrderStatus.PARTIALLY_FILLED, "partial_fill")],
    OrderStatus.FILLED: [(OrderStatus.SUBMITTED, "submit"), (OrderStatus.FILLED, "fill")],
    OrderStatus.CANCELLED: [(OrderStatus.SUBMITTED, "submit"), (OrderStatus.CANCELLED, "cancel")],
    OrderStatus.REJECTED: [(OrderStatus.REJECTED, "reject")],
    OrderStatus.EXPIRED: [(OrderStatus.SUBMITTED, "submit"), (OrderStatus.EXPIRED, "expire")],
}


def _path(current: OrderStatus, target: OrderStatus) -> list[tuple[OrderStatus, str]]:
    """The legal steps (status, event) from ``current`` to ``target`` (the venue may skip ones we record)."""
    from engine.execution.models import OrderEvent, transition

    if current is target:
        return []
    steps = []
    status = current
    for step_status, event in _FORWARD.get(target, []):
        if step_status is status:
            continue
        try:
            status = transition(status, OrderEvent(event))
        except IQTSError:
            continue
        steps.append((status, event))
    if status is not target:
        raise IQTSError(f"order cannot move from {current.value} to {target.value}")
    return steps
