"""What the inbox pages and the JSON API read: requests with their order, chart and evidence; error mapping."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final

from markupsafe import Markup
from pydantic import BaseModel, ConfigDict

from approvals.service import ApprovalRequest, DecisionError, RequestKind, Status, get_request, list_requests
from approvals.users import AuthError, PermissionDeniedError
from engine.errors import (
    BusUnavailableError,
    DatabaseUnavailableError,
    IQTSError,
    NotFoundError,
    ValidationFailedError,
)
from engine.execution.oms import OrderRecord, get_order
from engine.intents import intent_data
from engine.store.database import Database
from engine.telemetry import get_logger
from ui.api.inbox.chart import load_chart, render_svg
from ui.api.inbox.evidence import EvidenceView, evidence_views

log = get_logger(__name__)

REQUEST_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
NAME_RE: Final = re.compile(r"[A-Za-z0-9_.@:-]{1,64}")


def valid_request_id(value: str) -> bool:
    """Whether ``value`` can be a request id at all (anything else is a 404 without asking the database)."""
    return REQUEST_ID_RE.fullmatch(value) is not None


STATUSES: Final[tuple[Status, ...]] = ("pending", "approved", "rejected", "expired", "executed", "failed")
KINDS: Final[tuple[RequestKind, ...]] = ("order", "cancel", "kill_switch_release", "strategy_deployment")


def http_status(error: Exception) -> int:
    """The HTTP status of an IQTS error: what went wrong, never a 500 for a person's mistake."""
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, AuthError):
        return 401
    if isinstance(error, PermissionDeniedError):
        return 403
    if isinstance(error, DecisionError):
        return 409  # not pending, expired, changed since shown, four-eyes
    if isinstance(error, ValidationFailedError):
        return 400
    if isinstance(error, DatabaseUnavailableError | BusUnavailableError):
        return 503  # a dependency is away: try again, nothing was decided wrongly
    return 400


def is_expired(request: ApprovalRequest, now: datetime | None = None) -> bool:
    return request.expires_at <= (now or datetime.now(UTC))


def effective_status(request: ApprovalRequest, now: datetime | None = None) -> str:
    """The status to show: a pending request past its expiry is expired even before the sweep marks it."""
    if request.status == "pending" and is_expired(request, now):
        return "expired"
    return request.status


class RequestRow(BaseModel):
    """One line of the inbox or history list."""

    request: ApprovalRequest
    status: str
    summary: str
    symbol: str | None
    order: OrderRecord | None
    outcome: str


def symbol_of(request: ApprovalRequest) -> str | None:
    """The symbol the request is about (orders, cancels, deployments on one symbol), else None."""
    symbol = getattr(request.intent, "symbol", None)
    return symbol if isinstance(symbol, str) else None


def outcome(request: ApprovalRequest, order: OrderRecord | None) -> str:
    """The result in a few words: the fill, or why it was rejected or failed."""
    if order is not None:
        text = f"order {order.status.value}"
        if order.filled_quantity:
            text += f", filled {order.filled_quantity}"
            if order.average_price is not None:
                text += f" @ {order.average_price}"
        if order.reason:
            text += f": {order.reason}"
        return text
    result = request.result or {}
    if result.get("reason"):
        return str(result["reason"])
    if request.kind == "kill_switch_release" and request.status == "executed":
        return f"kill switch released by {result.get('released_by', '?')}"
    if request.status == "rejected" and request.decision_reason:
        return request.decision_reason
    return ""


def _rows(db: Database, requests: list[ApprovalRequest]) -> list[RequestRow]:
    now = datetime.now(UTC)
    orders: dict[str, OrderRecord] = {}
    ids = [r.id for r in requests if r.kind == "order" and r.status in ("approved", "executed", "failed")]
    if ids:
        with db.connection() as conn:
            for request_id in ids:
                order = get_order(conn, approval_id=request_id)
                if order is not None:
                    orders[request_id] = order
    return [
        RequestRow(
            request=r,
            status=effective_status(r, now),
            summary=r.describe(),
            symbol=symbol_of(r),
            order=orders.get(r.id),
            outcome=outcome(r, orders.get(r.id)),
        )
        for r in requests
    ]


