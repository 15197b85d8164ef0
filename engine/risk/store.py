"""Risk policy versions in PostgreSQL (``risk_policies``) and the active one (``system_state``).

A version is the policy's own ``version`` field, and it names one content forever: saving a different policy
under an existing version is refused (every verdict records the version it was judged by, so the version must
say what the rules were). Saving the same policy again is a no-op. The active version is kept under the
``system_state`` key ``risk_policy_active``; while none was activated, the bundled default policy is the active
one (saved on first use, so that its version too names a stored body).
"""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import UTC, datetime
from typing import Any, Final

from psycopg import Connection
from psycopg.rows import TupleRow
from pydantic import BaseModel, ConfigDict

from engine.audit.log import append as audit
from engine.errors import NotFoundError, ValidationFailedError
from engine.risk.policy import DEFAULT_POLICY_PATH, RiskPolicy
from engine.store import system_state
from engine.store.database import Database
from engine.store.system_state import StateKey

ACTIVE_KEY: Final[StateKey] = "risk_policy_active"
"""The ``system_state`` key naming the active policy version: ``{"version": "3", "by": ..., "at": ...}``."""
_CACHE_SIZE: Final = 16


class PolicyVersionConflictError(ValidationFailedError):
    """A different policy is already stored under this version."""


class StoredPolicy(BaseModel):
    """One stored policy version: its exact text as saved, its digest and whether it is the active one."""

    model_config = ConfigDict(frozen=True)

    version: str
    body: str
    sha256: str
    created_at: datetime
    active: bool


def version_key(version: int | str) -> str:
    """The text a policy version is stored under (``3`` and ``"3"`` are the same version)."""
    return str(version).strip()


