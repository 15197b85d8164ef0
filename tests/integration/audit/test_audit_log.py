"""The hash-chained audit log on the real database: append, verify, tamper detection."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest

from engine.audit import log as audit
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


def test_cli_verify_fails_on_a_tampered_row(clean_audit: Database, settings: object) -> None:
    import os
    import subprocess
    import sys

    from engine.settings import Settings

    assert isinstance(settings, Settings)
    env = os.environ | {"IQTS_STATE_DIR": str(settings.state_dir), "IQTS_DB_NAME": settings.db_name}
    cmd = [sys.executable, "-m", "ui.cli.main", "audit", "verify"]
    _fill(clean_audit, 3)
    ok = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert ok.returncode == 0 and "chain intact" in ok.stdout
    _tamper(clean_audit, "UPDATE audit_log SET subject = 'forged' WHERE seq = 2")
    bad = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 3
    assert "FAILED at row 2" in bad.stderr and "Traceback" not in bad.stderr
