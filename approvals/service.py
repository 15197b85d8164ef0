"""Approval requests and decisions: every order waits here for a person.

Kinds: ``order`` (an OrderIntent), ``cancel`` (an open order), ``kill_switch_release`` and
``strategy_deployment``. A request holds the exact intent and its hash, who asked and why (rationale and
evidence), the first risk verdict, and an expiry. Statuses: pending -> approved | rejected | expired, and an
approved order then -> executed | failed (set by the execution worker).

Decisions are made by people only: ``decide`` requires the approver role and a password-authenticated
session (an API token, which MCP clients and the agent hold, can propose but never decide), optionally
four-eyes, and binds the decision to the hash the approver was shown.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from psycopg import Connection
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb
from pydantic import BaseModel, Field, model_validator

from approvals.users import PermissionDeniedError, Role, User, require
from engine.audit.log import append as audit
from engine.bus import Bus
from engine.errors import NotFoundError, ValidationFailedError
from engine.execution.models import OrderIntent
from engine.intents import ApprovalIntent, intent_data
from engine.portfolio.service import portfolio_snapshot
from engine.risk.check import check
from engine.risk.killswitch import controls as load_controls
from engine.risk.models import Verdict
from engine.risk.store import active_policy
from engine.settings import Settings
from engine.store.database import Database

RequestKind = Literal["order", "cancel", "kill_switch_release", "strategy_deployment"]
Status = Literal["pending", "approved", "rejected", "expired", "executed", "failed"]
RequesterKind = Literal["mcp", "chat", "cli", "api"]
AuthMethod = Literal["password", "token"]

EVENTS_TOPIC = "approvals.events"
APPROVED_ORDERS_TOPIC = "orders.approved"
APPROVED_CANCELS_TOPIC = "orders.cancel_approved"
RISK_GATE = "risk-gate"


class Requester(BaseModel):
    """Who asked: the user, through which channel, in which session."""

    user: str
    kind: RequesterKind
    session: str | None = None


class Evidence(BaseModel):
    """A link the requester gives in support: a backtest or study id, a knowledge note, a URL."""

    kind: Literal["backtest", "study", "note", "url"]
    ref: str = Field(min_length=1, max_length=500)
    label: str | None = Field(None, max_length=200)


class ApprovalRequest(BaseModel):
    id: str
    kind: RequestKind
    status: Status
    intent: ApprovalIntent
    intent_hash: str
    requested_by: str
    requester_kind: str
    rationale: str
    evidence: list[Evidence]
    risk_verdict: dict[str, Any] | None
    created_at: datetime
    expires_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None
    result: dict[str, Any] | None

    @model_validator(mode="before")
    @classmethod
    def _intent_kind(cls, data: Any) -> Any:
        """The stored intent JSON has no kind (the row has): give it the row's, so the union can tell."""
        if isinstance(data, dict) and isinstance(data.get("intent"), dict) and "kind" in data:
            return {**data, "intent": {**data["intent"], "kind": data["kind"]}}
        return data

    @property
    def is_open(self) -> bool:
        return self.status == "pending"

    def describe(self) -> str:
        """The one line the inbox, the chat and the notifier show for this request."""
        return self.intent.describe()


class DecisionError(ValidationFailedError):
    """The decision cannot be taken (not pending, expired, changed, four-eyes, no reason)."""


_COLUMNS = (
    "id, kind, status, intent, intent_hash, requested_by, requester_kind, rationale, evidence, risk_verdict, "
    "created_at, expires_at, decided_by, decided_at, decision_reason, result"
)


def _row(row: tuple[Any, ...]) -> ApprovalRequest:
    keys = [c.strip() for c in _COLUMNS.split(",")]
    return ApprovalRequest.model_validate(dict(zip(keys, row, strict=True)))


