"""The pgvector SQL of the knowledge base (tables ``kb_documents`` and ``kb_chunks``, migration 0006), psycopg 3."""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from psycopg import Connection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from engine.store.database import Database
from knowledge.config import FTS_CONFIG
from knowledge.embeddings.base import Vectors
from knowledge.models import Chunk, DocumentInfo, DocumentKind

_ITERATIVE_SCAN_SINCE = (0, 8)  # pgvector version that filters inside the HNSW scan instead of after it
_pgvector_version: weakref.WeakKeyDictionary[Connection[Any], tuple[int, ...]] = weakref.WeakKeyDictionary()


def _prepare(conn: Connection[Any]) -> tuple[int, ...]:
    """Register the vector type on a (pooled) connection once, and learn pgvector's version."""
    version = _pgvector_version.get(conn)
    if version is None:
        from pgvector.psycopg import register_vector

        register_vector(conn)
        row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        text = str(row[0]) if row else "0"
        version = tuple(int(part) for part in text.split(".") if part.isdigit())
        _pgvector_version[conn] = version
    return version


@dataclass(frozen=True)
class StoredState:
    """What decides whether a document must be re-indexed."""

    id: int
    content_hash: str
    embedding_model: str
    chunking: str
    kind: DocumentKind
    title: str


@dataclass(frozen=True)
class HitRow:
    chunk_id: int
    document_id: int
    title: str
    source: str
    kind: DocumentKind
    section: str
    text: str
    vector_score: float
    fts_score: float


VECTOR_ARM_SQL = """
SELECT c.id, c.embedding <=> %(q)s AS distance
FROM kb_chunks c
WHERE c.embedding_model = %(model)s AND (%(kinds)s::text[] IS NULL OR c.kind = ANY(%(kinds)s::text[]))
ORDER BY c.embedding <=> %(q)s
LIMIT %(limit)s
"""
"""Nearest chunks by cosine distance; filters on columns of kb_chunks itself so the HNSW scan can apply them."""

_SELECT_DOCUMENTS = """
SELECT d.id, d.source, d.title, d.kind, d.content_hash, d.embedding_model, d.metadata, d.created_at, d.updated_at,
       (SELECT count(*) FROM kb_chunks c WHERE c.document_id = d.id) AS chunks
FROM kb_documents d
"""


