"""The inbox pages: pending requests, one request with its full context and the decision forms, history."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from approvals.service import decide
from approvals.users import Role
from engine.errors import IQTSError
from engine.execution.models import is_symbol
from engine.runtime import Runtime
from ui.api.auth import Principal, check_csrf, current_page_user
from ui.api.inbox.templating import PAGE_HEADERS, render, render_fragment
from ui.api.inbox.views import (
    KINDS,
    NAME_RE,
    STATUSES,
    HistoryFilters,
    history_rows,
    http_status,
    load_detail,
    load_state,
    pending_rows,
    valid_request_id,
)

router = APIRouter(include_in_schema=False)

PagePrincipal = Annotated[Principal, Depends(current_page_user)]
MAX_REASON = 1000

_DECIDED_TEXT = {
    "approved": "Approved. The execution worker submits it after a second risk check.",
    "rejected": "Rejected. The requester sees your reason.",
}


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def error_page(request: Request, status_code: int, message: str, *, back: str | None = None) -> HTMLResponse:
    titles = {
        400: "Not accepted",
        401: "Not signed in",
        403: "Not allowed",
        404: "Not found",
        409: "Cannot do that now",
        422: "Missing or invalid input",
    }
    return render(
        request,
        "error.html",
        {
            "title": f"{titles.get(status_code, 'Error')} · IQTS",
            "heading": titles.get(status_code, "Error"),
            "message": message,
            "status_code": status_code,
            "back": back,
        },
        status_code=status_code,
    )


@router.get("/")
async def home(principal: PagePrincipal) -> RedirectResponse:
    return RedirectResponse("/inbox", status.HTTP_303_SEE_OTHER)


@router.get("/inbox")
async def inbox(request: Request, principal: PagePrincipal) -> HTMLResponse:
    rows = await asyncio.to_thread(pending_rows, _runtime(request).db)
    return render(request, "inbox.html", {"title": "Inbox · IQTS", "nav": "inbox", "rows": rows, "live": True})


@router.get("/inbox/fragment")
async def inbox_fragment(request: Request, principal: PagePrincipal) -> HTMLResponse:
    """The pending list alone, for the page's live refresh."""
    rows = await asyncio.to_thread(pending_rows, _runtime(request).db)
    return HTMLResponse(render_fragment("_pending.html", {"rows": rows}), headers=PAGE_HEADERS)


@router.get("/inbox/{request_id}/state")
async def request_state(request: Request, request_id: str, principal: PagePrincipal) -> Response:
    """The request's current page state (see ``views.page_state``), for an open page that reconnects."""
    if not valid_request_id(request_id):
        return JSONResponse({"detail": "no such approval request"}, status_code=404, headers=PAGE_HEADERS)
    try:
        state = await asyncio.to_thread(load_state, _runtime(request).db, request_id)
    except IQTSError as error:
        return JSONResponse({"detail": str(error)}, status_code=http_status(error), headers=PAGE_HEADERS)
    return JSONResponse({"state": state}, headers=PAGE_HEADERS)


@router.get("/inbox/{request_id}")
async def request_page(request: Request, request_id: str, principal: PagePrincipal, decided: str = "") -> Response:
    if not valid_request_id(request_id):
        return error_page(request, 404, "no such approval request", back="/inbox")
    try:
        detail = await asyncio.to_thread(load_detail, _runtime(request).db, request_id)
    except IQTSError as error:
        return error_page(request, http_status(error), str(error), back="/inbox")
    own = detail.request.requested_by == principal.user.username
    four_eyes_block = own and _runtime(request).settings.four_eyes
    return render(
        request,
        "request.html",
        {
            "title": f"{detail.summary} · IQTS",
            "nav": "inbox",
            "d": detail,
            "live": True,
            "request_id": detail.request.id,
            "request_state": detail.state,
            "can_decide": principal.user.can(Role.APPROVER) and detail.status == "pending" and not four_eyes_block,
            "four_eyes_block": four_eyes_block and detail.status == "pending",
            "is_approver": principal.user.can(Role.APPROVER),
            "flash": _DECIDED_TEXT.get(decided),
            "max_reason": MAX_REASON,
        },
    )


