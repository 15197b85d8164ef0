"""Web sessions of people signed in to the inbox: the one owner of the ``web_sessions`` table.

A row is keyed by the sha256 of the random session id (the browser holds only the id, signed); it names the
user, the session's CSRF token and an absolute expiry. A disabled user's sessions stop working at once (the
lookup checks the user), and signing out deletes the row.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict

from approvals.users import Role, User
from engine.audit.log import append as audit
from engine.store.database import Database


class WebSession(BaseModel):
    """A live session: whose, and the CSRF token its forms carry."""

    model_config = ConfigDict(frozen=True)

    id_hash: str
    user: User
    csrf_token: str


def session_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def load_session(db: Database, session_id: str) -> WebSession | None:
    """The unexpired session of an enabled user with this id, else None."""
    id_hash = session_hash(session_id)
    with db.connection() as conn:
        row = conn.execute(
            "SELECT s.csrf, u.id, u.username, u.role, u.disabled FROM web_sessions s "
            "JOIN users u ON u.id = s.user_id WHERE s.id_hash = %s AND s.expires_at > now()",
            (id_hash,),
        ).fetchone()
    if row is None or row[4]:
        return None
    user = User(id=int(row[1]), username=str(row[2]), role=Role.parse(str(row[3])), disabled=bool(row[4]))
    return WebSession(id_hash=id_hash, user=user, csrf_token=str(row[0]))


def create_session(db: Database, user: User, via: str, ttl: timedelta) -> tuple[str, str]:
    """A new session for ``user`` (audited): (session id for the cookie, CSRF token). Purges expired ones."""
    session_id = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with db.connection() as conn:
        conn.execute("DELETE FROM web_sessions WHERE expires_at <= now()")
        conn.execute(
            "INSERT INTO web_sessions (id_hash, user_id, csrf, created_at, expires_at) VALUES (%s, %s, %s, %s, %s)",
            (session_hash(session_id), user.id, csrf, now, now + ttl),
        )
        audit(conn, user.username, "auth.signed_in", f"user:{user.username}", {"via": via})
    return session_id, csrf


def delete_session(db: Database, id_hash: str, username: str) -> None:
    """Sign out: the session stops working at once (audited)."""
    with db.connection() as conn:
        conn.execute("DELETE FROM web_sessions WHERE id_hash = %s", (id_hash,))
        audit(conn, username, "auth.signed_out", f"user:{username}", {})
