"""The JSON API of the inbox: list, read, approve and reject requests; read orders.

Authentication: ``Authorization: Bearer <api token>`` or the inbox session cookie. Session requests that
change state need the ``X-CSRF-Token`` header (``GET /api/session`` returns it). API tokens can read and
never decide: approve and reject answer 403 to them, whatever the user's role.
IQTS errors map to 4xx with ``{"detail": reason}``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field, field_validator
from pydantic.config import JsonDict

from approvals.service import (
    ApprovalRequest,
    ReleaseKillSwitch,
    Requester,
    RequestKind,
    Status,
    decide,
    get_request,
    list_requests,
    request_decision,
)
from approvals.users import Role, require
from engine.errors import IQTSError, NotFoundError
from engine.execution.models import SYMBOL_PATTERN
from engine.execution.oms import OrderRecord, get_order, list_orders
from engine.risk.killswitch import KillSwitchState, engage
from engine.risk.killswitch import status as kill_switch_status
from engine.runtime import Runtime
from engine.store.database import Database
from ui.api.auth import CSRF_HEADER, Principal, api_csrf, current_user
from ui.api.inbox.views import http_status

router = APIRouter(prefix="/api", tags=["approvals"])

MAX_REASON: Final = 1000
ID_PATTERN: Final = r"^[A-Za-z0-9_-]+$"
NAME_PATTERN: Final = r"^[A-Za-z0-9_.@:-]+$"
HASH_PATTERN: Final = r"^[0-9a-f]{64}$"
REQUEST_ID = Annotated[
    str, Path(min_length=1, max_length=64, pattern=ID_PATTERN, description="approval request id, e.g. apr_…")
]


class ErrorOut(BaseModel):
    detail: str


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


UNAUTHORIZED: Final[dict[int | str, dict[str, Any]]] = {401: _error("no valid session or API token")}
NOT_FOUND: Final[dict[int | str, dict[str, Any]]] = {404: _error("no such request or order")}
DECIDE_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    **UNAUTHORIZED,
    400: _error("the request cannot be decided as asked"),
    403: _error("not allowed: API tokens never decide, the role is below approver, or the CSRF token is missing"),
    **NOT_FOUND,
    409: _error("not pending any more, expired, changed since shown (seen_hash), or four-eyes"),
}


class SessionOut(BaseModel):
    username: str
    role: str
    auth: Literal["password", "token"]
    can_decide: bool
    csrf_token: str | None = Field(None, description=f"send it as {CSRF_HEADER} on POSTs made with the session cookie")


class ApprovalDetail(ApprovalRequest):
    """A request with the order made from it (once approved and submitted)."""

    order: OrderRecord | None = None


class ApproveIn(BaseModel):
    seen_hash: str | None = Field(
        None, pattern=HASH_PATTERN, description="the intent hash you were shown; refused if it changed"
    )


# what str.strip() removes (JSON Schema's \s differs: it lacks \x1c-\x1f and \x85), spelled out for the schema
_PY_SPACE = r"\t\n\x0b\x0c\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


class RejectIn(BaseModel):
    reason: str = Field(
        min_length=1,
        max_length=MAX_REASON,
        description="why: for the requester and the audit log (not blank, no NUL character)",
        # documented for clients; the validator below enforces it with a message that says what is wrong
        json_schema_extra={"pattern": rf"^[^\x00]*[^\x00{_PY_SPACE}][^\x00]*$"},
    )
    seen_hash: str | None = Field(None, pattern=HASH_PATTERN)

    @field_validator("reason")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("the reason contains a NUL character")
        if not value.strip():
            raise ValueError("a rejection needs a reason")
        return value.strip()


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _raise(error: IQTSError) -> HTTPException:
    return HTTPException(http_status(error), str(error))


ApiPrincipal = Annotated[Principal, Depends(current_user)]
CsrfPrincipal = Annotated[Principal, Depends(api_csrf)]


@router.get("/session", response_model=SessionOut, summary="Who is signed in", responses={**UNAUTHORIZED})
async def session_info(principal: ApiPrincipal) -> SessionOut:
    return SessionOut(
        username=principal.user.username,
        role=principal.user.role.label,
        auth=principal.auth,
        can_decide=principal.can_decide,
        csrf_token=principal.csrf_token,
    )


@router.get(
    "/approvals",
    response_model=list[ApprovalRequest],
    summary="Approval requests, newest first",
    responses={**UNAUTHORIZED},
)
async def approvals(
    request: Request,
    principal: ApiPrincipal,
    status: Annotated[Status | None, Query(description="only this status")] = None,
    kind: Annotated[RequestKind | None, Query(description="only this kind")] = None,
    requester: Annotated[
        str | None, Query(max_length=64, pattern=NAME_PATTERN, description="only requests by this user")
    ] = None,
    symbol: Annotated[
        str | None, Query(max_length=64, pattern=SYMBOL_PATTERN, description="only orders of this symbol, e.g. BTC/USD")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[ApprovalRequest]:
    return await asyncio.to_thread(
        list_requests,
        _runtime(request).db,
        status=status,
        kind=kind,
        requested_by=requester,
        symbol=symbol,
        limit=limit,
    )


def _detail(db: Database, request_id: str) -> ApprovalDetail:
    approval = get_request(db, request_id)
    order = None
    if approval.kind == "order":
        with db.connection() as conn:
            order = get_order(conn, approval_id=approval.id)
    return ApprovalDetail(**approval.model_dump(), order=order)


@router.get(
    "/approvals/{request_id}",
    response_model=ApprovalDetail,
    summary="One approval request, with its order once made",
    responses={**UNAUTHORIZED, **NOT_FOUND},
)
async def approval(request: Request, request_id: REQUEST_ID, principal: ApiPrincipal) -> ApprovalDetail:
    try:
        return await asyncio.to_thread(_detail, _runtime(request).db, request_id)
    except IQTSError as error:
        raise _raise(error) from None


async def _decide(
    request: Request, principal: Principal, request_id: str, *, approve: bool, reason: str | None, seen_hash: str | None
) -> ApprovalRequest:
    runtime = _runtime(request)
    try:
        return await decide(
            runtime.db,
            runtime.bus,
            runtime.settings,
            request_id,
            principal.user,
            approve=approve,
            auth=principal.auth,
            reason=reason,
            seen_hash=seen_hash,
        )
    except IQTSError as error:
        raise _raise(error) from None


@router.post(
    "/approvals/{request_id}/approve",
    response_model=ApprovalRequest,
    summary="Approve a pending request (signed-in approvers only, with X-CSRF-Token)",
    responses=DECIDE_RESPONSES,
)
async def approve(
    request: Request, request_id: REQUEST_ID, principal: CsrfPrincipal, body: ApproveIn | None = None
) -> ApprovalRequest:
    return await _decide(
        request, principal, request_id, approve=True, reason=None, seen_hash=body.seen_hash if body else None
    )


@router.post(
    "/approvals/{request_id}/reject",
    response_model=ApprovalRequest,
    summary="Reject a pending request with a reason (signed-in approvers only, with X-CSRF-Token)",
    responses=DECIDE_RESPONSES,
)
async def reject(request: Request, request_id: REQUEST_ID, principal: CsrfPrincipal, body: RejectIn) -> ApprovalRequest:
    return await _decide(request, principal, request_id, approve=False, reason=body.reason, seen_hash=body.seen_hash)


@router.get("/orders", response_model=list[OrderRecord], summary="Orders, newest first", responses={**UNAUTHORIZED})
async def orders(
    request: Request,
    principal: ApiPrincipal,
    open_only: Annotated[bool, Query(description="only orders still live at the venue")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[OrderRecord]:
    return await asyncio.to_thread(list_orders, _runtime(request).db, open_only=open_only, limit=limit)


def _order(db: Database, order_id: int) -> OrderRecord:
    with db.connection() as conn:
        record = get_order(conn, order_id=order_id)
    if record is None:
        raise NotFoundError(f"no order {order_id}")
    return record


@router.get(
    "/orders/{order_id}",
    response_model=OrderRecord,
    summary="One order",
    responses={**UNAUTHORIZED, **NOT_FOUND},
)
async def order(
    request: Request, order_id: Annotated[int, Path(ge=1, le=2**63 - 1)], principal: ApiPrincipal
) -> OrderRecord:
    try:
        return await asyncio.to_thread(_order, _runtime(request).db, order_id)
    except IQTSError as error:
        raise _raise(error) from None


# -- the kill switch: engage at once (any trader), release through an approval decided in the inbox ----------
_NO_NUL: JsonDict = {"pattern": r"^[^\x00]*$"}
"""PostgreSQL stores no NUL character in text or JSON: such a body was a 500; it is refused as a 422."""


def _without_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("the text contains a NUL character")
    return value


class EngageIn(BaseModel):
    reason: str = Field(
        min_length=3,
        max_length=500,
        description="why trading must stop (recorded and shown; no NUL character)",
        json_schema_extra=_NO_NUL,
    )

    _clean = field_validator("reason")(_without_nul)


class ReleaseRequestIn(BaseModel):
    rationale: str = Field(
        "",
        max_length=4000,
        description="for the approver: why trading may resume (no NUL character)",
        json_schema_extra=_NO_NUL,
    )

    _clean = field_validator("rationale")(_without_nul)


TRADER_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    **UNAUTHORIZED,
    400: _error("the request cannot be made as asked (e.g. the switch is not engaged)"),
    403: _error("not allowed: the role is below trader, or the CSRF token is missing"),
}


@router.get(
    "/kill-switch", response_model=KillSwitchState, summary="The kill switch as persisted", responses={**UNAUTHORIZED}
)
async def kill_switch(request: Request, principal: ApiPrincipal) -> KillSwitchState:
    return await asyncio.to_thread(kill_switch_status, _runtime(request).db)


@router.post(
    "/kill-switch/engage",
    response_model=KillSwitchState,
    summary="Engage the kill switch now (traders; no approval needed)",
    responses=TRADER_RESPONSES,
)
async def engage_kill_switch(request: Request, principal: CsrfPrincipal, body: EngageIn) -> KillSwitchState:
    runtime = _runtime(request)
    try:
        require(principal.user, Role.TRADER, "engage the kill switch")
        return await engage(runtime.db, runtime.bus, principal.user.username, body.reason)
    except IQTSError as error:
        raise _raise(error) from None


@router.post(
    "/kill-switch/release-requests",
    response_model=ApprovalRequest,
    summary="Ask for the kill switch's release: an approver decides it in the inbox, then it takes effect",
    responses=TRADER_RESPONSES,
)
async def request_kill_switch_release(
    request: Request, principal: CsrfPrincipal, body: ReleaseRequestIn | None = None
) -> ApprovalRequest:
    runtime = _runtime(request)
    asker = Requester(user=principal.user.username, kind="api")
    try:
        require(principal.user, Role.TRADER, "ask for the kill switch's release")
        ask = ReleaseKillSwitch()
        return await request_decision(
            runtime.db, runtime.bus, runtime.settings, ask, asker, body.rationale if body else ""
        )
    except IQTSError as error:
        raise _raise(error) from None
