"""Users, roles and API tokens stored in PostgreSQL (argon2id passwords, sha256-hashed tokens)."""

from __future__ import annotations

import hashlib
import secrets
from enum import IntEnum
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel

from engine.audit.log import append as audit
from engine.errors import IQTSError, NotFoundError, ValidationFailedError
from engine.store.database import Database

TOKEN_PREFIX = "iqts_"  # noqa: S105 (a public marker, not a secret)
_TOKEN_BYTES = 32
_hasher = PasswordHasher()
# a real hash to compare against when the user does not exist, so timing does not reveal usernames
_DUMMY_HASH = _hasher.hash("not-a-real-password")


class Role(IntEnum):
    """Each role can do what the ones below it can."""

    VIEWER = 1  # read data, runs, approvals
    TRADER = 2  # propose orders and cancels, engage the kill switch
    APPROVER = 3  # approve or reject requests
    ADMIN = 4  # manage users

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise ValidationFailedError(f"unknown role {name!r}: use viewer, trader, approver or admin") from None

    @property
    def label(self) -> str:
        return self.name.lower()


class User(BaseModel):
    id: int
    username: str
    role: Role
    disabled: bool = False

    def can(self, role: Role) -> bool:
        return not self.disabled and self.role >= role


class AuthError(IQTSError):
    """Bad credentials or token (the message never says which part was wrong)."""


class PermissionDeniedError(IQTSError):
    """The user's role does not allow this."""


def require(user: User, role: Role, action: str) -> None:
    if not user.can(role):
        raise PermissionDeniedError(f"{user.username} ({user.role.label}) may not {action}: needs {role.label}")


def _row_to_user(row: tuple[Any, ...]) -> User:
    return User(id=int(row[0]), username=str(row[1]), role=Role.parse(str(row[2])), disabled=bool(row[3]))


def _check_password(password: str) -> None:
    if len(password) < 10:
        raise ValidationFailedError("password must be at least 10 characters")


def create_user(db: Database, username: str, password: str, role: Role, *, actor: str = "system") -> User:
    """Add a user; usernames are lower-case letters, digits, '_', '.', '-'."""
    username = username.strip().lower()
    _check_password(password)
    with db.connection() as conn:
        exists = conn.execute("SELECT 1 FROM users WHERE username = %s", (username,)).fetchone()
        if exists:
            raise ValidationFailedError(f"user {username!r} already exists")
        try:
            row = conn.execute(
                "INSERT INTO users (username, password_hash, role) VALUES (%s, %s, %s) "
                "RETURNING id, username, role, disabled",
                (username, _hasher.hash(password), role.label),
            ).fetchone()
        except Exception as error:  # the CHECK constraint on the username
            if "users_username_check" in str(error):
                raise ValidationFailedError(
                    f"invalid username {username!r}: 2-64 of a-z, 0-9, '_', '.', '-', starting alphanumeric"
                ) from None
            raise
        assert row is not None
        audit(conn, actor, "user.created", f"user:{username}", {"role": role.label})
    return _row_to_user(row)


def set_password(db: Database, username: str, password: str, *, actor: str) -> None:
    _check_password(password)
    with db.connection() as conn:
        cur = conn.execute(
            "UPDATE users SET password_hash = %s WHERE username = %s", (_hasher.hash(password), username)
        )
        if cur.rowcount == 0:
            raise NotFoundError(f"no user {username!r}")
        audit(conn, actor, "user.password_set", f"user:{username}", {})


def get_user(db: Database, username: str) -> User:
    with db.connection() as conn:
        row = conn.execute(
            "SELECT id, username, role, disabled FROM users WHERE username = %s", (username.strip().lower(),)
        ).fetchone()
    if row is None:
        raise NotFoundError(f"no user {username!r}")
    return _row_to_user(row)


def list_users(db: Database) -> list[User]:
    with db.connection() as conn:
        rows = conn.execute("SELECT id, username, role, disabled FROM users ORDER BY username").fetchall()
    return [_row_to_user(r) for r in rows]


def authenticate(db: Database, username: str, password: str) -> User:
    """The user if the password matches and the account is enabled; AuthError otherwise."""
    with db.connection() as conn:
        row = conn.execute(
            "SELECT id, username, role, disabled, password_hash FROM users WHERE username = %s",
            (username.strip().lower(),),
        ).fetchone()
    stored = str(row[4]) if row is not None else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        raise AuthError("wrong username or password") from None
    if row is None or row[3]:
        raise AuthError("wrong username or password")
    return _row_to_user(row[:4])


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(db: Database, username: str, name: str, *, actor: str) -> str:
    """A new API token for ``username`` (shown once; only its hash is stored)."""
    user = get_user(db, username)
    token = TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)
    with db.connection() as conn:
        conn.execute(
            "INSERT INTO api_tokens (user_id, name, token_sha256) VALUES (%s, %s, %s)", (user.id, name, _digest(token))
        )
        audit(conn, actor, "token.issued", f"user:{user.username}", {"name": name})
    return token


def resolve_token(db: Database, token: str) -> User:
    """The enabled user owning an unrevoked token; AuthError otherwise."""
    if not token.startswith(TOKEN_PREFIX):
        raise AuthError("invalid token")
    with db.connection() as conn:
        row = conn.execute(
            "UPDATE api_tokens t SET last_used_at = now() FROM users u "
            "WHERE t.token_sha256 = %s AND t.revoked_at IS NULL AND u.id = t.user_id AND NOT u.disabled "
            "RETURNING u.id, u.username, u.role, u.disabled",
            (_digest(token),),
        ).fetchone()
    if row is None:
        raise AuthError("invalid token")
    return _row_to_user(row)


def revoke_token(db: Database, token: str, *, actor: str) -> bool:
    """Revoke one token (not all of the user's, as ``revoke_tokens`` does); True if it was still valid."""
    with db.connection() as conn:
        row = conn.execute(
            "UPDATE api_tokens t SET revoked_at = now() FROM users u "
            "WHERE t.token_sha256 = %s AND t.revoked_at IS NULL AND u.id = t.user_id RETURNING t.name, u.username",
            (_digest(token),),
        ).fetchone()
        if row is None:
            return False
        audit(conn, actor, "token.revoked", f"user:{row[1]}", {"name": str(row[0]), "count": 1})
    return True


def revoke_tokens(db: Database, username: str, *, actor: str) -> int:
    user = get_user(db, username)
    with db.connection() as conn:
        cur = conn.execute(
            "UPDATE api_tokens SET revoked_at = now() WHERE user_id = %s AND revoked_at IS NULL", (user.id,)
        )
        audit(conn, actor, "token.revoked", f"user:{user.username}", {"count": cur.rowcount})
        return cur.rowcount


INITIAL_ADMIN = "admin"


def ensure_initial_admin(db: Database, password_file: Path) -> str | None:
    """On a fresh install (no users at all), create ``admin`` with a random password.

    The password is written to ``password_file`` (mode 0600) and returned once, so ``iqts up`` can show it;
    None when users already exist.
    """
    with db.connection() as conn:
        row = conn.execute("SELECT count(*) FROM users").fetchone()
    if row is not None and row[0] > 0:
        return None
    password = secrets.token_urlsafe(12)
    create_user(db, INITIAL_ADMIN, password, Role.ADMIN, actor="system")
    password_file.parent.mkdir(parents=True, exist_ok=True)
    password_file.touch(mode=0o600, exist_ok=True)
    password_file.chmod(0o600)
    password_file.write_text(password + "\n", encoding="utf-8")
    return password
