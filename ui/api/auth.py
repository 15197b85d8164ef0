"""Sign-in for the inbox and the JSON API: server-side sessions, CSRF tokens, bearer API tokens.

* People sign in with a username and password (``approvals.users.authenticate``). That creates a session
  stored server-side (table ``web_sessions``, keyed by the sha256 of the session id, with the user id,
  the CSRF token and an absolute expiry); the browser holds only the random session id, signed with a
  per-install secret (HMAC-SHA256, the key lives in ``<state_dir>/session.key``, 0600, made on first use).
  The cookie is HttpOnly, SameSite=Strict, and Secure when the public URL is https. Signing out deletes
  the server-side session, so a copied cookie stops working at once; so does disabling the user.
* CSRF: every session has a random token. Every page form carries it (``csrf_token``) and every
  state-changing page POST checks it; JSON API POSTs authenticated by the session cookie need it in the
  ``X-CSRF-Token`` header. The sign-in form itself is protected by a pre-session token bound to a
  short-lived cookie.
* The JSON API also accepts ``Authorization: Bearer <api token>`` (``approvals.users.resolve_token``):
  such requests need no CSRF token, but their auth method is recorded as ``"token"`` and the approvals
  service never lets a token decide.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import secrets
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Final
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Request, Security, status
from fastapi.responses import RedirectResponse, Response
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from approvals.service import AuthMethod
from approvals.sessions import create_session, delete_session, load_session
from approvals.users import AuthError, Role, User, authenticate, resolve_token
from engine.runtime import Runtime
from engine.store.database import Database
from engine.telemetry import get_logger
from ui.api.inbox.templating import render

log = get_logger(__name__)

SESSION_COOKIE: Final = "iqts_session"
LOGIN_COOKIE: Final = "iqts_login"
CSRF_HEADER: Final = "X-CSRF-Token"
CSRF_FIELD: Final = "csrf_token"
SESSION_TTL: Final = timedelta(hours=8)
LOGIN_FORM_TTL: Final = timedelta(hours=1)
SESSION_KEY_FILE: Final = "session.key"

router = APIRouter(include_in_schema=False)


# -- the per-install secret -----------------------------------------------------------------------------
_secrets: dict[Path, bytes] = {}
_secrets_lock = threading.Lock()


def session_secret(state_dir: Path) -> bytes:
    """The install's signing key: ``<state_dir>/session.key`` (64 hex chars, mode 0600), created on first use."""
    path = (state_dir / SESSION_KEY_FILE).resolve()
    with _secrets_lock:
        cached = _secrets.get(path)
        if cached is not None:
            return cached
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            if path.stat().st_mode & 0o077:
                os.chmod(path, 0o600)  # never leave the key readable by others
            text = path.read_text(encoding="ascii").strip()
        else:
            text = secrets.token_hex(32)
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(text + "\n")
        key = bytes.fromhex(text)
        if len(key) < 32:
            raise RuntimeError(f"{path} holds a key shorter than 32 bytes; delete it to make a new one")
        _secrets[path] = key
        return key


