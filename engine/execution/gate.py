"""The approval gate: the only place an order is released to a broker.

``release`` checks, inside the caller's transaction and with the approval row locked, that a human approved
exactly this intent (its hash equals the hash the approver saw), that the approval has not expired or been
used, that the intent's trading mode is the mode this process trades in (an approved dry-run order never goes
out of a live worker), and that the kill switch is off. Only then does it seal an ``ApprovedOrder``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from psycopg import Connection
from psycopg.rows import TupleRow

from engine.errors import IQTSError
from engine.execution.broker import ApprovedOrder, _release
from engine.execution.models import OrderIntent
from engine.intents import CancelIntent
from engine.settings import TradingMode
from engine.store import approval_requests, system_state


class GateRefusedError(IQTSError):
    """The order may not go out (no approval, another order, expired, kill switch)."""


class ApprovalExpiredError(GateRefusedError):
    """The approval ran out before the order could go out: the request ends ``expired`` with this reason."""


def kill_switch_engaged(conn: Connection[TupleRow]) -> tuple[bool, str | None]:
    value = system_state.read(conn, "kill_switch")
    if value is None:
        return False, None
    return bool(value.get("engaged")), value.get("reason")


def load_approved_intent(conn: Connection[TupleRow], approval_id: str) -> OrderIntent:
    """The intent stored on an order approval (raises if there is no such order approval)."""
    intent = approval_requests.order_intent(conn, approval_id)
    if intent is None:
        raise GateRefusedError(f"no order approval {approval_id}")
    return intent


def approved_cancel(conn: Connection[TupleRow], approval_id: str, *, now: datetime | None = None) -> CancelIntent:
    """The cancel an approver approved, checked as an order is (kind, decision, unchanged intent, unexpired);
    raises GateRefusedError saying why not. The caller holds the request's row lock until it records the result."""
    now = now or datetime.now(UTC)
    found = approval_requests.get(conn, approval_id, for_update=True)
    if found is None:
        raise GateRefusedError(f"refused: no approval {approval_id}")
    if not isinstance(found.intent, CancelIntent):
        raise GateRefusedError(f"refused: approval {approval_id} is a {found.kind} request, not a cancel")
    state = approval_requests.decision_state(conn, approval_id)
    if found.status != "approved" or state is None or state.decided_by is None:
        raise GateRefusedError(f"refused: approval {approval_id} is {found.status}, not approved")
    if found.intent.intent_hash() != found.intent_hash or state.decided_hash != found.intent_hash:
        raise GateRefusedError(f"refused: the cancel differs from what was approved in {approval_id}")
    if found.expires_at <= now:
        raise GateRefusedError(f"refused: approval {approval_id} expired at {found.expires_at.isoformat()}")
    return found.intent


def release(
    conn: Connection[TupleRow],
    approval_id: str,
    intent: OrderIntent,
    *,
    mode: TradingMode,
    now: datetime | None = None,
) -> ApprovedOrder:
    """Seal ``intent`` for submission by a process trading in ``mode``, or raise GateRefusedError saying why not."""
    now = now or datetime.now(UTC)
    found = approval_requests.decision_state(conn, approval_id, for_update=True)
    if found is None:
        raise GateRefusedError(f"refused: no approval {approval_id}")
    kind, status, stored_hash, decided_hash = found.kind, found.status, found.intent_hash, found.decided_hash
    expires_at, decided_by = found.expires_at, found.decided_by
    if kind != "order":
        raise GateRefusedError(f"refused: approval {approval_id} is a {kind} request, not an order")
    if status != "approved" or decided_by is None:
        raise GateRefusedError(f"refused: approval {approval_id} is {status}, not approved")
    digest = intent.intent_hash()
    if digest != stored_hash or digest != decided_hash:
        raise GateRefusedError(
            f"refused: the order differs from what was approved in {approval_id}; any change needs a new approval"
        )
    if intent.mode != mode:
        raise GateRefusedError(
            f"refused: approval {approval_id} is for a {intent.mode} order and this worker trades in {mode} mode; "
            f"the order needs a new proposal in {mode} mode"
        )
    if expires_at <= now:
        raise ApprovalExpiredError(
            f"refused: approval {approval_id} expired at {expires_at.isoformat()} before the order could be sent"
        )
    engaged, reason = kill_switch_engaged(conn)
    if engaged:
        raise GateRefusedError(f"refused: the kill switch is engaged ({reason or 'no reason given'})")
    return _release(intent, approval_id)
