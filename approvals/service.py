"""Approval requests and decisions: every order waits here for a person. The service under every surface.

``check_order`` is the risk check at proposal; ``request_decision`` files a request of any kind (an order, a
cancel, a kill-switch release, a strategy deployment); ``decide`` is a person's approval or rejection. An
approved kill-switch release takes effect at once, in the approver's name (audited); if the switch was released
or engaged anew meanwhile, the request ends ``failed`` with the reason.

Kinds: ``order`` (an OrderIntent), ``cancel`` (an open order), ``kill_switch_release`` and
``strategy_deployment``. A request holds the exact intent and its hash, who asked and why (rationale and
evidence), the first risk verdict, and an expiry. Statuses: pending -> approved | rejected | expired, and an
approved order then -> executed | failed (set by the execution worker).

Decisions are made by people only: ``decide`` requires the approver role and a password-authenticated
session (an API token, which MCP clients and the agent hold, can propose but never decide), optionally
four-eyes, and binds the decision to the hash the approver was shown.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from psycopg import Connection
from psycopg.rows import TupleRow
from pydantic import BaseModel, ConfigDict, Field

from approvals.users import PermissionDeniedError, Role, User, require
from engine import chaos
from engine.audit.log import append as audit
from engine.bus import Bus
from engine.bus.relay import flush
from engine.errors import NotFoundError, ValidationFailedError
from engine.execution.models import OrderIntent
from engine.execution.oms import get_order
from engine.intents import (
    ApprovalIntent,
    CancelIntent,
    KillSwitchReleaseIntent,
    RequestKind,
    StrategyDeploymentIntent,
    intent_data,
)
from engine.portfolio.service import portfolio_snapshot
from engine.risk import killswitch
from engine.risk.check import check
from engine.risk.killswitch import controls as load_controls
from engine.risk.models import Verdict
from engine.risk.store import active_policy
from engine.settings import Settings
from engine.store import approval_requests as requests_table
from engine.store import outbox
from engine.store.approval_requests import ApprovalRequest, Evidence, Status
from engine.store.database import Database
from engine.telemetry import get_logger

log = get_logger(__name__)

__all__ = [
    "ApprovalRequest",
    "CancelOrder",
    "DecisionAsk",
    "DecisionError",
    "Evidence",
    "ReleaseKillSwitch",
    "RequestKind",
    "Requester",
    "Status",
    "check_order",
    "decide",
    "expire_due",
    "get_request",
    "list_requests",
    "propose_cancel",
    "propose_order",
    "propose_simple",
    "request_decision",
]

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


class DecisionError(ValidationFailedError):
    """The decision cannot be taken (not pending, expired, changed, four-eyes, no reason)."""


class CancelOrder(BaseModel):
    """Ask to cancel an open order."""

    model_config = ConfigDict(frozen=True)

    order_id: int = Field(ge=1)


class ReleaseKillSwitch(BaseModel):
    """Ask to release the kill switch's current engagement."""

    model_config = ConfigDict(frozen=True)


DecisionAsk = OrderIntent | CancelOrder | ReleaseKillSwitch | StrategyDeploymentIntent
"""What ``request_decision`` files a request for."""