def _mac(key: bytes, purpose: str, value: str) -> str:
    digest = hmac.new(key, f"{purpose}:{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sign(key: bytes, purpose: str, value: str) -> str:
    return f"{value}.{_mac(key, purpose, value)}"


def unsign(key: bytes, purpose: str, signed: str) -> str | None:
    value, _, mac = signed.rpartition(".")
    if not value or not hmac.compare_digest(mac, _mac(key, purpose, value)):
        return None
    return value


# -- who is asking --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Principal:
    """A signed-in person (``auth="password"``, with a CSRF token) or an API token's user (``auth="token"``)."""

    user: User
    auth: AuthMethod
    csrf_token: str | None = None
    session_key: str | None = None

    @property
    def can_decide(self) -> bool:
        return self.auth == "password" and self.user.can(Role.APPROVER)


class LoginRequiredError(Exception):
    """A page was asked for without a session: the handler redirects to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _secure_cookies(runtime: Runtime) -> bool:
    return runtime.settings.api_url.lower().startswith("https://")


def _load_session(db: Database, session_id: str) -> Principal | None:
    found = load_session(db, session_id)
    if found is None:
        return None
    return Principal(user=found.user, auth="password", csrf_token=found.csrf_token, session_key=found.id_hash)


def _create_session(db: Database, user: User, via: str) -> tuple[str, str]:
    """A new session for ``user``: (session id for the cookie, CSRF token)."""
    return create_session(db, user, via, SESSION_TTL)


def _delete_session(db: Database, principal: Principal) -> None:
    if principal.session_key is not None:
        delete_session(db, principal.session_key, principal.user.username)


async def session_principal(request: Request) -> Principal | None:
    """The person whose valid session cookie came with the request, if any."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    runtime = _runtime(request)
    session_id = unsign(session_secret(runtime.settings.state_dir), "session", cookie)
    if session_id is None:
        return None
    return await asyncio.to_thread(_load_session, runtime.db, session_id)


async def token_principal(request: Request) -> Principal | None:
    """The user of the request's bearer API token; 401 for a present but invalid token."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "use 'Authorization: Bearer <api token>'", {"WWW-Authenticate": "Bearer"}
        )
    try:
        user = await asyncio.to_thread(resolve_token, _runtime(request).db, token.strip())
    except AuthError as error:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(error), {"WWW-Authenticate": "Bearer"}) from None
    return Principal(user=user, auth="token")


# declared for the OpenAPI document (and /docs' Authorize button); the checks themselves are above
_bearer_scheme = HTTPBearer(auto_error=False, description="an API token: `iqts users token <user>`")
_cookie_scheme = APIKeyCookie(
    name=SESSION_COOKIE, auto_error=False, description="the inbox session (POSTs also need X-CSRF-Token)"
)


async def current_user(
    request: Request,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer_scheme)] = None,
    _cookie: Annotated[str | None, Security(_cookie_scheme)] = None,
) -> Principal:
    """For the JSON API: a bearer token or a session cookie; 401 otherwise."""
    principal = await token_principal(request) or await session_principal(request)
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "sign in, or send 'Authorization: Bearer <api token>'",
            {"WWW-Authenticate": "Bearer"},
        )
    request.state.principal = principal
    return principal


async def current_page_user(request: Request) -> Principal:
    """For pages: a session cookie, else a redirect to the sign-in page (raised as LoginRequiredError)."""
    principal = await session_principal(request)
    if principal is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequiredError(path)
    request.state.principal = principal
    return principal


def check_csrf(principal: Principal, supplied: str | None) -> None:
    """403 unless a session request carries its session's CSRF token (token requests need none)."""
    if principal.auth == "token":
        return
    expected = principal.csrf_token or ""
    if not supplied or not expected or not hmac.compare_digest(supplied, expected):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token: reload the page and try again")


async def api_csrf(request: Request, principal: Annotated[Principal, Depends(current_user)]) -> Principal:
    """For JSON API POSTs: session requests must send the ``X-CSRF-Token`` header."""
    check_csrf(principal, request.headers.get(CSRF_HEADER))
    return principal


# -- pages ----------------------------------------------------------------------------------------------
def safe_next(value: str | None) -> str:
    """Only a local path (no scheme, no host, no ``//``) may follow sign-in: never an open redirect."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/inbox"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        return "/inbox"
    return value


def login_redirect(next_path: str) -> RedirectResponse:
    return RedirectResponse(f"/login?next={quote(safe_next(next_path), safe='/')}", status.HTTP_303_SEE_OTHER)


def _login_page(
    request: Request, next_path: str, *, error: str | None = None, status_code: int = 200, username: str = ""
) -> Response:
    runtime = _runtime(request)
    nonce = secrets.token_urlsafe(24)
    key = session_secret(runtime.settings.state_dir)
    response = render(
        request,
        "login.html",
        {
            "title": "Sign in · IQTS",
            "next": safe_next(next_path),
            "login_csrf": _mac(key, "login", nonce),
            "error": error,
            "username": username[:64],
            "principal": None,
        },
        status_code=status_code,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=int(LOGIN_FORM_TTL.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=_secure_cookies(runtime),
        path="/login",
    )
    return response


@router.get("/login")
async def login_form(request: Request, next: str = "/inbox") -> Response:
    if await session_principal(request) is not None:
        return RedirectResponse(safe_next(next), status.HTTP_303_SEE_OTHER)
    return _login_page(request, next)


@router.post("/login")
async def login(
    request: Request,
    username: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/inbox",
) -> Response:
    runtime = _runtime(request)
    key = session_secret(runtime.settings.state_dir)
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not nonce or not csrf_token or not hmac.compare_digest(csrf_token, _mac(key, "login", nonce)):
        return _login_page(
            request, next, error="The sign-in form expired. Please try again.", status_code=status.HTTP_403_FORBIDDEN
        )
    if not username.strip() or not password:
        return _login_page(request, next, error="Enter your username and password.", status_code=400)
    if "\x00" in username or "\x00" in password:
        return _login_page(request, next, error="Wrong username or password.", status_code=401)
    try:
        user = await asyncio.to_thread(authenticate, runtime.db, username, password)
    except AuthError:
        log.warning("auth.sign_in_failed", username=username.strip().lower()[:64])
        return _login_page(request, next, error="Wrong username or password.", status_code=401, username=username)
    session_id, _csrf = await asyncio.to_thread(_create_session, runtime.db, user, "password")
    log.info("auth.signed_in", username=user.username)
    response = RedirectResponse(safe_next(next), status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        SESSION_COOKIE,
        sign(key, "session", session_id),
        max_age=int(SESSION_TTL.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=_secure_cookies(runtime),
        path="/",
    )
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(
    request: Request,
    principal: Annotated[Principal, Depends(current_page_user)],
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    check_csrf(principal, csrf_token)
    await asyncio.to_thread(_delete_session, _runtime(request).db, principal)
    response = RedirectResponse("/login", status.HTTP_303_SEE_OTHER)
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=_secure_cookies(_runtime(request))
    )
    return response
