"""Signing in and out, sessions, cookies, CSRF: no page is readable without a session."""

from __future__ import annotations

import stat

import httpx

from engine.bus import InProcessBus
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database
from tests.integration.inbox.helpers import People, Propose, form_csrf, session_csrf, sign_in
from ui.api.app import create_app
from ui.api.auth import SESSION_COOKIE, SESSION_KEY_FILE


async def test_pages_redirect_and_api_refuses_without_a_session(client: httpx.AsyncClient, propose: Propose) -> None:
    request = await propose()
    for path in ("/", "/inbox", f"/inbox/{request.id}", "/history?status=pending", "/inbox/fragment"):
        response = await client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=/"), path
        assert request.id not in response.text
    for path in ("/api/approvals", f"/api/approvals/{request.id}", "/api/orders", "/api/session", "/inbox/events"):
        response = await client.get(path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
        assert request.id not in response.text
    refused = await client.post(f"/api/approvals/{request.id}/approve")
    assert refused.status_code == 401
    page_post = await client.post(f"/inbox/{request.id}/approve", data={"seen_hash": request.intent_hash})
    assert page_post.status_code == 303 and page_post.headers["location"].startswith("/login")
    # the stylesheet is not a page: it is public
    assert (await client.get("/static/inbox.css")).status_code == 200


async def test_wrong_password_is_refused_without_a_session(client: httpx.AsyncClient, people: People) -> None:
    response = await sign_in(client, people.approver.username, "not the password at all")
    assert response.status_code == 401
    assert "Wrong username or password" in response.text
    assert SESSION_COOKIE not in response.cookies
    unknown = await sign_in(client, "nobody-at-all", "not the password at all")
    assert unknown.status_code == 401 and "Wrong username or password" in unknown.text
    assert (await client.get("/inbox")).status_code == 303


async def test_sign_in_needs_the_login_form_token(client: httpx.AsyncClient, people: People) -> None:
    forged = await client.post(
        "/login", data={"username": people.approver.username, "password": "correct horse battery staple"}
    )
    assert forged.status_code == 403
    assert "expired" in forged.text
    assert SESSION_COOKIE not in forged.cookies


async def test_sign_in_sets_a_strict_httponly_cookie_and_signs_out(
    client: httpx.AsyncClient, people: People, settings: Settings
) -> None:
    response = await sign_in(client, people.approver.username)
    assert response.status_code == 303 and response.headers["location"] == "/inbox"
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE + "="))
    lowered = cookie.lower()
    assert "httponly" in lowered and "samesite=strict" in lowered and "path=/" in lowered
    assert "secure" not in lowered  # the public URL is http here
    page = await client.get("/inbox")
    assert page.status_code == 200 and people.approver.username in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert page.headers["x-frame-options"] == "DENY"
    key = settings.state_dir / SESSION_KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600

    old_cookie = client.cookies.get(SESSION_COOKIE)
    assert old_cookie is not None
    no_csrf = await client.post("/logout")
    assert no_csrf.status_code == 403
    out = await client.post("/logout", data={"csrf_token": form_csrf(page.text)})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert (await client.get("/inbox")).status_code == 303
    # the server-side session is gone: replaying the old cookie does not sign anyone in
    client.cookies.set(SESSION_COOKIE, old_cookie)
    assert (await client.get("/inbox")).status_code == 303


async def test_secure_cookie_when_the_public_url_is_https(settings: Settings, db: Database, people: People) -> None:
    runtime = Runtime(
        settings=settings.model_copy(update={"public_url": "https://iqts.example"}), db=db, bus=InProcessBus()
    )
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
        response = await sign_in(http, people.approver.username)
        cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE + "="))
        assert "secure" in cookie.lower()


async def test_a_tampered_or_foreign_cookie_is_no_session(client: httpx.AsyncClient, people: People) -> None:
    await sign_in(client, people.viewer.username)
    good = client.cookies.get(SESSION_COOKIE)
    assert good is not None
    session_id, _, mac = good.rpartition(".")
    for forged in (session_id + "x." + mac, session_id + "." + mac[:-2] + "AA", "not-a-cookie"):
        client.cookies.set(SESSION_COOKIE, forged)
        assert (await client.get("/inbox")).status_code == 303
        assert (await client.get("/api/approvals")).status_code == 401


async def test_next_is_never_an_open_redirect(client: httpx.AsyncClient, people: People) -> None:
    page = await client.get("/login", params={"next": "//evil.example/x"})
    assert 'name="next" value="/inbox"' in page.text
    response = await client.post(
        "/login",
        data={
            "username": people.viewer.username,
            "password": "correct horse battery staple",
            "csrf_token": form_csrf(page.text),
            "next": "https://evil.example/",
        },
    )
    assert response.status_code == 303 and response.headers["location"] == "/inbox"


async def test_bad_bearer_tokens_are_401(client: httpx.AsyncClient, people: People) -> None:
    for header in ("Bearer iqts_forged", "Basic abc", "Bearer "):
        response = await client.get("/api/approvals", headers={"Authorization": header})
        assert response.status_code == 401, header
    ok = await client.get("/api/session", headers={"Authorization": f"Bearer {people.trader_token}"})
    assert ok.status_code == 200
    assert ok.json() == {
        "username": people.trader.username,
        "role": "trader",
        "auth": "token",
        "can_decide": False,
        "csrf_token": None,
    }


async def test_session_api_reports_password_auth_and_csrf(client: httpx.AsyncClient, people: People) -> None:
    await sign_in(client, people.approver.username)
    body = (await client.get("/api/session")).json()
    assert body["auth"] == "password" and body["can_decide"] is True and body["role"] == "approver"
    assert body["csrf_token"] == await session_csrf(client)
