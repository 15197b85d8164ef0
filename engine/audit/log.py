"""Append and verify the hash chain.

Row ``n`` stores ``hash_n = sha256(hash_{n-1} | seq | ts | actor | action | subject | payload)`` over the exact
text stored (canonical JSON payload, ISO timestamp), and the head (last seq and hash) is kept in
``system_state`` too. ``verify`` recomputes the chain: an edited row breaks its own hash, a deleted row
breaks the sequence or the next row's link, a deleted tail no longer matches the head.
A database trigger refuses UPDATE, DELETE and TRUNCATE on the table besides.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, Literal

from psycopg import Connection
from psycopg.rows import TupleRow
from pydantic import BaseModel

from engine.store import system_state
from engine.store.database import Database
from engine.store.system_state import StateKey
from engine.telemetry import redact_processor

if TYPE_CHECKING:
    from engine.audit.anchor import AuditAnchor

GENESIS = "0" * 64
_LOCK_KEY = 0x1A75_00A0
_HEAD_KEY: Final[StateKey] = "audit_head"


class AuditEntry(BaseModel):
    seq: int
    ts: str
    actor: str
    action: str
    subject: str
    payload: dict[str, Any]
    hash: str


TamperKind = Literal[
    "missing_row", "broken_link", "edited", "head_mismatch", "truncated", "recomputed", "anchor_forged"
]


class AuditVerification(BaseModel):
    ok: bool
    rows: int
    first_bad_seq: int | None = None
    problem: str | None = None
    kind: TamperKind | None = None
    anchored_seq: int | None = None  # the newest checkpoint compared (None: no anchor given or none written yet)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return str(value)


def canonical_json(payload: dict[str, Any]) -> str:
    """Sorted keys, no spaces, Decimals as strings: the text that is hashed and stored."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=_default, ensure_ascii=False)


def _hash(prev: str, seq: int, ts: str, actor: str, action: str, subject: str, payload: str) -> str:
    text = "\x1f".join((prev, str(seq), ts, actor, action, subject, payload))
    return hashlib.sha256(text.encode()).hexdigest()


def append(conn: Connection[TupleRow], actor: str, action: str, subject: str, payload: dict[str, Any]) -> int:
    """Append one entry inside the caller's transaction (it commits with the change it records)."""
    clean = dict(redact_processor(None, "", dict(payload)))  # secrets never reach the audit log
    text = canonical_json(clean)
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
    row = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (1, GENESIS) if row is None else (int(row[0]) + 1, str(row[1]))
    ts = datetime.now(UTC).isoformat()
    digest = _hash(prev, seq, ts, actor, action, subject, text)
    conn.execute(
        "INSERT INTO audit_log (seq, ts, actor, action, subject, payload, prev_hash, hash) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (seq, ts, actor, action, subject, text, prev, digest),
    )
    system_state.write(conn, _HEAD_KEY, {"seq": seq, "hash": digest})
    return seq


def record(db: Database, actor: str, action: str, subject: str, payload: dict[str, Any]) -> int:
    """Append in a transaction of its own."""
    with db.connection() as conn:
        return append(conn, actor, action, subject, payload)


def entries(
    db: Database, *, subject: str | None = None, action: str | None = None, limit: int = 100
) -> list[AuditEntry]:
    """Newest first, optionally filtered."""
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT seq, ts, actor, action, subject, payload, hash FROM audit_log "
            "WHERE (%(s)s::text IS NULL OR subject = %(s)s) AND (%(a)s::text IS NULL OR action = %(a)s) "
            "ORDER BY seq DESC LIMIT %(n)s",
            {"s": subject, "a": action, "n": limit},
        ).fetchall()
    return [
        AuditEntry(seq=r[0], ts=r[1], actor=r[2], action=r[3], subject=r[4], payload=json.loads(r[5]), hash=r[6])
        for r in rows
    ]


def verify(db: Database, anchor: AuditAnchor | None = None) -> AuditVerification:
    """Recompute the whole chain, then hold it against the anchor's checkpoints; report the first thing that fails."""
    from engine.audit.anchor import ForgedAnchorError

    try:
        points = anchor.checkpoints() if anchor is not None else []
    except ForgedAnchorError as error:
        return AuditVerification(ok=False, rows=0, problem=str(error), kind="anchor_forged")
    wanted = {p.seq: p.hash for p in points}
    anchored = points[-1].seq if points else None
    seen: dict[int, str] = {}
    prev, expected_seq, count = GENESIS, 1, 0

    def broken(seq: int, kind: TamperKind, problem: str) -> AuditVerification:
        return AuditVerification(
            ok=False, rows=count, first_bad_seq=seq, problem=problem, kind=kind, anchored_seq=anchored
        )

    with db.connection() as conn:
        cursor = conn.cursor(name="audit_verify")
        cursor.execute("SELECT seq, ts, actor, action, subject, payload, prev_hash, hash FROM audit_log ORDER BY seq")
        for seq, ts, actor, action, subject, payload, prev_hash, digest in cursor:
            if seq != expected_seq:
                return broken(expected_seq, "missing_row", f"row {expected_seq} is missing (next is {seq})")
            if prev_hash != prev:
                return broken(seq, "broken_link", f"row {seq} does not link to row {seq - 1}")
            if _hash(prev, seq, ts, actor, action, subject, payload) != digest:
                return broken(seq, "edited", f"row {seq} was edited after it was written")
            if seq in wanted:
                seen[seq] = digest
            prev, expected_seq, count = digest, seq + 1, count + 1
        head = system_state.read(conn, _HEAD_KEY)
    for point in points:
        if point.seq > count:
            return broken(
                count + 1,
                "truncated",
                f"rows after {count} were removed: the anchor saw row {point.seq} at {point.at}",
            )
        if seen.get(point.seq) != point.hash:
            return broken(
                point.seq,
                "recomputed",
                f"row {point.seq} differs from its anchored hash (rows were edited and the chain recomputed)",
            )
    if head is not None:
        head_seq, head_hash = int(head["seq"]), str(head["hash"])
        if head_seq != count or head_hash != prev:
            return broken(count + 1, "head_mismatch", f"rows after {count} were removed (the head says {head_seq})")
    return AuditVerification(ok=True, rows=count, anchored_seq=anchored)
