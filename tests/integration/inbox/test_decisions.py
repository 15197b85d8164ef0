"""Approve and reject through the JSON API and the page forms: CSRF, tokens, reasons, expiry, four-eyes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx

from approvals.service import APPROVED_ORDERS_TOPIC, EVENTS_TOPIC, get_request
from engine.audit.log import verify
from engine.bus import InProcessBus
from engine.runtime import Runtime
from engine.store.database import Database
from tests.integration.inbox.helpers import People, Propose, form_csrf, session_csrf, sign_in
from ui.api.app import create_app


def _expire_now(db: Database, request_id: str) -> None:
    """As if the request's time ran out (without waiting for the real 15 minutes)."""
    with db.connection() as conn:
        conn.execute(
            "UPDATE approval_requests SET expires_at = %s WHERE id = %s",
            (datetime.now(UTC) - timedelta(seconds=1), request_id),
        )


async def test_approve_through_the_api_with_session_and_csrf(
    client: httpx.AsyncClient, runtime: Runtime, people: People, propose: Propose, unique: str
) -> None:
    request = await propose()
    bus = runtime.bus
    await bus.ensure_group(APPROVED_ORDERS_TOPIC, f"t{unique}", start="$")
    await bus.ensure_group(EVENTS_TOPIC, f"t{unique}", start="$")
    await sign_in(client, people.approver.username)
    url = f"/api/approvals/{request.id}/approve"

    no_header = await client.post(url, json={"seen_hash": request.intent_hash})
    assert no_header.status_code == 403
    assert "CSRF" in no_header.json()["detail"]
    wrong = await client.post(url, json={}, headers={"X-CSRF-Token": "nope"})
    assert wrong.status_code == 403
    assert get_request(runtime.db, request.id).status == "pending"

    csrf = await session_csrf(client)
    changed = await client.post(url, json={"seen_hash": "0" * 64}, headers={"X-CSRF-Token": csrf})
    assert changed.status_code == 409
    assert "not the one you were shown" in changed.json()["detail"]

    ok = await client.post(url, json={"seen_hash": request.intent_hash}, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["status"] == "approved" and body["decided_by"] == people.approver.username
    # the execution worker is told, the inbox too
    approved = await bus.read(APPROVED_ORDERS_TOPIC, f"t{unique}", "t", block_ms=100)
    assert [m.payload for m in approved] == [{"approval_id": request.id}]
    events = await bus.read(EVENTS_TOPIC, f"t{unique}", "t", block_ms=100)
    assert {"id": request.id, "status": "approved", "kind": "order"} in [m.payload for m in events]

    again = await client.post(url, json={}, headers={"X-CSRF-Token": csrf})
    assert again.status_code == 409 and "is approved, not pending" in again.json()["detail"]
    detail = await client.get(f"/api/approvals/{request.id}")
    assert detail.status_code == 200 and detail.json()["status"] == "approved" and detail.json()["order"] is None
    assert verify(runtime.db).ok


async def test_a_token_can_read_but_never_decide(client: httpx.AsyncClient, people: People, propose: Propose) -> None:
    request = await propose()
    for token in (people.trader_token, people.approver_token):  # not even an approver's token
        headers = {"Authorization": f"Bearer {token}"}
        listed = await client.get(
            "/api/approvals", params={"status": "pending", "requester": people.trader.username}, headers=headers
        )
        assert listed.status_code == 200
        assert request.id in [r["id"] for r in listed.json()]
        assert (await client.get(f"/api/approvals/{request.id}", headers=headers)).status_code == 200
        approve = await client.post(f"/api/approvals/{request.id}/approve", json={}, headers=headers)
        assert approve.status_code == 403
        reject = await client.post(f"/api/approvals/{request.id}/reject", json={"reason": "no"}, headers=headers)
        assert reject.status_code == 403
    assert "decide" in approve.json()["detail"] or "API token" in approve.json()["detail"]
    still = await client.get(f"/api/approvals/{request.id}", headers=headers)
    assert still.json()["status"] == "pending"


async def test_a_viewer_cannot_decide(client: httpx.AsyncClient, people: People, propose: Propose) -> None:
    request = await propose()
    await sign_in(client, people.viewer.username)
    response = await client.post(
        f"/api/approvals/{request.id}/approve", json={}, headers={"X-CSRF-Token": await session_csrf(client)}
    )
    assert response.status_code == 403 and "needs approver" in response.json()["detail"]
    page = await client.get(f"/inbox/{request.id}")
    assert 'action="/inbox/' not in page.text and "deciding needs the approver role" in page.text


async def test_reject_needs_a_reason(
    client: httpx.AsyncClient, runtime: Runtime, people: People, propose: Propose
) -> None:
    request = await propose()
    await sign_in(client, people.approver.username)
    csrf = await session_csrf(client)
    url = f"/api/approvals/{request.id}/reject"
    for body in ({}, {"reason": ""}, {"reason": "   "}):
        response = await client.post(url, json=body, headers={"X-CSRF-Token": csrf})
        assert response.status_code == 422, body
    page = await client.get(f"/inbox/{request.id}")
    form = await client.post(
        f"/inbox/{request.id}/reject",
        data={"csrf_token": form_csrf(page.text), "seen_hash": request.intent_hash, "reason": "  "},
    )
    assert form.status_code == 422 and "needs a reason" in form.text
    assert get_request(runtime.db, request.id).status == "pending"

    ok = await client.post(url, json={"reason": "too large for a Friday"}, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200
    assert ok.json()["status"] == "rejected" and ok.json()["decision_reason"] == "too large for a Friday"


async def test_expired_requests_cannot_be_decided(
    client: httpx.AsyncClient, runtime: Runtime, people: People, propose: Propose
) -> None:
    request = await propose()
    _expire_now(runtime.db, request.id)
    await sign_in(client, people.approver.username)
    response = await client.post(
        f"/api/approvals/{request.id}/approve", json={}, headers={"X-CSRF-Token": await session_csrf(client)}
    )
    assert response.status_code == 409 and "expired" in response.json()["detail"]
    page = await client.get(f"/inbox/{request.id}")
    assert re.search(r'class="status expired"', page.text)
    assert 'action="/inbox/' not in page.text  # no decision forms on an expired request
    inbox = await client.get("/inbox")
    assert request.id not in inbox.text
    form = await client.post(
        f"/inbox/{request.id}/approve", data={"csrf_token": form_csrf(page.text), "seen_hash": request.intent_hash}
    )
    assert form.status_code == 409 and "expired" in form.text and "Traceback" not in form.text


async def test_four_eyes_refuses_the_requesters_own_decision(
    settings, db: Database, people: People, propose: Propose
) -> None:
    strict = Runtime(settings=settings.model_copy(update={"four_eyes": True}), db=db, bus=InProcessBus())
    request = await propose(by=people.approver.username, runtime_=strict)
    transport = httpx.ASGITransport(app=create_app(strict))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        await sign_in(http, people.approver.username)
        csrf = await session_csrf(http)
        own = await http.post(f"/api/approvals/{request.id}/approve", json={}, headers={"X-CSRF-Token": csrf})
        assert own.status_code == 409 and "four-eyes" in own.json()["detail"]
        page = await http.get(f"/inbox/{request.id}")
        assert "Four-eyes" in page.text and 'action="/inbox/' not in page.text

    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        await sign_in(other, people.approver2.username)
        ok = await other.post(
            f"/api/approvals/{request.id}/approve", json={}, headers={"X-CSRF-Token": await session_csrf(other)}
        )
        assert ok.status_code == 200 and ok.json()["decided_by"] == people.approver2.username


async def test_page_forms_approve_and_reject(
    client: httpx.AsyncClient, runtime: Runtime, people: People, propose: Propose
) -> None:
    first, second = await propose(), await propose(quantity="0.02")
    await sign_in(client, people.approver.username)
    page = await client.get(f"/inbox/{first.id}")
    csrf = form_csrf(page.text)
    assert f'name="seen_hash" value="{first.intent_hash}"' in page.text

    missing = await client.post(f"/inbox/{first.id}/approve", data={"seen_hash": first.intent_hash})
    assert missing.status_code == 403 and "CSRF" in missing.text and "<html" in missing.text
    assert get_request(runtime.db, first.id).status == "pending"

    approved = await client.post(
        f"/inbox/{first.id}/approve", data={"csrf_token": csrf, "seen_hash": first.intent_hash}
    )
    assert approved.status_code == 303 and approved.headers["location"] == f"/inbox/{first.id}?decided=approved"
    shown = await client.get(approved.headers["location"])
    assert 'data-status="approved"' in shown.text and "Approved." in shown.text

    rejected = await client.post(
        f"/inbox/{second.id}/reject",
        data={"csrf_token": csrf, "seen_hash": second.intent_hash, "reason": "wait for the FOMC minutes"},
    )
    assert rejected.status_code == 303
    after = get_request(runtime.db, second.id)
    assert after.status == "rejected" and after.decision_reason == "wait for the FOMC minutes"
    assert after.decided_by == people.approver.username


async def test_unknown_ids_are_404_without_a_trace(client: httpx.AsyncClient, people: People) -> None:
    await sign_in(client, people.approver.username)
    page = await client.get("/inbox/apr_doesnotexist00", headers={"Accept": "text/html"})
    assert page.status_code == 404 and "no approval request apr_doesnotexist00" in page.text
    assert "Traceback" not in page.text
    api = await client.get("/api/approvals/apr_doesnotexist00")
    assert api.status_code == 404 and api.json() == {"detail": "no approval request apr_doesnotexist00"}
    order = await client.get("/api/orders/999999999")
    assert order.status_code == 404 and order.json() == {"detail": "no order 999999999"}
    csrf = await session_csrf(client)
    decide = await client.post("/api/approvals/apr_doesnotexist00/approve", json={}, headers={"X-CSRF-Token": csrf})
    assert decide.status_code == 404
