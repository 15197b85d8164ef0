"""The ingestion pipeline's docstore in PostgreSQL: a LlamaIndex key-value store over ``kb_docstore`` (owner).

``KVDocumentStore`` on top of it keeps each document's hash (what makes re-adding unchanged content a no-op) and
its reference-document info. Writes go through ``knowledge.tx.connection``, so inside an ingestion transaction
they commit together with the document's chunks.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.storage.docstore.keyval_docstore import KVDocumentStore
from llama_index.core.storage.kvstore.types import DEFAULT_COLLECTION, BaseKVStore
from psycopg.types.json import Jsonb

from engine.store.database import Database
from knowledge.tx import connection

NAMESPACE = "kb"


class PostgresKVStore(BaseKVStore):
    """``(collection, key) -> JSON`` rows in ``kb_docstore``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def put(self, key: str, val: dict[str, Any], collection: str = DEFAULT_COLLECTION) -> None:
        self.put_all([(key, val)], collection)

    async def aput(self, key: str, val: dict[str, Any], collection: str = DEFAULT_COLLECTION) -> None:
        self.put(key, val, collection)

    def put_all(
        self, kv_pairs: list[tuple[str, dict[str, Any]]], collection: str = DEFAULT_COLLECTION, batch_size: int = 1
    ) -> None:
        if not kv_pairs:
            return
        with connection(self.db) as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO kb_docstore (collection, key, value) VALUES (%s, %s, %s) "
                "ON CONFLICT (collection, key) DO UPDATE SET value = EXCLUDED.value",
                [(collection, key, Jsonb(val)) for key, val in kv_pairs],
            )

    async def aput_all(
        self, kv_pairs: list[tuple[str, dict[str, Any]]], collection: str = DEFAULT_COLLECTION, batch_size: int = 1
    ) -> None:
        self.put_all(kv_pairs, collection, batch_size)

    def get(self, key: str, collection: str = DEFAULT_COLLECTION) -> dict[str, Any] | None:
        with connection(self.db) as conn:
            row = conn.execute(
                "SELECT value FROM kb_docstore WHERE collection = %s AND key = %s", (collection, key)
            ).fetchone()
        return dict(row[0]) if row else None

    async def aget(self, key: str, collection: str = DEFAULT_COLLECTION) -> dict[str, Any] | None:
        return self.get(key, collection)

    def get_all(self, collection: str = DEFAULT_COLLECTION) -> dict[str, dict[str, Any]]:
        with connection(self.db) as conn:
            rows = conn.execute("SELECT key, value FROM kb_docstore WHERE collection = %s", (collection,)).fetchall()
        return {str(key): dict(value) for key, value in rows}

    async def aget_all(self, collection: str = DEFAULT_COLLECTION) -> dict[str, dict[str, Any]]:
        return self.get_all(collection)

    def delete(self, key: str, collection: str = DEFAULT_COLLECTION) -> bool:
        with connection(self.db) as conn:
            cur = conn.execute("DELETE FROM kb_docstore WHERE collection = %s AND key = %s", (collection, key))
            return cur.rowcount > 0

    async def adelete(self, key: str, collection: str = DEFAULT_COLLECTION) -> bool:
        return self.delete(key, collection)


def postgres_docstore(db: Database) -> KVDocumentStore:
    """The docstore of the ingestion pipeline, in this database."""
    return KVDocumentStore(PostgresKVStore(db), namespace=NAMESPACE)


def forget_document(db: Database, doc_id: str) -> None:
    """Drop a document's hash and reference info (after it is removed), so adding it again indexes it."""
    store = postgres_docstore(db)
    store.delete_ref_doc(doc_id, raise_error=False)
    store.delete_document(doc_id, raise_error=False)
    store._kvstore.delete(doc_id, collection=store._metadata_collection)
