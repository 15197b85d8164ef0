"""Users, roles and tokens in the real database."""

from __future__ import annotations

import pytest

from approvals.users import (
    AuthError,
    PermissionDeniedError,
    Role,
    authenticate,
    create_user,
    issue_token,
    list_users,
    require,
    resolve_token,
    revoke_tokens,
)
from engine.errors import ValidationFailedError
from engine.store.database import Database


def test_passwords_are_argon2_and_authenticate(db: Database, unique: str) -> None:
    user = create_user(db, f"alice{unique}", "correct horse battery", Role.APPROVER)
    with db.connection() as conn:
        row = conn.execute("SELECT password_hash FROM users WHERE id = %s", (user.id,)).fetchone()
    assert row is not None and row[0].startswith("$argon2id$")
    assert "correct horse" not in row[0]
    assert authenticate(db, f"ALICE{unique}", "correct horse battery").role is Role.APPROVER
    for name, password in ((f"alice{unique}", "wrong password!!"), (f"nobody{unique}", "correct horse battery")):
        with pytest.raises(AuthError, match="wrong username or password"):
            authenticate(db, name, password)


def test_tokens_are_stored_hashed_and_revocable(db: Database, unique: str) -> None:
    create_user(db, f"bot{unique}", "a long enough password", Role.TRADER)
    token = issue_token(db, f"bot{unique}", "vscode", actor="test")
    with db.connection() as conn:
        stored = [r[0] for r in conn.execute("SELECT token_sha256 FROM api_tokens")]
    assert token not in stored and all(len(s) == 64 for s in stored)
    assert resolve_token(db, token).username == f"bot{unique}"
    assert revoke_tokens(db, f"bot{unique}", actor="test") == 1
    with pytest.raises(AuthError):
        resolve_token(db, token)
    with pytest.raises(AuthError):
        resolve_token(db, "iqts_forged")


def test_roles_are_ordered_and_enforced(db: Database, unique: str) -> None:
    viewer = create_user(db, f"vic{unique}", "a long enough password", Role.VIEWER)
    admin = create_user(db, f"ada{unique}", "a long enough password", Role.ADMIN)
    require(admin, Role.APPROVER, "approve")
    with pytest.raises(PermissionDeniedError, match="needs approver"):
        require(viewer, Role.APPROVER, "approve")
    assert {u.username for u in list_users(db)} >= {f"vic{unique}", f"ada{unique}"}


def test_bad_input_is_refused_clearly(db: Database, unique: str) -> None:
    with pytest.raises(ValidationFailedError, match="at least 10"):
        create_user(db, f"x{unique}", "short", Role.VIEWER)
    with pytest.raises(ValidationFailedError, match="invalid username"):
        create_user(db, "bad name!", "a long enough password", Role.VIEWER)
    with pytest.raises(ValidationFailedError, match="unknown role"):
        Role.parse("god")
    create_user(db, f"dup{unique}", "a long enough password", Role.VIEWER)
    with pytest.raises(ValidationFailedError, match="already exists"):
        create_user(db, f"dup{unique}", "a long enough password", Role.VIEWER)