def _insert(
    conn: Connection[TupleRow],
    *,
    intent: ApprovalIntent,
    requester: Requester,
    rationale: str,
    evidence: Sequence[Evidence],
    verdict: Verdict | None,
    ttl: timedelta,
) -> ApprovalRequest:
    request_id = f"apr_{uuid.uuid4().hex[:16]}"
    refused = verdict is not None and not verdict.allowed
    now = datetime.now(UTC)
    request = requests_table.insert(
        conn,
        request_id=request_id,
        intent=intent,
        intent_hash=intent.intent_hash(),
        requested_by=requester.user,
        requester_kind=requester.kind,
        rationale=rationale,
        evidence=evidence,
        risk_verdict=None if verdict is None else verdict.model_dump(mode="json"),
        status="rejected" if refused else "pending",
        created_at=now,
        expires_at=now + ttl,
        decided_by=RISK_GATE if refused else None,
        decided_at=now if refused else None,
        decision_reason=f"risk check failed: {verdict.summary()}" if refused and verdict is not None else None,
    )
    audit(
        conn,
        requester.user,
        "approval.requested",
        f"approval:{request_id}",
        {
            "kind": intent.kind,
            "intent": intent_data(intent),
            "intent_hash": request.intent_hash,
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


def _announce(conn: Connection[TupleRow], request: ApprovalRequest) -> None:
    """The request's new status for the inbox and the notifier, in the outbox of the caller's transaction."""
    outbox.enqueue(conn, EVENTS_TOPIC, {"id": request.id, "status": request.status, "kind": request.kind})


def check_order(db: Database, settings: Settings, intent: OrderIntent) -> Verdict:
    """Risk check #1, on the current portfolio and market, as the approver will see it (proposes nothing)."""
    portfolio, market = portfolio_snapshot(db, settings)
    return check(intent, portfolio, market, policy=active_policy(db), controls=load_controls(db), now=datetime.now(UTC))


async def request_decision(
    db: Database,
    bus: Bus,
    settings: Settings,
    ask: DecisionAsk,
    requester: Requester,
    rationale: str = "",
    evidence: Sequence[Evidence] = (),
) -> ApprovalRequest:
    """File a request for a person's decision, of any kind. Never acts: a person decides in the inbox."""
    if isinstance(ask, OrderIntent):
        return await propose_order(db, bus, settings, ask, requester, rationale, evidence)
    if isinstance(ask, CancelOrder):
        return await propose_cancel(db, bus, settings, ask.order_id, requester, rationale)
    if isinstance(ask, ReleaseKillSwitch):
        return await request_release(db, bus, settings, requester, rationale)
    return await _propose(db, bus, settings, ask, requester, rationale)


async def request_release(
    db: Database, bus: Bus, settings: Settings, requester: Requester, rationale: str = ""
) -> ApprovalRequest:
    """Ask to release the kill switch as engaged now. While such a request is pending, asking again returns it."""
    now = datetime.now(UTC)
    fresh = True
    with db.connection() as conn:
        state = killswitch.state_in(conn, lock=True)  # serialised with engage, release and other requests
        if not state.engaged:
            raise ValidationFailedError("the kill switch is not engaged; there is nothing to release")
        intent = killswitch.release_intent(state)
        digest = intent.intent_hash()
        pending = requests_table.find(conn, status="pending", kind="kill_switch_release", limit=50)
        open_ = [r for r in pending if r.intent_hash == digest and r.expires_at > now]
        if open_:
            request, fresh = open_[0], False
        else:
            request = _insert(
                conn,
                intent=intent,
                requester=requester,
                rationale=rationale,
                evidence=(),
                verdict=None,
                ttl=timedelta(seconds=settings.approval_ttl_s),
            )
            _announce(conn, request)
    if fresh:
        await flush(db, bus)
    return request


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
    verdict = check_order(db, settings, intent)
    with db.connection() as conn:
        request = _insert(
            conn,
            intent=intent,
            requester=requester,
            rationale=rationale,
            evidence=evidence,
            verdict=verdict,
            ttl=timedelta(seconds=settings.approval_ttl_s),
        )
        _announce(conn, request)
    chaos.reach("approval.proposed")
    await flush(db, bus)
    return request


async def propose_cancel(
    db: Database, bus: Bus, settings: Settings, order_id: int, requester: Requester, rationale: str = ""
) -> ApprovalRequest:
    """Ask for a human approval to cancel an open order."""
    with db.connection() as conn:
        order = get_order(conn, order_id=order_id)
        if order is None:
            raise NotFoundError(f"no order {order_id}")
        if order.status.value not in ("new", "submitted", "partially_filled"):
            raise ValidationFailedError(f"order {order_id} is {order.status.value}: only open orders can be cancelled")
        intent = CancelIntent(
            order_id=order.id,
            approval_id=order.approval_id,
            client_order_id=order.client_order_id,
            account=order.account,
            symbol=order.symbol,
        )
        request = _insert(
            conn,
            intent=intent,
            requester=requester,
            rationale=rationale,
            evidence=(),
            verdict=None,
            ttl=timedelta(seconds=settings.approval_ttl_s),
        )
        _announce(conn, request)
    await flush(db, bus)
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
    """Kill-switch release or strategy deployment requests with the intent given as is (prefer
    :func:`request_decision`, which builds a release's intent from the switch's state)."""
    typed: ApprovalIntent = (
        KillSwitchReleaseIntent.model_validate(intent)
        if kind == "kill_switch_release"
        else StrategyDeploymentIntent.model_validate(intent)
    )
    return await _propose(db, bus, settings, typed, requester, rationale)


async def _propose(
    db: Database, bus: Bus, settings: Settings, typed: ApprovalIntent, requester: Requester, rationale: str
) -> ApprovalRequest:
    with db.connection() as conn:
        request = _insert(
            conn,
            intent=typed,
            requester=requester,
            rationale=rationale,
            evidence=(),
            verdict=None,
            ttl=timedelta(seconds=settings.approval_ttl_s),
        )
        _announce(conn, request)
    await flush(db, bus)
    return request


def get_request(db: Database, request_id: str) -> ApprovalRequest:
    with db.connection() as conn:
        request = requests_table.get(conn, request_id)
    if request is None:
        raise NotFoundError(f"no approval request {request_id}")
    return request


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
        return requests_table.find(
            conn, status=status, kind=kind, requested_by=requested_by, symbol=symbol, limit=limit
        )


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
        request = requests_table.get(conn, request_id, for_update=True)
        if request is None:
            raise NotFoundError(f"no approval request {request_id}")
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
        status: Literal["approved", "rejected"] = "approved" if approve else "rejected"
        request = requests_table.record_decision(
            conn,
            request_id,
            status=status,
            decided_by=user.username,
            decided_at=now,
            reason=reason,
            decided_hash=request.intent_hash if approve else None,
        )
        audit(
            conn,
            user.username,
            f"approval.{status}",
            f"approval:{request_id}",
            {"intent_hash": request.intent_hash, "reason": reason, "kind": request.kind},
        )
        # the execution request commits with the decision (the outbox); the bus only wakes a worker, which also
        # sweeps approved orders, so a bus that is down now delays the order and never loses it
        if approve and request.kind == "order":
            outbox.enqueue(conn, APPROVED_ORDERS_TOPIC, {"approval_id": request.id})
        elif approve and request.kind == "cancel":
            outbox.enqueue(conn, APPROVED_CANCELS_TOPIC, {"approval_id": request.id})  # the worker reads the rest
        if request.kind != "kill_switch_release" or not approve:
            _announce(conn, request)
    if approve and request.kind == "kill_switch_release":
        request = await _release(db, bus, request, user.username)
        with db.connection() as conn:
            _announce(conn, request)
    chaos.reach("approval.decided")
    await flush(db, bus)
    return request


async def _release(db: Database, bus: Bus, request: ApprovalRequest, actor: str) -> ApprovalRequest:
    """An approved release takes effect now, in the approver's name; if it cannot, the request fails, saying why."""
    try:
        await killswitch.release(db, bus, actor, request.id)
    except killswitch.KillSwitchBroadcastError as error:  # released for every submit; only the message failed
        log.warning("approvals.release_broadcast_failed", id=request.id, error=str(error))
    except killswitch.KillSwitchError as error:  # refused and audited by the kill switch; say so on the request
        with db.connection() as conn:
            requests_table.record_result(conn, request.id, "failed", {"reason": str(error)})
    return get_request(db, request.id)


def _expire(conn: Connection[TupleRow], request: ApprovalRequest) -> None:
    requests_table.mark_expired(conn, request.id)
    audit(conn, "system", "approval.expired", f"approval:{request.id}", {"expires_at": request.expires_at})


async def expire_due(db: Database, bus: Bus) -> list[str]:
    """Mark every pending request past its expiry as expired; return their ids."""
    with db.connection() as conn:
        expired = requests_table.due_for_expiry(conn)
        for request in expired:
            _expire(conn, request)
            outbox.enqueue(conn, EVENTS_TOPIC, {"id": request.id, "status": "expired", "kind": request.kind})
    if expired:
        await flush(db, bus)
    return [r.id for r in expired]
