"""The hash-chained audit log on the real database: append, verify, tamper detection."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest

from engine.audit import AuditAnchor, anchor_for
from engine.audit import log as audit
from engine.settings import Settings
from engine.store.database import Database


@pytest.fixture
def clean_audit(db: Database) -> Iterator[Database]:
    """Each test starts from an empty chain (bypassing the append-only trigger as a superuser would)."""
    _wipe(db)
    yield db
    _wipe(db)


def _wipe(db: Database) -> None:
    with db.connection() as conn:
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute("DELETE FROM audit_log")
        conn.execute("DELETE FROM system_state WHERE key = 'audit_head'")


def _tamper(db: Database, statement: str) -> None:
    with db.connection() as conn:
        conn.execute("SET LOCAL session_replication_role = replica")  # what an attacker with superuser could do
        conn.execute(statement)  # type: ignore[arg-type]


def _fill(db: Database, n: int) -> None:
    for i in range(n):
        audit.record(db, "alice", "order.event", f"order-{i}", {"qty": Decimal("0.10"), "n": i})


def test_chain_verifies_and_entries_read_back(clean_audit: Database) -> None:
    _fill(clean_audit, 5)
    result = audit.verify(clean_audit)
    assert result.ok and result.rows == 5
    newest = audit.entries(clean_audit, limit=2)
    assert [e.seq for e in newest] == [5, 4]
    assert newest[0].payload == {"n": 4, "qty": "0.10"}
    assert audit.entries(clean_audit, subject="order-2")[0].seq == 3


def test_secrets_never_reach_the_audit_log(clean_audit: Database) -> None:
    audit.record(clean_audit, "bob", "config.changed", "exchange", {"api_key": "AKIA-REAL-KEY", "venue": "binance"})
    [entry] = audit.entries(clean_audit)
    assert entry.payload == {"api_key": "***", "venue": "binance"}


def test_updates_and_deletes_are_refused_by_the_database(clean_audit: Database) -> None:
    _fill(clean_audit, 2)
    for statement in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"), clean_audit.connection() as conn:
            conn.execute(statement)  # type: ignore[arg-type]
    assert audit.verify(clean_audit).ok


@pytest.mark.parametrize(
    ("statement", "bad_seq", "words"),
    [
        ('UPDATE audit_log SET payload = \'{"n":2,"qty":"9.99"}\' WHERE seq = 3', 3, "edited"),
        ("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2", 2, "edited"),
        ("DELETE FROM audit_log WHERE seq = 3", 3, "missing"),
        ("DELETE FROM audit_log WHERE seq >= 4", 4, "removed"),
    ],
)
def test_verify_detects_tampering(clean_audit: Database, statement: str, bad_seq: int, words: str) -> None:
    _fill(clean_audit, 5)
    _tamper(clean_audit, statement)
    result = audit.verify(clean_audit)
    assert not result.ok
    assert result.first_bad_seq == bad_seq
    assert result.problem is not None and words in result.problem


def test_a_rewritten_chain_still_fails_on_the_head(clean_audit: Database) -> None:
    """Deleting the last row and its head-pointer update together is what it takes to hide: both are checked."""
    _fill(clean_audit, 3)
    _tamper(clean_audit, "DELETE FROM audit_log WHERE seq = 3")
    assert not audit.verify(clean_audit).ok


def test_cli_verify_fails_on_a_tampered_row(clean_audit: Database, settings: object, anchor: AuditAnchor) -> None:
    from engine.settings import Settings
    from tests.support.cli import run_iqts, settings_env

    assert isinstance(settings, Settings)
    env = settings_env(settings)  # `iqts audit ...` in process: argv through ui.cli.main.main
    _fill(clean_audit, 3)
    ok = run_iqts("audit", "verify", env=env)
    assert ok.returncode == 0 and "chain intact, no checkpoint yet" in ok.stdout
    point = run_iqts("audit", "checkpoint", env=env)
    assert point.returncode == 0 and "checkpointed row 3" in point.stdout
    ok = run_iqts("audit", "verify", env=env)
    assert ok.returncode == 0 and "anchored up to row 3" in ok.stdout
    _tamper(clean_audit, "UPDATE audit_log SET subject = 'forged' WHERE seq = 2")
    bad = run_iqts("audit", "verify", env=env)
    assert bad.returncode == 3
    assert "FAILED (edited) at row 2" in bad.stderr and "Traceback" not in bad.stderr


# -- the anchor outside the table: the tamperings a consistent chain would hide ----------------------------------
def _recompute_from(db: Database, first: int) -> None:
    """Rewrite every hash from row ``first`` on and the stored head, as an attacker with the formula can."""
    with db.connection() as conn:
        conn.execute("SET LOCAL session_replication_role = replica")
        rows = conn.execute(
            "SELECT seq, ts, actor, action, subject, payload FROM audit_log WHERE seq >= %s ORDER BY seq", (first,)
        ).fetchall()
        prev_row = conn.execute("SELECT hash FROM audit_log WHERE seq = %s", (first - 1,)).fetchone()
        prev = audit.GENESIS if prev_row is None else str(prev_row[0])
        for seq, ts, actor, action, subject, payload in rows:
            digest = audit._hash(prev, seq, ts, actor, action, subject, payload)
            conn.execute("UPDATE audit_log SET prev_hash = %s, hash = %s WHERE seq = %s", (prev, digest, seq))
            prev = digest
        last = conn.execute("SELECT max(seq) FROM audit_log").fetchone()
        conn.execute(
            "UPDATE system_state SET value = jsonb_build_object('seq', %s::int, 'hash', %s::text) "
            "WHERE key = 'audit_head'",
            (last[0] if last else 0, prev),
        )


@pytest.fixture
def anchor(clean_audit: Database, settings: Settings) -> Iterator[AuditAnchor]:
    made = anchor_for(settings)
    made.path.unlink(missing_ok=True)
    yield made
    made.path.unlink(missing_ok=True)


def test_checkpoints_are_signed_written_once_per_head_and_the_key_is_owner_only(
    clean_audit: Database, anchor: AuditAnchor, settings: Settings
) -> None:
    assert anchor.checkpoint(clean_audit) is None  # an empty chain has nothing to anchor
    _fill(clean_audit, 3)
    first = anchor.checkpoint(clean_audit)
    assert first is not None and first.seq == 3
    assert anchor.checkpoint(clean_audit) is None  # the head did not move
    _fill(clean_audit, 2)
    assert [p.seq for p in [first, anchor.checkpoint(clean_audit)] if p] == [3, 5]
    assert [p.seq for p in anchor.checkpoints()] == [3, 5]
    key_file = settings.state_dir / "audit" / "anchor.key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    result = audit.verify(clean_audit, anchor)
    assert result.ok and result.anchored_seq == 5


def test_deleting_the_newest_rows_and_rewriting_the_head_is_caught_by_the_anchor(
    clean_audit: Database, anchor: AuditAnchor
) -> None:
    _fill(clean_audit, 5)
    anchor.checkpoint(clean_audit)
    _tamper(clean_audit, "DELETE FROM audit_log WHERE seq >= 4")
    _recompute_from(clean_audit, 4)  # the head now points at row 3: the chain alone looks whole
    assert audit.verify(clean_audit).ok
    result = audit.verify(clean_audit, anchor)
    assert (result.ok, result.kind, result.first_bad_seq) == (False, "truncated", 4)


def test_deleting_the_head_row_and_its_pointer_is_caught_by_the_anchor(
    clean_audit: Database, anchor: AuditAnchor
) -> None:
    _fill(clean_audit, 3)
    anchor.checkpoint(clean_audit)
    _tamper(clean_audit, "DELETE FROM audit_log WHERE seq = 3")
    _tamper(clean_audit, "DELETE FROM system_state WHERE key = 'audit_head'")
    assert audit.verify(clean_audit).ok
    assert audit.verify(clean_audit, anchor).kind == "truncated"


def test_an_edit_with_every_later_hash_recomputed_is_caught_by_the_anchor(
    clean_audit: Database, anchor: AuditAnchor
) -> None:
    _fill(clean_audit, 5)
    anchor.checkpoint(clean_audit)
    _tamper(clean_audit, 'UPDATE audit_log SET payload = \'{"n":1,"qty":"99"}\' WHERE seq = 2')
    _recompute_from(clean_audit, 2)
    assert audit.verify(clean_audit).ok
    result = audit.verify(clean_audit, anchor)
    assert (result.ok, result.kind, result.first_bad_seq) == (False, "recomputed", 5)


def test_a_forged_anchor_line_is_reported(clean_audit: Database, anchor: AuditAnchor) -> None:
    _fill(clean_audit, 2)
    point = anchor.checkpoint(clean_audit)
    assert point is not None
    with anchor.path.open("a", encoding="utf-8") as handle:  # a line made without the key
        handle.write(point.model_copy(update={"seq": 1}).model_dump_json() + "\n")
    result = audit.verify(clean_audit, anchor)
    assert (result.ok, result.kind) == (False, "anchor_forged")
    assert result.problem is not None and "line 2" in result.problem and "bad signature" in result.problem


async def test_the_anchor_duty_checkpoints_and_ends_with_a_last_one(
    clean_audit: Database, anchor: AuditAnchor, settings: Settings
) -> None:
    import asyncio

    from engine.audit.anchor import run_anchor

    _fill(clean_audit, 2)
    stop = asyncio.Event()
    stop.set()  # one round, then the final checkpoint, then it returns
    await asyncio.wait_for(run_anchor(clean_audit, settings, stop), 30)
    assert [p.seq for p in anchor.checkpoints()] == [2]