def pending_rows(db: Database, limit: int = 100) -> list[RequestRow]:
    """Pending requests still decidable, newest first."""
    now = datetime.now(UTC)
    pending = [r for r in list_requests(db, status="pending", limit=limit) if not is_expired(r, now)]
    return _rows(db, pending)


class HistoryFilters(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: Status | None = None
    kind: RequestKind | None = None
    requester: str | None = None
    symbol: str | None = None


def history_rows(db: Database, filters: HistoryFilters, limit: int = 200) -> list[RequestRow]:
    requests = list_requests(
        db,
        status=filters.status,
        kind=filters.kind,
        requested_by=filters.requester,
        symbol=filters.symbol,
        limit=limit,
    )
    return _rows(db, requests)


class VerdictRow(BaseModel):
    rule: str
    passed: bool
    reason: str
    limit: Any
    observed: Any
    scope: str


class Detail(BaseModel):
    """Everything the request page shows."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    request: ApprovalRequest
    status: str
    summary: str
    symbol: str | None
    fields: dict[str, Any]
    order: OrderRecord | None
    outcome: str
    verdict_allowed: bool | None
    policy_version: str | None
    verdict_checked_at: datetime | None
    verdict_rows: list[VerdictRow]
    chart_svg: Markup | None
    chart_note: str | None
    evidence: list[EvidenceView]

    @property
    def state(self) -> str:
        return page_state(self.status, self.order)


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def page_state(status: str, order: OrderRecord | None) -> str:
    """What a request page shows that can change after it is rendered: the request's status and its order's.
    An open page compares it with :func:`load_state` when its live feed (re)connects, to catch what it missed."""
    if order is None:
        return status
    return f"{status}|{order.status.value}|{order.filled_quantity}|{order.updated_at.isoformat()}"


def _request_and_order(db: Database, request_id: str) -> tuple[ApprovalRequest, OrderRecord | None]:
    request = get_request(db, request_id)
    if request.kind != "order":
        return request, None
    with db.connection() as conn:
        return request, get_order(conn, approval_id=request.id)


def load_state(db: Database, request_id: str) -> str:
    """The :func:`page_state` of a request as stored now."""
    request, order = _request_and_order(db, request_id)
    return page_state(effective_status(request), order)


def load_detail(db: Database, request_id: str) -> Detail:
    request, order = _request_and_order(db, request_id)
    verdict = request.risk_verdict or {}
    rows = [VerdictRow.model_validate(r) for r in verdict.get("results", [])]
    chart_svg: Markup | None = None
    chart_note: str | None = None
    symbol = symbol_of(request)
    if symbol is not None:
        try:
            chart = load_chart(db, symbol, intent_data(request.intent))
        except IQTSError as error:
            chart, chart_note = None, str(error)
        if chart is None:
            chart_note = chart_note or f"no stored bars for {symbol}"
        else:
            chart_svg = render_svg(chart)
            chart_note = (
                f"{len(chart.candles)} bars of {chart.source}, last close {chart.last_price:,} "
                f"at {chart.last_ts.strftime('%Y-%m-%d %H:%M UTC')}"
            )
    return Detail(
        request=request,
        status=effective_status(request),
        summary=request.describe(),
        symbol=symbol,
        fields=intent_data(request.intent),
        order=order,
        outcome=outcome(request, order),
        verdict_allowed=verdict.get("allowed") if verdict else None,
        policy_version=None if not verdict else str(verdict.get("policy_version")),
        verdict_checked_at=_parse_time(verdict.get("checked_at")),
        verdict_rows=rows,
        chart_svg=chart_svg,
        chart_note=chart_note,
        evidence=evidence_views(request.evidence, db),
    )
