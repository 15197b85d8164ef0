"""The kill switch's whole life through the real surfaces: engage (CLI, MCP, REST), ask for a release (CLI, MCP,
REST: one pending request), an approver approves it in the inbox (four-eyes on), the release takes effect, audited."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from approvals.users import Role, User, create_user, issue_token
from engine.audit import entries
from engine.bus import InProcessBus
from engine.risk.killswitch import status
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store import system_state
from engine.store.database import Database
from tests.support.cli import run_iqts, settings_env
from tests.support.live_server import free_port, live_server
from ui.api.app import create_app

PASSWORD = "a long enough password"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def api(settings: Settings, db: Database) -> Iterator[str]:
    """The real API (REST, inbox, MCP at /mcp) with four-eyes on, on a free port."""
    port = free_port()
    live = settings.model_copy(update={"api_port": port, "four_eyes": True})
    with live_server(create_app(Runtime(settings=live, db=db, bus=InProcessBus())), port) as url:
        yield url


@pytest.fixture
def clean_switch(db: Database) -> Iterator[None]:
    with db.connection() as conn:
        system_state.delete(conn, ["kill_switch", "breakers"])
    yield
    with db.connection() as conn:
        system_state.delete(conn, ["kill_switch", "breakers"])


def _person(db: Database, role: Role, unique: str) -> User:
    return create_user(db, f"{role.label}{unique}", PASSWORD, role)


def _iqts(settings: Settings, *args: str) -> str:
    """`iqts ARGS` as a user runs it, in process (``tests.support.cli``), on the in-process bus (no Redis URL)."""
    done = run_iqts(*args, env=settings_env(settings) | {"IQTS_REDIS_URL": None})
    assert done.returncode == 0, done.stderr
    return done.stdout


@asynccontextmanager
async def mcp_session(url: str, token: str) -> AsyncIterator[ClientSession]:
    async with (
        httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http,
        streamable_http_client(f"{url}/mcp", http_client=http) as (r, w, _),
        ClientSession(r, w) as s,
    ):
        await s.initialize()
        yield s


async def _call(url: str, token: str, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    async with mcp_session(url, token) as s:
        result = await s.call_tool(tool, args)
    assert not result.isError, result.content
    assert result.structuredContent is not None
    return dict(result.structuredContent)


def _csrf(html: str) -> str:
    match = _CSRF.search(html)
    assert match is not None
    return match.group(1)


async def _signed_in(url: str, username: str) -> httpx.AsyncClient:
    http = httpx.AsyncClient(base_url=url, timeout=60)
    page = await http.get("/login")
    form = {"username": username, "password": PASSWORD, "csrf_token": _csrf(page.text), "next": "/inbox"}
    assert (await http.post("/login", data=form)).status_code in (200, 303)
    return http


async def _approve_in_inbox(http: httpx.AsyncClient, request_id: str) -> httpx.Response:
    page = await http.get(f"/inbox/{request_id}")
    assert page.status_code == 200
    seen = re.search(r'name="seen_hash" value="([0-9a-f]{64})"', page.text)
    assert seen is not None
    form = {"csrf_token": _csrf(page.text), "seen_hash": seen.group(1)}
    return await http.post(f"/inbox/{request_id}/approve", data=form)


@pytest.mark.usefixtures("clean_switch")
async def test_engage_request_approve_release_through_every_surface(
    settings: Settings, db: Database, api: str, unique: str
) -> None:
    trader, approver = _person(db, Role.TRADER, unique), _person(db, Role.APPROVER, unique)
    token = issue_token(db, trader.username, "tests", actor="tests")
    approver_token = issue_token(db, approver.username, "tests", actor="tests")

    # engage: the CLI (`iqts risk kill`), instant
    assert "kill switch ENGAGED by cli-ops" in _iqts(settings, "risk", "kill", "--reason", "drill", "--by", "cli-ops")
    assert status(db).engaged and status(db).reason == "drill"

    # ask for the release on each surface: one pending request for this engagement, whoever asks
    via_cli = _iqts(settings, "risk", "release", "--why", "drill over", "--by", trader.username)
    match = re.search(r"release requested: (apr_[0-9a-f]+) \(pending\)", via_cli)
    assert match is not None, via_cli
    request_id = match.group(1)
    assert f"/inbox/{request_id}" in via_cli
    via_mcp = await _call(api, token, "request_kill_switch_release", {"rationale": "drill over"})
    assert via_mcp["approval_id"] == request_id and via_mcp["status"] == "pending"
    assert via_mcp["summary"].startswith("release the kill switch (engaged by cli-ops at ")
    async with httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {token}"}) as rest:
        via_rest = await rest.post("/api/kill-switch/release-requests", json={"rationale": "drill over"})
        assert via_rest.status_code == 200, via_rest.text
        assert via_rest.json()["id"] == request_id
        assert (await rest.get("/api/kill-switch")).json()["engaged"] is True  # asking releases nothing
    assert status(db).engaged

    # the inbox lists it; four-eyes: the approver cannot approve a release they asked for themselves
    http = await _signed_in(api, approver.username)
    try:
        inbox = await http.get("/inbox")
        assert request_id in inbox.text and "release the kill switch" in inbox.text
        own = await _call(api, approver_token, "engage_kill_switch", {"reason": "second drill"})  # MCP engage
        assert own["engaged"] is True and own["by"] == "cli-ops"  # already engaged: the first engagement stands
        own_request = await _call(api, approver_token, "request_kill_switch_release", {})
        assert own_request["approval_id"] == request_id  # the same pending request (asked by the trader)

        decided = await _approve_in_inbox(http, request_id)
        assert decided.status_code in (200, 303), decided.text
    finally:
        await http.aclose()

    assert not status(db).engaged and status(db).approval_id == request_id and status(db).by == approver.username
    [release] = entries(db, subject="kill_switch", action="kill_switch.release", limit=1)
    assert release.actor == approver.username and release.payload["approval_id"] == request_id
    assert release.payload["engaged_by"] == "cli-ops" and release.payload["engaged_reason"] == "drill"
    shown = await _call(api, token, "get_approval", {"approval_id": request_id})
    assert shown["status"] == "executed" and shown["decided_by"] == approver.username
    assert "kill switch: released" in _iqts(settings, "risk", "status")

    # REST engage by a trader works at once; asking to release a released switch is refused
    async with httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {token}"}) as rest:
        assert (await rest.post("/api/kill-switch/release-requests", json={})).status_code == 400
        nul = await rest.post("/api/kill-switch/engage", json={"reason": "00\u0000"})  # was a 500 (schemathesis)
        assert nul.status_code == 422 and "NUL character" in nul.text and not status(db).engaged
        engaged = await rest.post("/api/kill-switch/engage", json={"reason": "rest drill"})
        assert engaged.status_code == 200 and engaged.json()["by"] == trader.username
    assert status(db).engaged


@pytest.mark.usefixtures("clean_switch")
async def test_the_requester_cannot_approve_their_own_release_and_viewers_cannot_engage(
    db: Database, api: str, unique: str
) -> None:
    approver, viewer = _person(db, Role.APPROVER, unique), _person(db, Role.VIEWER, unique)
    approver_token = issue_token(db, approver.username, "tests", actor="tests")
    viewer_token = issue_token(db, viewer.username, "tests", actor="tests")
    async with httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {viewer_token}"}) as rest:
        assert (await rest.post("/api/kill-switch/engage", json={"reason": "not mine"})).status_code == 403
    assert not status(db).engaged
    await _call(api, approver_token, "engage_kill_switch", {"reason": "mcp drill"})
    asked = await _call(api, approver_token, "request_kill_switch_release", {"rationale": "mine"})
    http = await _signed_in(api, approver.username)
    try:
        page = await http.get(f"/inbox/{asked['approval_id']}")
        assert "Four-eyes: you asked for this" in page.text and 'id="approve"' not in page.text
        form = {"csrf_token": _csrf(page.text), "seen_hash": asked["intent_hash"]}  # the form, forged
        refused = await http.post(f"/inbox/{asked['approval_id']}/approve", data=form)
        assert refused.status_code == 409 and "four-eyes" in refused.text
    finally:
        await http.aclose()
    assert status(db).engaged


@pytest.mark.usefixtures("clean_switch")
async def test_an_approved_release_of_a_switch_no_longer_engaged_fails_saying_why(
    settings: Settings, db: Database, unique: str
) -> None:
    from approvals.service import ReleaseKillSwitch, Requester, decide, get_request, propose_simple, request_decision
    from engine.risk.killswitch import engage, release_intent

    bus = InProcessBus()
    approver = _person(db, Role.APPROVER, unique)
    asker = Requester(user=f"bob{unique}", kind="cli")
    state = await engage(db, bus, "ops", "drill")
    first = await request_decision(db, bus, settings, ReleaseKillSwitch(), asker, "drill over")
    assert (await request_decision(db, bus, settings, ReleaseKillSwitch(), asker)).id == first.id  # still pending
    stale = release_intent(state).model_dump() | {"reason": "drill (typed by hand)"}
    second = await propose_simple(db, bus, settings, "kill_switch_release", stale, asker)
    assert second.id != first.id

    done = await decide(db, bus, settings, first.id, approver, approve=True, auth="password")
    assert done.status == "executed" and not status(db).engaged
    assert done.result is not None and done.result["released_by"] == approver.username
    late = await decide(db, bus, settings, second.id, approver, approve=True, auth="password")
    assert late.status == "failed" and late.result == {"reason": "the kill switch is not engaged; nothing to release"}
    assert get_request(db, second.id).decided_by == approver.username
    [refused] = entries(db, subject="kill_switch", action="kill_switch.release_refused", limit=1)
    assert refused.payload["approval_id"] == second.id
