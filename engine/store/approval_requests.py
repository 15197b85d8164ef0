"""The one owner of ``approval_requests``: every read and write of the table is a function here.

A request holds the exact intent (engine.intents) and its hash, who asked and why, the first risk verdict, an
expiry and, once decided, who decided, when, why and the hash they approved. Statuses: pending -> approved |
rejected | expired, and an approved request then -> executed | failed.

The rules (who may decide, four-eyes, what an approval releases) live with the callers: the approvals service,
the execution gate and OMS, the kill switch. This module only stores and reads, inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, Literal

from psycopg import Connection
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.execution.models import OrderIntent
from engine.intents import ApprovalIntent, RequestKind, intent_data

Status = Literal["pending", "approved", "rejected", "expired", "executed", "failed"]
STATUSES: Final[tuple[Status, ...]] = ("pending", "approved", "rejected", "expired", "executed", "failed")


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


class DecisionState(BaseModel):
    """What a gate checks before acting on a request: its kind, status and the hashes, without the intent."""

    model_config = ConfigDict(frozen=True)

    id: str
    kind: str
    status: Status
    intent_hash: str
    decided_hash: str | None
    decided_by: str | None
    created_at: datetime
    expires_at: datetime


_COLUMNS: Final = (
    "id, kind, status, intent, intent_hash, requested_by, requester_kind, rationale, evidence, risk_verdict, "
    "created_at, expires_at, decided_by, decided_at, decision_reason, result"
)
_KEYS: Final = tuple(c.strip() for c in _COLUMNS.split(","))
_DECISION_COLUMNS: Final = "id, kind, status, intent_hash, decided_hash, decided_by, created_at, expires_at"
_DECISION_KEYS: Final = tuple(c.strip() for c in _DECISION_COLUMNS.split(","))


def _row(row: Sequence[Any]) -> ApprovalRequest:
    return ApprovalRequest.model_validate(dict(zip(_KEYS, row, strict=True)))


def insert(
    conn: Connection[TupleRow],
    *,
    request_id: str,
    intent: ApprovalIntent,
    intent_hash: str,
    requested_by: str,
    requester_kind: str,
    rationale: str,
    evidence: Sequence[Evidence],
    risk_verdict: dict[str, Any] | None,
    status: Status,
    created_at: datetime,
    expires_at: datetime,
    decided_by: str | None = None,
    decided_at: datetime | None = None,
    decision_reason: str | None = None,
) -> ApprovalRequest:
    """Store a new request (its kind is the intent's)."""
    row = conn.execute(
        f"INSERT INTO approval_requests (id, kind, intent, intent_hash, requested_by, requester_kind, rationale, "
        f"evidence, risk_verdict, status, created_at, expires_at, decided_by, decided_at, decision_reason) "
        f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
        (
            request_id,
            intent.kind,
            Jsonb(intent_data(intent)),
            intent_hash,
            requested_by,
            requester_kind,
            rationale,
            Jsonb([e.model_dump() for e in evidence]),
            None if risk_verdict is None else Jsonb(risk_verdict),
            status,
            created_at,
            expires_at,
            decided_by,
            decided_at,
            decision_reason,
        ),
    ).fetchone()
    assert row is not None
    return _row(row)


def get(conn: Connection[TupleRow], request_id: str, *, for_update: bool = False) -> ApprovalRequest | None:
    """One request (None if there is none); ``for_update`` locks its row until commit."""
    lock = " FOR UPDATE" if for_update else ""
    row = conn.execute(f"SELECT {_COLUMNS} FROM approval_requests WHERE id = %s{lock}", (request_id,)).fetchone()
    return None if row is None else _row(row)


def decision_state(conn: Connection[TupleRow], request_id: str, *, for_update: bool = False) -> DecisionState | None:
    """The kind, status and hashes of one request (None if there is none); ``for_update`` locks its row."""
    lock = " FOR UPDATE" if for_update else ""
    row = conn.execute(
        f"SELECT {_DECISION_COLUMNS} FROM approval_requests WHERE id = %s{lock}", (request_id,)
    ).fetchone()
    return None if row is None else DecisionState.model_validate(dict(zip(_DECISION_KEYS, row, strict=True)))


def order_intent(conn: Connection[TupleRow], request_id: str) -> OrderIntent | None:
    """The order stored on an order request (None if there is no such order request)."""
    row = conn.execute(
        "SELECT intent FROM approval_requests WHERE id = %s AND kind = 'order'", (request_id,)
    ).fetchone()
    return None if row is None else OrderIntent.model_validate(row[0])


def find(
    conn: Connection[TupleRow],
    *,
    status: Status | None = None,
    kind: RequestKind | None = None,
    requested_by: str | None = None,
    symbol: str | None = None,
    limit: int = 50,
) -> list[ApprovalRequest]:
    """Newest first, filtered."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM approval_requests WHERE (%(st)s::text IS NULL OR status = %(st)s) "
        "AND (%(k)s::text IS NULL OR kind = %(k)s) AND (%(u)s::text IS NULL OR requested_by = %(u)s) "
        "AND (%(sym)s::text IS NULL OR intent->>'symbol' = %(sym)s) ORDER BY created_at DESC LIMIT %(n)s",
        {"st": status, "k": kind, "u": requested_by, "sym": symbol, "n": limit},
    ).fetchall()
    return [_row(r) for r in rows]


def decided_after(
    conn: Connection[TupleRow], after: tuple[datetime, str] | None, *, limit: int = 100
) -> list[ApprovalRequest]:
    """Requests a person decided (approved or rejected, whatever happened next), oldest decision first, after the
    ``(decided_at, id)`` given: a reader catching up on decisions (the trade journal) pages with the last one."""
    at, last = after if after is not None else (None, "")
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM approval_requests WHERE decided_at IS NOT NULL "
        "AND (%(at)s::timestamptz IS NULL OR (decided_at, id) > (%(at)s::timestamptz, %(id)s)) "
        "ORDER BY decided_at, id LIMIT %(n)s",
        {"at": at, "id": last, "n": limit},
    ).fetchall()
    return [_row(r) for r in rows]


def counts(conn: Connection[TupleRow]) -> tuple[int, int]:
    """How many requests exist, and how many of them a person decided to approve (approved, executed, failed)."""
    row = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE status IN ('approved', 'executed', 'failed')) FROM approval_requests"
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def due_for_expiry(conn: Connection[TupleRow]) -> list[ApprovalRequest]:
    """Pending requests past their expiry, locked until commit."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM approval_requests WHERE status = 'pending' AND expires_at <= now() FOR UPDATE"
    ).fetchall()
    return [_row(r) for r in rows]


