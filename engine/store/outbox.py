"""The one owner of ``outbox``: bus messages written in the caller's transaction, published later by the relay.

A decision and the message that announces it commit together (``enqueue`` inside the decision's transaction), so
a bus that is down, empty or restarted never loses the message: ``engine.bus.relay`` publishes unsent rows in id
order and marks them sent. Rows are claimed with ``FOR UPDATE SKIP LOCKED``, so any number of relays (the API
right after a decision, every worker periodically) share the table without publishing a row twice at once; a
relay that dies after publishing and before marking sent publishes the row again (at least once: every consumer
is idempotent, the execution worker by approval id).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import Connection
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb
from pydantic import BaseModel


class OutboxRow(BaseModel):
    id: int
    topic: str
    payload: dict[str, Any]
    created_at: datetime
    attempts: int


def enqueue(conn: Connection[TupleRow], topic: str, payload: dict[str, Any]) -> int:
    """Write a message to publish once the caller's transaction commits; return its row id."""
    row = conn.execute(
        "INSERT INTO outbox (topic, payload) VALUES (%s, %s) RETURNING id", (topic, Jsonb(payload))
    ).fetchone()
    assert row is not None
    return int(row[0])


def claim_unsent(conn: Connection[TupleRow], *, limit: int = 100) -> list[OutboxRow]:
    """The oldest unsent rows no other relay holds, locked until the caller's transaction ends."""
    rows = conn.execute(
        "SELECT id, topic, payload, created_at, attempts FROM outbox WHERE sent_at IS NULL "
        "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
        (limit,),
    ).fetchall()
    return [OutboxRow(id=r[0], topic=r[1], payload=r[2], created_at=r[3], attempts=r[4]) for r in rows]


def mark_sent(conn: Connection[TupleRow], row_id: int) -> None:
    conn.execute(
        "UPDATE outbox SET sent_at = now(), attempts = attempts + 1, last_error = NULL WHERE id = %s", (row_id,)
    )


def mark_failed(conn: Connection[TupleRow], row_id: int, error: str) -> None:
    conn.execute("UPDATE outbox SET attempts = attempts + 1, last_error = %s WHERE id = %s", (error[:500], row_id))


def unsent_count(conn: Connection[TupleRow]) -> int:
    row = conn.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()
    return 0 if row is None else int(row[0])


def purge_sent(conn: Connection[TupleRow], *, older_than_s: float) -> int:
    """Delete rows sent more than ``older_than_s`` seconds ago; return how many."""
    cur = conn.execute(
        "DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < now() - make_interval(secs => %s)",
        (older_than_s,),
    )
    return cur.rowcount