def _digest(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _content(policy: RiskPolicy) -> str:
    """What a policy says, independent of its YAML formatting and comments (for the overwrite check)."""
    data: dict[str, Any] = policy.model_dump(mode="json")
    data["version"] = version_key(policy.version)
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


# Parsed policies by body digest: a policy caches its compiled rules, so handing out the same object for the same
# body keeps every pre-trade check after the first one free of parsing and compiling.
_parsed: dict[str, RiskPolicy] = {}
_parsed_lock = threading.Lock()


def _parse(body: str, digest: str, source: str) -> RiskPolicy:
    with _parsed_lock:
        cached = _parsed.get(digest)
    if cached is not None:
        return cached
    policy = RiskPolicy.from_yaml(body, source=source)
    with _parsed_lock:
        if len(_parsed) >= _CACHE_SIZE:
            _parsed.pop(next(iter(_parsed)))
        return _parsed.setdefault(digest, policy)


def _save(conn: Connection[TupleRow], body: str, policy: RiskPolicy, actor: str) -> bool:
    """Insert the version inside the caller's transaction; True if inserted, False if already stored alike."""
    key = version_key(policy.version)
    digest = _digest(body)
    inserted = conn.execute(
        "INSERT INTO risk_policies (version, body, sha256) VALUES (%s, %s, %s) ON CONFLICT (version) DO NOTHING",
        (key, body, digest),
    ).rowcount
    if inserted:
        audit(conn, actor, "risk_policy.saved", f"risk_policy:{key}", {"version": key, "sha256": digest})
        return True
    row = conn.execute("SELECT body, sha256 FROM risk_policies WHERE version = %s", (key,)).fetchone()
    if row is None:  # pragma: no cover - a row that conflicted cannot vanish (policies are never deleted)
        raise NotFoundError(f"risk policy version {key} disappeared while saving")
    stored_body, stored_digest = str(row[0]), str(row[1])
    if stored_digest != digest:
        stored = RiskPolicy.from_yaml(stored_body, source=f"stored risk policy {key}")
        if _content(stored) != _content(policy):
            raise PolicyVersionConflictError(
                f"risk policy version {key} is already stored with different content; "
                "give the changed policy a new version (every verdict records the version it was judged by)"
            )
    return False


def save_policy(db: Database, policy_yaml: str, actor: str, *, source: str = "risk policy") -> str:
    """Validate and store a policy under its own version; return the version.

    Saving the same policy again (even formatted differently) is a no-op; a different policy under a stored version
    raises :class:`PolicyVersionConflictError`. An invalid policy raises ``ConfigError`` naming each problem.
    """
    policy = RiskPolicy.from_yaml(policy_yaml, source=source)
    with db.connection() as conn:
        _save(conn, policy_yaml, policy, actor)
    return version_key(policy.version)


def _default_body() -> str:
    return DEFAULT_POLICY_PATH.read_text(encoding="utf-8")


def _ensure_default(conn: Connection[TupleRow]) -> tuple[str, str, str]:
    """Store the bundled default (if not yet stored) and return (version, body, digest)."""
    body = _default_body()
    digest = _digest(body)
    policy = _parse(body, digest, str(DEFAULT_POLICY_PATH))
    try:
        _save(conn, body, policy, "system")
    except PolicyVersionConflictError:
        raise PolicyVersionConflictError(
            f"the bundled default risk policy ({DEFAULT_POLICY_PATH.name}) changed without a new version: "
            f"version {version_key(policy.version)} is stored with different content"
        ) from None
    return version_key(policy.version), body, digest


def _named_version(conn: Connection[TupleRow], *, for_update: bool = False) -> str | None:
    value = system_state.read(conn, ACTIVE_KEY, for_update=for_update)
    return None if value is None or value.get("version") is None else str(value["version"])


def active_version(db: Database) -> str | None:
    """The version named in ``system_state`` (None while the bundled default is in force)."""
    with db.connection() as conn:
        return _named_version(conn)


def active_policy(db: Database) -> RiskPolicy:
    """The active policy: the version named in ``system_state``, else the bundled default (stored on first use).

    Returns the same object for the same stored body, so its compiled rules are reused across checks.
    """
    with db.connection() as conn:
        named = _named_version(conn)
        row = (
            None
            if named is None
            else conn.execute("SELECT version, body, sha256 FROM risk_policies WHERE version = %s", (named,)).fetchone()
        )
        if row is None:
            if named is not None:
                raise NotFoundError(f"the active risk policy version {named} is not stored")
            version, body, digest = _ensure_default(conn)
        else:
            version, body, digest = str(row[0]), str(row[1]), str(row[2])
    return _parse(body, digest, f"stored risk policy {version}")


def stored_policy(db: Database, version: int | str | None = None) -> StoredPolicy:
    """One stored version (the active one when ``version`` is None), with its text exactly as saved."""
    if version is None:
        version = active_policy(db).version
    key = version_key(version)
    with db.connection() as conn:
        active = _named_version(conn) or _default_version()
        row = conn.execute(
            "SELECT version, body, sha256, created_at FROM risk_policies WHERE version = %s", (key,)
        ).fetchone()
    if row is None:
        raise NotFoundError(f"no stored risk policy version {key} (see `iqts risk policy list`)")
    return StoredPolicy(version=row[0], body=row[1], sha256=row[2], created_at=row[3], active=row[0] == active)


def get_policy(db: Database, version: int | str) -> RiskPolicy:
    """A stored version, parsed."""
    stored = stored_policy(db, version)
    return _parse(stored.body, stored.sha256, f"stored risk policy {stored.version}")


def list_policies(db: Database) -> list[StoredPolicy]:
    """Every stored version, oldest first."""
    active_policy(db)  # stores the bundled default on first use
    with db.connection() as conn:
        active = _named_version(conn) or _default_version()
        rows = conn.execute(
            "SELECT version, body, sha256, created_at FROM risk_policies ORDER BY created_at, version"
        ).fetchall()
    return [StoredPolicy(version=r[0], body=r[1], sha256=r[2], created_at=r[3], active=r[0] == active) for r in rows]


def _default_version() -> str:
    body = _default_body()
    return version_key(_parse(body, _digest(body), str(DEFAULT_POLICY_PATH)).version)


def activate(db: Database, version: int | str, actor: str) -> RiskPolicy:
    """Make a stored version the active policy (audited); return it."""
    key = version_key(version)
    with db.connection() as conn:
        row = conn.execute("SELECT body, sha256 FROM risk_policies WHERE version = %s", (key,)).fetchone()
        if row is None:
            raise NotFoundError(f"no stored risk policy version {key}: save it first (`iqts risk policy set FILE`)")
        previous = _named_version(conn, for_update=True)
        policy = _parse(str(row[0]), str(row[1]), f"stored risk policy {key}")
        now = datetime.now(UTC)
        system_state.write(conn, ACTIVE_KEY, {"version": key, "by": actor, "at": now.isoformat()})
        audit(
            conn,
            actor,
            "risk_policy.activated",
            f"risk_policy:{key}",
            {"version": key, "previous": previous, "sha256": str(row[1])},
        )
    return policy


def save_and_activate(db: Database, policy_yaml: str, actor: str, *, source: str = "risk policy") -> RiskPolicy:
    """Save a policy (or find it stored alike) and make it the active one."""
    return activate(db, save_policy(db, policy_yaml, actor, source=source), actor)