def record_decision(
    conn: Connection[TupleRow],
    request_id: str,
    *,
    status: Literal["approved", "rejected"],
    decided_by: str,
    decided_at: datetime,
    reason: str | None,
    decided_hash: str | None,
) -> ApprovalRequest:
    """Set the decision on a request (the caller checked it is pending and holds its row lock)."""
    row = conn.execute(
        f"UPDATE approval_requests SET status = %s, decided_by = %s, decided_at = %s, decision_reason = %s, "
        f"decided_hash = %s WHERE id = %s RETURNING {_COLUMNS}",
        (status, decided_by, decided_at, reason, decided_hash, request_id),
    ).fetchone()
    if row is None:
        raise LookupError(f"no approval request {request_id}")
    return _row(row)


def mark_expired(conn: Connection[TupleRow], request_id: str) -> None:
    """A pending request becomes expired (no change for any other status)."""
    conn.execute("UPDATE approval_requests SET status = 'expired' WHERE id = %s AND status = 'pending'", (request_id,))


def record_result(
    conn: Connection[TupleRow],
    request_id: str,
    status: Literal["executed", "failed", "expired"],
    result: dict[str, Any],
    *,
    from_statuses: Sequence[Status] = ("approved",),
) -> bool:
    """An approved request was acted on: executed or failed, with what happened, or expired before it could be
    (the result says why); False if it was not in ``from_statuses``."""
    row = conn.execute(
        "UPDATE approval_requests SET status = %s, result = %s WHERE id = %s AND status = ANY(%s) RETURNING id",
        (status, Jsonb(result), request_id, list(from_statuses)),
    ).fetchone()
    return row is not None


def orders_to_execute(conn: Connection[TupleRow], *, limit: int = 100) -> list[str]:
    """Approved order requests without a terminal result, oldest decision first: no order made yet, or one
    recorded ``new`` that may never have reached its venue. Expired ones included: the gate turns them ``expired``.
    """
    rows = conn.execute(
        "SELECT a.id FROM approval_requests a LEFT JOIN orders o ON o.approval_id = a.id "
        "WHERE a.kind = 'order' AND a.status = 'approved' AND (o.id IS NULL OR o.status = 'new') "
        "ORDER BY a.decided_at NULLS FIRST, a.id LIMIT %s",
        (limit,),
    ).fetchall()
    return [str(r[0]) for r in rows]