class KnowledgeStore:
    """Documents and chunks in PostgreSQL: upsert with chunk replacement, listing, deletion, the two search arms."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @contextmanager
    def _connection(self) -> Iterator[Connection[Any]]:
        with self.db.connection() as conn:
            _prepare(conn)
            yield conn

    def state(self, source: str) -> StoredState | None:
        with self._connection() as conn:
            row = conn.execute(
                "SELECT id, content_hash, embedding_model, chunking, kind, title FROM kb_documents WHERE source = %s",
                (source,),
            ).fetchone()
        return StoredState(*row) if row else None

    def write(
        self,
        *,
        source: str,
        title: str,
        kind: DocumentKind,
        content_hash: str,
        embedding_model: str,
        chunking: str,
        metadata: dict[str, Any],
        chunks: Sequence[Chunk],
        vectors: Vectors,
    ) -> tuple[int, bool]:
        """Insert or replace a document and all its chunks in one transaction; (id, whether it was new)."""
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        with self._connection() as conn, conn.transaction():
            row = conn.execute(
                """
                INSERT INTO kb_documents (source, title, kind, content_hash, embedding_model, chunking, metadata)
                VALUES (%s, %s, %s, %s, %s, %s, %s)
                ON CONFLICT (source) DO UPDATE SET
                    title = EXCLUDED.title, kind = EXCLUDED.kind, content_hash = EXCLUDED.content_hash,
                    embedding_model = EXCLUDED.embedding_model, chunking = EXCLUDED.chunking,
                    metadata = EXCLUDED.metadata, updated_at = now()
                RETURNING id, (xmax = 0) AS inserted
                """,
                (source, title, kind, content_hash, embedding_model, chunking, Jsonb(metadata)),
            ).fetchone()
            assert row is not None
            document_id, inserted = int(row[0]), bool(row[1])
            conn.execute("DELETE FROM kb_chunks WHERE document_id = %s", (document_id,))
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO kb_chunks (document_id, ord, kind, embedding_model, section, text, embedding) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    [
                        (document_id, chunk.ord, kind, embedding_model, chunk.section, chunk.text, vector)
                        for chunk, vector in zip(chunks, vectors, strict=True)
                    ],
                )
        return document_id, inserted

    def delete(self, source: str) -> DocumentInfo | None:
        """Remove a document (its chunks cascade); what was removed, or None."""
        with self._connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(_SELECT_DOCUMENTS + "WHERE d.source = %s FOR UPDATE", (source,)).fetchone()
            if row is None:
                return None
            cur.execute("DELETE FROM kb_documents WHERE id = %s", (row["id"],))
        return DocumentInfo.model_validate(row)

    def sources_under(self, folder: str) -> list[str]:
        """Sources of the files stored from inside ``folder`` (an absolute path)."""
        prefix = folder.rstrip(os.sep) + os.sep
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT source FROM kb_documents WHERE starts_with(source, %s) ORDER BY source", (prefix,)
            ).fetchall()
        return [str(row[0]) for row in rows]

    def documents(self, kinds: Sequence[DocumentKind] | None = None) -> list[DocumentInfo]:
        with self._connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(
                _SELECT_DOCUMENTS + "WHERE %(kinds)s::text[] IS NULL OR d.kind = ANY(%(kinds)s::text[]) "
                "ORDER BY d.kind, d.title, d.source",
                {"kinds": list(kinds) if kinds else None},
            ).fetchall()
        return [DocumentInfo.model_validate(row) for row in rows]

    def chunks_of(self, source: str) -> list[Chunk]:
        """The stored chunks of a document, in order (for inspection and tests)."""
        with self._connection() as conn:
            rows = conn.execute(
                """
                SELECT c.ord, c.section, c.text FROM kb_chunks c JOIN kb_documents d ON d.id = c.document_id
                WHERE d.source = %s ORDER BY c.ord
                """,
                (source,),
            ).fetchall()
        from knowledge.chunking import count_tokens

        return [Chunk(ord=r[0], section=r[1], text=r[2], tokens=count_tokens(r[2])) for r in rows]

    def vector_arm(
        self, query: Vectors, *, model: str, kinds: Sequence[DocumentKind] | None, limit: int, ef_search: int
    ) -> list[tuple[int, float]]:
        """Nearest chunks by cosine distance through the HNSW index: (chunk id, distance), nearest first."""
        with self._connection() as conn:
            version = _prepare(conn)
            conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(max(ef_search, limit)),))
            if version >= _ITERATIVE_SCAN_SINCE:  # keep scanning the graph until enough rows pass the filters
                conn.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
            rows = conn.execute(
                VECTOR_ARM_SQL, {"q": query, "model": model, "kinds": list(kinds) if kinds else None, "limit": limit}
            ).fetchall()
        ranked = [(int(r[0]), float(r[1])) for r in rows]
        ranked.sort(key=lambda item: item[1])  # relaxed_order may return slightly out of order
        return ranked

    def tsquery(self, query: str) -> str:
        """``websearch_to_tsquery`` of the query, as tsquery text ('' when only stop words remain)."""
        with self._connection() as conn:
            row = conn.execute("SELECT websearch_to_tsquery(%s::regconfig, %s)::text", (FTS_CONFIG, query)).fetchone()
        return str(row[0]) if row else ""

    def fts_arm(
        self, strict: str, loose: str, *, model: str, kinds: Sequence[DocumentKind] | None, limit: int
    ) -> list[tuple[int, float]]:
        """Chunks matching the full-text query: those with every term first, then by ``ts_rank_cd``."""
        with self._connection() as conn:
            rows = conn.execute(
                """
                SELECT c.id, ts_rank_cd(c.tsv, %(loose)s::tsquery, 32) AS rank
                FROM kb_chunks c
                WHERE c.tsv @@ %(loose)s::tsquery AND c.embedding_model = %(model)s
                  AND (%(kinds)s::text[] IS NULL OR c.kind = ANY(%(kinds)s::text[]))
                ORDER BY (c.tsv @@ %(strict)s::tsquery) DESC, rank DESC, c.id
                LIMIT %(limit)s
                """,
                {
                    "strict": strict,
                    "loose": loose,
                    "model": model,
                    "kinds": list(kinds) if kinds else None,
                    "limit": limit,
                },
            ).fetchall()
        return [(int(r[0]), float(r[1])) for r in rows]

    def hit_rows(self, chunk_ids: Sequence[int], query: Vectors, loose: str) -> dict[int, HitRow]:
        """The chunks to return, with their documents and both component scores."""
        if not chunk_ids:
            return {}
        with self._connection() as conn:
            rows = conn.execute(
                """
                SELECT c.id, c.document_id, d.title, d.source, d.kind, c.section, c.text,
                       1 - (c.embedding <=> %(q)s) AS vector_score,
                       CASE WHEN %(loose)s = '' THEN 0
                            ELSE ts_rank_cd(c.tsv, %(loose)s::tsquery, 32) END AS fts_score
                FROM kb_chunks c JOIN kb_documents d ON d.id = c.document_id
                WHERE c.id = ANY(%(ids)s)
                """,
                {"q": query, "loose": loose, "ids": list(chunk_ids)},
            ).fetchall()
        return {
            int(r[0]): HitRow(int(r[0]), int(r[1]), r[2], r[3], r[4], r[5], r[6], float(r[7]), float(r[8]))
            for r in rows
        }