def _hash_payload(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _insert(
    conn: Connection[TupleRow],
    *,
    kind: RequestKind,
    intent: dict[str, Any],
    intent_hash: str,
    requester: Requester,
    rationale: str,
    evidence: Sequence[Evidence],
    verdict: Verdict | None,
    ttl: timedelta,
) -> ApprovalRequest:
    request_id = f"apr_{uuid.uuid4().hex[:16]}"
    refused = verdict is not None and not verdict.allowed
    now = datetime.now(UTC)
    row = conn.execute(
        f"INSERT INTO approval_requests (id, kind, intent, intent_hash, requested_by, requester_kind, rationale, "
        f"evidence, risk_verdict, status, created_at, expires_at, decided_by, decided_at, decision_reason) "
        f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
        (
            request_id,
            kind,
            Jsonb(intent),
            intent_hash,
            requester.user,
            requester.kind,
            rationale,
            Jsonb([e.model_dump() for e in evidence]),
            None if verdict is None else Jsonb(verdict.model_dump(mode="json")),
            "rejected" if refused else "pending",
            now,
            now + ttl,
            RISK_GATE if refused else None,
            now if refused else None,
            f"risk check failed: {verdict.summary()}" if refused and verdict is not None else None,
        ),
    ).fetchone()
    assert row is not None
    request = _row(row)
    audit(
        conn,
        requester.user,
        "approval.requested",
        f"approval:{request_id}",
        {
            "kind": kind,
            "intent": intent,
            "intent_hash": intent_hash,
            "via": requester.kind,
            "session": requester.session,
            "rationale": rationale,
        },
    )
    if verdict is not None:
        audit(
            conn,
            RISK_GATE,
            "risk.verdict",
            f"approval:{request_id}",
            {"stage": "proposal", **verdict.model_dump(mode="json")},
        )
    if refused:
        audit(conn, RISK_GATE, "approval.rejected", f"approval:{request_id}", {"reason": request.decision_reason})
    return request


def first_risk_check(db: Database, settings: Settings, intent: OrderIntent) -> Verdict:
    """Risk check #1, on the current portfolio and market, as the approver will see it."""
    portfolio, market = portfolio_snapshot(db, settings)
    return check(intent, portfolio, market, policy=active_policy(db), controls=load_controls(db), now=datetime.now(UTC))


async def propose_order(
    db: Database,
    bus: Bus,
    settings: Settings,
    intent: OrderIntent,
    requester: Requester,
    rationale: str = "",
    evidence: Sequence[Evidence] = (),
) -> ApprovalRequest:
    """Ask for a human approval of ``intent``; runs risk check #1. Never executes anything."""
    if intent.mode != settings.mode:
        raise ValidationFailedError(f"this IQTS runs in {settings.mode} mode; the order asks for {intent.mode}")
    verdict = first_risk_check(db, settings, intent)
    with db.connection() as conn:
        request = _insert(
            conn,
            kind="order",
            intent=intent.model_dump(mode="json"),
            intent_hash=intent.intent_hash(),
            requester=requester,
            rationale=rationale,
            evidence=evidence,
            verdict=verdict,
            ttl=timedelta(seconds=settings.approval_ttl_s),
        )
    await bus.publish(EVENTS_TOPIC, {"id": request.id, "status": request.status, "kind": request.kind})
    return request


async def propose_cancel(
    db: Database, bus: Bus, settings: Settings, order_id: int, requester: Requester, rationale: str = ""
) -> ApprovalRequest:
    """Ask for a human approval to cancel an open order."""
    with db.connection() as conn:
        row = conn.execute(
            "SELECT id, approval_id, client_order_id, account, symbol, status FROM orders WHERE id = %s", (order_id,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no order {order_id}")
        if row[5] not in ("new", "submitted", "partially_filled"):
            raise ValidationFailedError(f"order {order_id} is {row[5]}: only open orders can be cancelled")
        intent = {
            "order_id": row[0],
            "approval_id": row[1],
            "client_order_id": row[2],
            "account": row[3],
            "symbol": row[4],
        }
        request = _insert(
            conn,
            kind="cancel",
            intent=intent,
            intent_hash=_hash_payload(intent),
            requester=requester,
            rationale=rationale,
            evidence=(),
            verdict=None,
            ttl=timedelta(seconds=settings.approval_ttl_s),
        )
    await bus.publish(EVENTS_TOPIC, {"id": request.id, "status": request.status, "kind": request.kind})
    return request


async def propose_simple(
    db: Database,
    bus: Bus,
    settings: Settings,
    kind: Literal["kill_switch_release", "strategy_deployment"],
    intent: dict[str, Any],
    requester: Requester,
    rationale: str = "",
) -> ApprovalRequest:
    """Kill-switch release or strategy deployment requests."""
    with db.connection() as conn:
        request = _insert(
            conn,
            kind=kind,
            intent=intent,
            intent_hash=_hash_payload(intent),
            requester=requester,
            rationale=rationale,
            evidence=(),
            verdict=None,
            ttl=timedelta(seconds=settings.approval_ttl_s),
        )
    await bus.publish(EVENTS_TOPIC, {"id": request.id, "status": request.status, "kind": request.kind})
    return request


def get_request(db: Database, request_id: str) -> ApprovalRequest:
    with db.connection() as conn:
        row = conn.execute(f"SELECT {_COLUMNS} FROM approval_requests WHERE id = %s", (request_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no approval request {request_id}")
    return _row(row)


def list_requests(
    db: Database,
    *,
    status: Status | None = None,
    kind: RequestKind | None = None,
    requested_by: str | None = None,
    symbol: str | None = None,
    limit: int = 50,
) -> list[ApprovalRequest]:
    """Newest first, filtered."""
    with db.connection() as conn:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM approval_requests WHERE (%(st)s::text IS NULL OR status = %(st)s) "
            "AND (%(k)s::text IS NULL OR kind = %(k)s) AND (%(u)s::text IS NULL OR requested_by = %(u)s) "
            "AND (%(sym)s::text IS NULL OR intent->>'symbol' = %(sym)s) ORDER BY created_at DESC LIMIT %(n)s",
            {"st": status, "k": kind, "u": requested_by, "sym": symbol, "n": limit},
        ).fetchall()
    return [_row(r) for r in rows]


async def decide(
    db: Database,
    bus: Bus,
    settings: Settings,
    request_id: str,
    user: User,
    *,
    approve: bool,
    auth: AuthMethod,
    reason: str | None = None,
    seen_hash: str | None = None,
) -> ApprovalRequest:
    """A person approves or rejects a pending request."""
    require(user, Role.APPROVER, "decide on approvals")
    if auth != "password":
        raise PermissionDeniedError("decisions need a signed-in person, not an API token")
    reason = (reason or "").strip() or None
    if not approve and reason is None:
        raise DecisionError("a rejection needs a reason")
    now = datetime.now(UTC)
    with db.connection() as conn:
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM approval_requests WHERE id = %s FOR UPDATE", (request_id,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no approval request {request_id}")
        request = _row(row)
        if request.status != "pending":
            raise DecisionError(f"request {request_id} is {request.status}, not pending")
        if request.expires_at <= now:
            _expire(conn, request)
            conn.commit()  # the expiry stands even though the decision is refused
            raise DecisionError(f"request {request_id} expired at {request.expires_at.isoformat()}")
        if seen_hash is not None and seen_hash != request.intent_hash:
            raise DecisionError("the request is not the one you were shown; reload it")
        if settings.four_eyes and request.requested_by == user.username:
            raise DecisionError("four-eyes: you cannot decide on your own request")
        status: Status = "approved" if approve else "rejected"
        row = conn.execute(
            f"UPDATE approval_requests SET status = %s, decided_by = %s, decided_at = %s, decision_reason = %s, "
            f"decided_hash = %s WHERE id = %s RETURNING {_COLUMNS}",
            (status, user.username, now, reason, request.intent_hash if approve else None, request_id),
        ).fetchone()
        assert row is not None
        request = _row(row)
        audit(
            conn,
            user.username,
            f"approval.{status}",
            f"approval:{request_id}",
            {"intent_hash": request.intent_hash, "reason": reason, "kind": request.kind},
        )
    if approve and request.kind == "order":
        await bus.publish(APPROVED_ORDERS_TOPIC, {"approval_id": request.id})
    elif approve and request.kind == "cancel":
        await bus.publish(APPROVED_CANCELS_TOPIC, {"approval_id": request.id, **intent_data(request.intent)})
    await bus.publish(EVENTS_TOPIC, {"id": request.id, "status": request.status, "kind": request.kind})
    return request


def _expire(conn: Connection[TupleRow], request: ApprovalRequest) -> None:
    conn.execute("UPDATE approval_requests SET status = 'expired' WHERE id = %s AND status = 'pending'", (request.id,))
    audit(conn, "system", "approval.expired", f"approval:{request.id}", {"expires_at": request.expires_at})


async def expire_due(db: Database, bus: Bus) -> list[str]:
    """Mark every pending request past its expiry as expired; return their ids."""
    with db.connection() as conn:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM approval_requests WHERE status = 'pending' AND expires_at <= now() FOR UPDATE"
        ).fetchall()
        expired = [_row(r) for r in rows]
        for request in expired:
            _expire(conn, request)
    for request in expired:
        await bus.publish(EVENTS_TOPIC, {"id": request.id, "status": "expired", "kind": request.kind})
    return [r.id for r in expired]