async def _decide(
    request: Request,
    principal: Principal,
    request_id: str,
    *,
    approve: bool,
    csrf_token: str,
    seen_hash: str,
    reason: str,
) -> Response:
    check_csrf(principal, csrf_token)
    if not valid_request_id(request_id):
        return error_page(request, 404, "no such approval request", back="/inbox")
    back = f"/inbox/{request_id}"
    if not seen_hash:
        return error_page(
            request, 400, "The form did not say which version of the request you saw; reload it.", back=back
        )
    reason = reason.strip()
    if "\x00" in reason:
        return error_page(request, 422, "The reason contains a NUL character.", back=back)
    if not approve and not reason:
        return error_page(
            request, 422, "A rejection needs a reason: say why, for the requester and the audit log.", back=back
        )
    if len(reason) > MAX_REASON:
        return error_page(request, 422, f"The reason is longer than {MAX_REASON} characters.", back=back)
    runtime = _runtime(request)
    try:
        await decide(
            runtime.db,
            runtime.bus,
            runtime.settings,
            request_id,
            principal.user,
            approve=approve,
            auth=principal.auth,
            reason=reason or None,
            seen_hash=seen_hash,
        )
    except IQTSError as error:
        return error_page(request, http_status(error), str(error), back=back)
    return RedirectResponse(f"{back}?decided={'approved' if approve else 'rejected'}", status.HTTP_303_SEE_OTHER)


@router.post("/inbox/{request_id}/approve")
async def approve_form(
    request: Request,
    request_id: str,
    principal: PagePrincipal,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    seen_hash: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    return await _decide(
        request, principal, request_id, approve=True, csrf_token=csrf_token, seen_hash=seen_hash, reason=""
    )


@router.post("/inbox/{request_id}/reject")
async def reject_form(
    request: Request,
    request_id: str,
    principal: PagePrincipal,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    seen_hash: Annotated[str, Form(max_length=128)] = "",
    reason: Annotated[str, Form(max_length=MAX_REASON * 2)] = "",
) -> Response:
    return await _decide(
        request, principal, request_id, approve=False, csrf_token=csrf_token, seen_hash=seen_hash, reason=reason
    )


@router.get("/history")
async def history(
    request: Request,
    principal: PagePrincipal,
    status_q: Annotated[str, Query(alias="status", max_length=32)] = "",
    kind: Annotated[str, Query(max_length=32)] = "",
    requester: Annotated[str, Query(max_length=64)] = "",
    symbol: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    status_value = status_q.strip()
    kind = kind.strip()
    if status_value and status_value not in STATUSES:
        return error_page(
            request, 400, f"unknown status {status_value!r}: use one of {', '.join(STATUSES)}", back="/history"
        )
    if kind and kind not in KINDS:
        return error_page(request, 400, f"unknown kind {kind!r}: use one of {', '.join(KINDS)}", back="/history")
    requester, symbol = requester.strip(), symbol.strip()
    if requester and not NAME_RE.fullmatch(requester):
        return error_page(request, 400, "a requester is a user name: letters, digits, '_', '.', '-'", back="/history")
    if symbol and not is_symbol(symbol):
        return error_page(request, 400, f"{symbol!r} is not a symbol such as BTC/USD", back="/history")
    filters = HistoryFilters.model_validate(
        {
            "status": status_value or None,
            "kind": kind or None,
            "requester": requester or None,
            "symbol": symbol or None,
        }
    )
    rows = await asyncio.to_thread(history_rows, _runtime(request).db, filters)
    return render(
        request,
        "history.html",
        {
            "title": "History · IQTS",
            "nav": "history",
            "rows": rows,
            "filters": filters,
            "statuses": STATUSES,
            "kinds": KINDS,
        },
    )
