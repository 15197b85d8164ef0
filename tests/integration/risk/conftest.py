"""Risk integration fixtures: the persisted switches are global, so each test starts clean and leaves them as found."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine.store.database import Database

GLOBAL_KEYS = ("kill_switch", "breakers", "risk_policy_active")

ApprovalFactory = Callable[..., str]


@pytest.fixture
def clean_risk_state(db: Database) -> Iterator[None]:
    """Remove the kill switch, breakers and active-policy keys for the test; restore what was there after."""
    with db.connection() as conn:
        saved = conn.execute("SELECT key, value FROM system_state WHERE key = ANY(%s)", (list(GLOBAL_KEYS),)).fetchall()
        conn.execute("DELETE FROM system_state WHERE key = ANY(%s)", (list(GLOBAL_KEYS),))
    yield
    with db.connection() as conn:
        conn.execute("DELETE FROM system_state WHERE key = ANY(%s)", (list(GLOBAL_KEYS),))
        for key, value in saved:
            conn.execute("INSERT INTO system_state (key, value) VALUES (%s, %s::jsonb)", (key, json.dumps(value)))


@pytest.fixture
def make_approval(db: Database) -> ApprovalFactory:
    """Insert an approval request row directly, as the approvals service would leave it."""

    def make(
        *,
        kind: str = "kill_switch_release",
        status: str = "approved",
        expires_in: timedelta = timedelta(minutes=10),
        decided: bool = True,
        decided_hash: str | None = None,
        created_at: datetime | None = None,
    ) -> str:
        approval_id = f"apr-{uuid.uuid4().hex[:12]}"
        intent: dict[str, Any] = {"action": kind, "note": approval_id}
        intent_hash = hashlib.sha256(json.dumps(intent, sort_keys=True).encode()).hexdigest()
        with db.connection() as conn:
            conn.execute(
                "INSERT INTO approval_requests (id, kind, intent, intent_hash, requested_by, requester_kind, status, "
                "expires_at, created_at, decided_by, decided_at, decided_hash) "
                "VALUES (%s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    approval_id,
                    kind,
                    json.dumps(intent),
                    intent_hash,
                    "trader-bob",
                    "cli",
                    status,
                    datetime.now(UTC) + expires_in,
                    created_at or datetime.now(UTC),
                    "approver-carol" if decided else None,
                    datetime.now(UTC) if decided else None,
                    (decided_hash or intent_hash) if decided else None,
                ),
            )
        return approval_id

    return make
