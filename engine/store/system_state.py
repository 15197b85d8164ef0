"""The one owner of ``system_state``: the few persisted trading states, one key each, and nothing else.

Every read and write of the table goes through here (a test greps that no other module names it). Each key has
one writer module, named beside it; values are JSON objects, validated by that writer's own model:

* ``kill_switch`` (engine.risk.killswitch): engaged or released, by whom, when, why, with which approval
* ``breakers`` (engine.risk.monitor): the tripped circuit breakers
* ``risk_policy_active`` (engine.risk.store): the active risk policy version
* ``audit_head`` (engine.audit.log): the last row of the audit chain, so a deleted tail is detected
* ``ledger`` (engine.portfolio.service): the portfolio checkpoint

Web sessions live in their own table (``web_sessions``, owned by approvals.sessions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal, get_args

from psycopg import Connection
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb
from pydantic import BaseModel

StateKey = Literal["kill_switch", "breakers", "risk_policy_active", "audit_head", "ledger"]
STATE_KEYS: Final[tuple[StateKey, ...]] = get_args(StateKey)


def _check(key: str) -> None:
    if key not in STATE_KEYS:
        raise ValueError(f"unknown system_state key {key!r}: use one of {', '.join(STATE_KEYS)}")


def read(conn: Connection[TupleRow], key: StateKey, *, for_update: bool = False) -> dict[str, Any] | None:
    """The value under ``key`` (None when never written); ``for_update`` locks the row until commit."""
    _check(key)
    lock = " FOR UPDATE" if for_update else ""
    row = conn.execute(f"SELECT value FROM system_state WHERE key = %s{lock}", (key,)).fetchone()
    return None if row is None else dict(row[0])


def read_many(conn: Connection[TupleRow], keys: Sequence[StateKey]) -> dict[str, dict[str, Any]]:
    """The values under ``keys`` that were written, in one query."""
    for key in keys:
        _check(key)
    rows = conn.execute("SELECT key, value FROM system_state WHERE key = ANY(%s)", (list(keys),)).fetchall()
    return {str(k): dict(v) for k, v in rows}


def write(conn: Connection[TupleRow], key: StateKey, value: Mapping[str, Any] | BaseModel) -> None:
    """Set ``key`` to ``value`` (a JSON object or a pydantic model) inside the caller's transaction."""
    _check(key)
    body = value.model_dump(mode="json") if isinstance(value, BaseModel) else dict(value)
    conn.execute(
        "INSERT INTO system_state (key, value, updated_at) VALUES (%s, %s, now()) "
        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
        (key, Jsonb(body)),
    )


def delete(conn: Connection[TupleRow], keys: Sequence[StateKey]) -> None:
    """Remove ``keys`` (back to their defaults: released switch, no breakers, bundled policy...)."""
    for key in keys:
        _check(key)
    conn.execute("DELETE FROM system_state WHERE key = ANY(%s)", (list(keys),))
