"""The real PostgreSQL: migrations, pgvector with an HNSW index, the pool."""

from __future__ import annotations

import numpy as np
import pytest
from pgvector.psycopg import register_vector

from engine.errors import ConfigError
from engine.store import migrate
from engine.store.database import Database


def test_migrations_are_recorded_and_idempotent(db: Database) -> None:
    assert migrate.upgrade(db) == []  # the session fixture applied them already
    rows = migrate.status(db)
    assert rows and all(r.applied for r in rows)
    with db.connection() as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [m.version for m in migrate.discover()]


def test_an_edited_applied_migration_is_refused(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    real = migrate.discover()
    edited = [migrate.Migration(m.version, m.name, m.sql + "\n-- edited") for m in real]
    monkeypatch.setattr(migrate, "discover", lambda: edited)
    with pytest.raises(ConfigError, match="edited after it was applied"):
        migrate.upgrade(db)


def test_pgvector_hnsw_index_answers_nearest_neighbour_queries(db: Database, unique: str) -> None:
    table = f"vec_{unique}"
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(300, 16)).astype(np.float32)
    with db.connection() as conn:
        register_vector(conn)
        conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, v vector(16))")
        with conn.cursor().copy(f"COPY {table} (id, v) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["int4", "vector"])
            for i, vec in enumerate(vectors):
                copy.write_row((i, vec))
        conn.execute(f"CREATE INDEX {table}_hnsw ON {table} USING hnsw (v vector_cosine_ops)")
        method = conn.execute(
            "SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam WHERE c.relname = %s",
            (f"{table}_hnsw",),
        ).fetchone()
        conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(
            r[0] for r in conn.execute(f"EXPLAIN SELECT id FROM {table} ORDER BY v <=> %s LIMIT 5", (vectors[42],))
        )
        top = [r[0] for r in conn.execute(f"SELECT id FROM {table} ORDER BY v <=> %s LIMIT 5", (vectors[42],))]
        conn.execute(f"DROP TABLE {table}")
    assert method == ("hnsw",)
    assert f"Index Scan using {table}_hnsw" in plan
    assert top[0] == 42
    sims = vectors @ vectors[42] / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(vectors[42]))
    assert set(top[:3]) <= set(np.argsort(-sims)[:8].tolist())


def test_pool_serves_concurrent_connections(db: Database) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def work(n: int) -> int:
        with db.connection() as conn:
            row = conn.execute("SELECT %s::int * 2", (n,)).fetchone()
            assert row is not None
            return int(row[0])

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sorted(pool.map(work, range(32))) == [n * 2 for n in range(32)]
    assert db.ping()
