"""One PostgreSQL transaction shared by the vector store and the docstore while one document is ingested.

``ingest_transaction(db)`` opens a transaction and binds its connection to the current context; inside it,
``connection(db)`` hands out that same connection, so the LlamaIndex ingestion pipeline's docstore writes, its
vector-store deletes and adds all commit together or not at all. Outside it, ``connection(db)`` is a pooled
connection whose block is its own transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from psycopg import Connection

from engine.store.database import Database

_bound: ContextVar[Connection[Any] | None] = ContextVar("kb_bound_connection", default=None)


@contextmanager
def connection(db: Database) -> Iterator[Connection[Any]]:
    """The bound transaction's connection if one is open in this context, else a pooled one."""
    bound = _bound.get()
    if bound is not None:
        yield bound
        return
    with db.connection() as conn:
        yield conn


def in_transaction() -> bool:
    """Whether an ingestion transaction is open in this context."""
    return _bound.get() is not None


@contextmanager
def ingest_transaction(db: Database, lock_key: str | None = None) -> Iterator[Connection[Any]]:
    """A transaction bound to this context; with ``lock_key``, writers of the same key are serialised."""
    if _bound.get() is not None:
        raise RuntimeError("an ingestion transaction is already open in this context")
    with db.connection() as conn, conn.transaction():
        if lock_key is not None:
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 15))", (lock_key,))
        token = _bound.set(conn)
        try:
            yield conn
        finally:
            _bound.reset(token)
