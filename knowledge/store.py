"""The pgvector SQL of the knowledge base (owner of ``kb_documents`` and ``kb_chunks``), psycopg 3.

Plain functions on a connection: the LlamaIndex vector store (``knowledge.vector_store.PgVectorStore``) calls
them to write a document's nodes and to run the two search arms, inside the ingestion transaction when one is open
(``knowledge.tx``). ``KnowledgeStore`` holds the listing and housekeeping queries. No LlamaIndex import here, so
listing and removal stay cheap to start.
"""

from __future__ import annotations

import os
import re
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from psycopg import Connection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from engine.store.database import Database
from knowledge.config import FTS_CONFIG
from knowledge.models import DocumentInfo, DocumentKind
from knowledge.tx import connection

_ITERATIVE_SCAN_SINCE = (0, 8)  # pgvector version that filters inside the HNSW scan instead of after it
_pgvector_version: weakref.WeakKeyDictionary[Connection[Any], tuple[int, ...]] = weakref.WeakKeyDictionary()
_OPERATORS = re.compile(r'"|(?:^|\s)-\S|\bor\b', re.IGNORECASE)


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


@contextmanager
def prepared(db: Database) -> Iterator[Connection[Any]]:
    """``knowledge.tx.connection`` with the vector type registered."""
    with connection(db) as conn:
        _prepare(conn)
        yield conn


_connection = prepared


def is_plain_query(query: str) -> bool:
    """No web-search operators (quoted phrase, ``-term``, ``or``): just words, safe to relax from AND to OR."""
    return _OPERATORS.search(query) is None


_VECTOR_ARM = """
SELECT c.id, c.embedding <=> %(q)s AS distance
FROM kb_chunks c
WHERE c.embedding_model = %(model)s AND (%(kinds)s::text[] IS NULL OR c.kind = ANY(%(kinds)s::text[]))
ORDER BY c.embedding <=> %(q)s
LIMIT %(limit)s
"""

_TEXT_ARM = """
SELECT c.id, (c.tsv @@ %(strict)s::tsquery)::int + ts_rank_cd(c.tsv, %(ranked)s::tsquery, 32) AS score
FROM kb_chunks c
WHERE c.tsv @@ %(matched)s::tsquery AND c.embedding_model = %(model)s
  AND (%(kinds)s::text[] IS NULL OR c.kind = ANY(%(kinds)s::text[]))
ORDER BY score DESC, c.id
LIMIT %(limit)s
"""

_LEXEME_STATS = """
SELECT s.most_common_elems::text::text[], s.most_common_elem_freqs,
       greatest((SELECT reltuples FROM pg_class WHERE oid = 'kb_chunks'::regclass), 0)
FROM pg_stats s WHERE s.schemaname = current_schema() AND s.tablename = 'kb_chunks' AND s.attname = 'tsv'
"""
LEXEME_STATS_TTL_S: Final = 60.0
"""How long a process reuses ANALYZE's lexeme statistics (reading them costs about 1.5 ms at 100,000 chunks)."""


@dataclass(frozen=True)
class LexemeStats:
    """ANALYZE's most common lexemes of ``kb_chunks.tsv`` with the share of chunks holding each; a lexeme not among
    them is rarer than all of them (``rare_share``: half the smallest tracked share, as PostgreSQL's planner
    estimates it)."""

    shares: dict[str, float]
    rare_share: float
    rows: float
    fetched_at: float

    def chunks(self, lexeme: str) -> float:
        return self.rows * self.shares.get(lexeme, self.rare_share)


_lexeme_stats: dict[str, LexemeStats] = {}


def forget_lexeme_stats() -> None:
    """Drop the cached statistics (after an ``ANALYZE`` whose effect must show at once: benchmarks, tests)."""
    _lexeme_stats.clear()


def lexeme_stats(conn: Connection[Any]) -> LexemeStats:
    """The statistics for this connection's database, re-read at most every ``LEXEME_STATS_TTL_S``; empty before
    the table was first analysed (every lexeme then counts as rare)."""
    key = f"{conn.info.host}:{conn.info.port}/{conn.info.dbname}"
    now = time.monotonic()
    cached = _lexeme_stats.get(key)
    if cached is not None and now - cached.fetched_at < LEXEME_STATS_TTL_S:
        return cached
    row = conn.execute(_LEXEME_STATS).fetchone()
    if row is None or not row[0]:
        stats = LexemeStats({}, 0.0, 0.0, now)
    else:
        elems, freqs, rows = list(row[0]), [float(f) for f in row[1]], float(row[2])
        stats = LexemeStats(dict(zip(elems, freqs[: len(elems)], strict=True)), freqs[len(elems)] / 2, rows, now)
    _lexeme_stats[key] = stats
    return stats


_LEXEME = re.compile(r"'((?:[^']|'')*)'")

_NODES = """
SELECT c.id, c.node_id, c.document_id, d.source, d.title, d.kind, c.section, c.ord, c.text, c.metadata
FROM kb_chunks c JOIN kb_documents d ON d.id = c.document_id
WHERE c.id = ANY(%(ids)s)
"""


@dataclass(frozen=True)
class ChunkWrite:
    node_id: str
    section: str
    text: str
    embedding: Sequence[float]
    metadata: dict[str, Any]


def write_document(
    conn: Connection[Any],
    *,
    source: str,
    title: str,
    kind: str,
    origin: str,
    content_hash: str,
    embedding_model: str,
    chunking: str,
    metadata: dict[str, Any],
    chunks: Sequence[ChunkWrite],
) -> int:
    """Upsert a document row and replace all its chunks; its id (call inside one transaction)."""
    row = conn.execute(
        """
        INSERT INTO kb_documents (source, title, kind, origin, content_hash, embedding_model, chunking, metadata)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (source) DO UPDATE SET
            title = EXCLUDED.title, kind = EXCLUDED.kind, origin = EXCLUDED.origin,
            content_hash = EXCLUDED.content_hash, embedding_model = EXCLUDED.embedding_model,
            chunking = EXCLUDED.chunking, metadata = EXCLUDED.metadata, updated_at = now()
        RETURNING id
        """,
        (source, title, kind, origin, content_hash, embedding_model, chunking, Jsonb(metadata)),
    ).fetchone()
    assert row is not None
    document_id = int(row[0])
    conn.execute("DELETE FROM kb_chunks WHERE document_id = %s", (document_id,))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO kb_chunks (document_id, node_id, ord, kind, embedding_model, section, text, embedding, "
            "metadata) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    document_id,
                    chunk.node_id,
                    ord_,
                    kind,
                    embedding_model,
                    chunk.section,
                    chunk.text,
                    np.asarray(chunk.embedding, dtype=np.float32),
                    Jsonb(chunk.metadata | {"ord": ord_}),
                )
                for ord_, chunk in enumerate(chunks)
            ],
        )
    return document_id


def delete_chunks(conn: Connection[Any], source: str) -> None:
    """Remove a document's chunks (its row stays, keeping its id, until the service removes the document)."""
    conn.execute("DELETE FROM kb_chunks WHERE document_id = (SELECT id FROM kb_documents WHERE source = %s)", (source,))


def vector_arm(
    conn: Connection[Any],
    embedding: Sequence[float],
    *,
    model: str,
    kinds: Sequence[str] | None,
    limit: int,
    ef_search: int,
) -> list[tuple[int, float]]:
    """Nearest chunks by cosine distance through the HNSW index: (chunk id, distance), nearest first."""
    version = _prepare(conn)
    conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(max(ef_search, limit)),))
    if version >= _ITERATIVE_SCAN_SINCE:  # keep scanning the graph until enough rows pass the filters
        conn.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
    rows = conn.execute(
        _VECTOR_ARM,
        {
            "q": np.asarray(embedding, dtype=np.float32),
            "model": model,
            "kinds": list(kinds) if kinds else None,
            "limit": limit,
        },
    ).fetchall()
    ranked = [(int(r[0]), float(r[1])) for r in rows]
    ranked.sort(key=lambda item: item[1])  # relaxed_order may return slightly out of order
    return ranked


def text_arm(
    conn: Connection[Any], text: str, *, model: str, kinds: Sequence[str] | None, limit: int, budget: int = 0
) -> list[tuple[int, float]]:
    """Chunks matching the words (``websearch_to_tsquery``; plain queries relaxed from all words to any word):
    (chunk id, score), the score being 1 for a chunk with every word plus its ``ts_rank_cd`` over all the words
    (normalised to [0, 1)), so ordering by score puts chunks with every word first.

    ``budget`` (> 0) bounds the any-word match (``match_query``): ranking is linear in the chunks matched, and a
    common word matches much of a large base, so common words join the match only while ANALYZE's estimate of the
    chunks matched stays within it. A chunk left out holds none of the query's rarer words.
    """
    if not text.strip():
        return []
    row = conn.execute("SELECT websearch_to_tsquery(%s::regconfig, %s)::text", (FTS_CONFIG, text)).fetchone()
    strict = str(row[0]) if row else ""
    if not strict:
        return []
    ranked = matched = strict
    if is_plain_query(text):
        terms = strict.split(" & ")  # quoted lexemes or phrases of them ('walk-forward' <-> 'walk' <-> 'forward')
        ranked = matched = " | ".join(terms)
        if budget > 0:
            matched = match_query(conn, terms, budget)
    rows = conn.execute(
        _TEXT_ARM,
        {
            "strict": strict,
            "ranked": ranked,
            "matched": matched,
            "model": model,
            "kinds": list(kinds) if kinds else None,
            "limit": limit,
        },
    ).fetchall()
    return [(int(r[0]), float(r[1])) for r in rows]


def match_query(conn: Connection[Any], terms: Sequence[str], budget: int) -> str:
    """The tsquery a plain query's text arm matches on, its chunks estimated (ANALYZE) to stay near ``budget``:

    - any of its rare terms (a lexeme outside ANALYZE's most common ones; a phrase is as rare as its rarest
      lexeme), however many, then its common terms rarest first while the estimate stays within the budget;
    - when every term is common and even the rarest one alone matches more than the budget: its rarest terms
      together (AND, as few as bring the estimate within the budget, assuming independent words).
    """
    stats = lexeme_stats(conn)
    lexemes = {term: [m.replace("''", "'") for m in _LEXEME.findall(term)] or [term] for term in terms}
    estimate = {term: min(stats.chunks(x) for x in lexemes[term]) for term in terms}
    by_rarity = sorted(terms, key=lambda t: (estimate[t], t))
    rare = [t for t in terms if any(x not in stats.shares for x in lexemes[t])]
    if not rare and estimate[by_rarity[0]] > budget and stats.rows > 0:
        together: list[str] = []
        expected = stats.rows
        for term in by_rarity:
            together.append(term)
            expected *= estimate[term] / stats.rows
            if expected <= budget:
                break
        return " & ".join(f"( {t} )" for t in together)
    kept = list(rare)
    total = sum(estimate[t] for t in rare)
    for term in (t for t in by_rarity if t not in rare):
        if kept and total + estimate[term] > budget:
            break
        kept.append(term)
        total += estimate[term]
    return " | ".join(f"( {t} )" for t in kept)


@dataclass(frozen=True)
class ChunkRow:
    chunk_id: int
    node_id: str
    document_id: int
    source: str
    title: str
    kind: str
    section: str
    ord: int
    text: str
    metadata: dict[str, Any]


def chunk_rows(conn: Connection[Any], chunk_ids: Sequence[int]) -> dict[int, ChunkRow]:
    if not chunk_ids:
        return {}
    rows = conn.execute(_NODES, {"ids": list(chunk_ids)}).fetchall()
    return {
        int(r[0]): ChunkRow(int(r[0]), str(r[1]), int(r[2]), r[3], r[4], r[5], r[6], int(r[7]), r[8], dict(r[9] or {}))
        for r in rows
    }


def component_scores(
    conn: Connection[Any], chunk_ids: Sequence[int], embedding: Sequence[float], text: str
) -> dict[int, tuple[float, float]]:
    """(cosine similarity, full-text rank) of each chunk for this query: the explanation of a hit's score."""
    if not chunk_ids:
        return {}
    rows = conn.execute(
        """
        WITH q AS (SELECT CASE WHEN %(plain)s
            THEN replace(websearch_to_tsquery(%(cfg)s::regconfig, %(text)s)::text, ' & ', ' | ')::tsquery
            ELSE websearch_to_tsquery(%(cfg)s::regconfig, %(text)s) END AS loose)
        SELECT c.id, 1 - (c.embedding <=> %(q)s),
               CASE WHEN q.loose::text = '' THEN 0 ELSE ts_rank_cd(c.tsv, q.loose, 32) END
        FROM kb_chunks c, q WHERE c.id = ANY(%(ids)s)
        """,
        {
            "q": np.asarray(embedding, dtype=np.float32),
            "cfg": FTS_CONFIG,
            "text": text,
            "plain": is_plain_query(text),
            "ids": list(chunk_ids),
        },
    ).fetchall()
    return {int(r[0]): (float(r[1]), float(r[2])) for r in rows}


@dataclass(frozen=True)
class StoredState:
    """What decides whether a document must be re-indexed, as listed."""

    id: int
    content_hash: str
    embedding_model: str
    chunking: str
    kind: DocumentKind
    title: str


@dataclass(frozen=True)
class StoredChunk:
    ord: int
    section: str
    text: str


_SELECT_DOCUMENTS = """
SELECT d.id, d.source, d.title, d.kind, d.origin, d.content_hash, d.embedding_model, d.metadata, d.created_at,
       d.updated_at, (SELECT count(*) FROM kb_chunks c WHERE c.document_id = d.id) AS chunks
FROM kb_documents d
"""


class KnowledgeStore:
    """Listing, state and removal of stored documents (the reads and deletes beside the vector store)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def state(self, source: str) -> StoredState | None:
        with _connection(self.db) as conn:
            row = conn.execute(
                "SELECT id, content_hash, embedding_model, chunking, kind, title FROM kb_documents WHERE source = %s",
                (source,),
            ).fetchone()
        return StoredState(*row) if row else None

    def delete(self, source: str) -> DocumentInfo | None:
        """Remove a document (its chunks cascade); what was removed, or None."""
        with _connection(self.db) as conn, conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(_SELECT_DOCUMENTS + "WHERE d.source = %s FOR UPDATE", (source,)).fetchone()
            if row is None:
                return None
            cur.execute("DELETE FROM kb_documents WHERE id = %s", (row["id"],))
        return DocumentInfo.model_validate(row)

    def sources_under(self, folder: str) -> list[str]:
        """Sources of the files stored from inside ``folder`` (an absolute path)."""
        prefix = folder.rstrip(os.sep) + os.sep
        with _connection(self.db) as conn:
            rows = conn.execute(
                "SELECT source FROM kb_documents WHERE starts_with(source, %s) ORDER BY source", (prefix,)
            ).fetchall()
        return [str(row[0]) for row in rows]

    def documents(self, kinds: Sequence[DocumentKind] | None = None) -> list[DocumentInfo]:
        with _connection(self.db) as conn, conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(
                _SELECT_DOCUMENTS + "WHERE %(kinds)s::text[] IS NULL OR d.kind = ANY(%(kinds)s::text[]) "
                "ORDER BY d.kind, d.title, d.source",
                {"kinds": list(kinds) if kinds else None},
            ).fetchall()
        return [DocumentInfo.model_validate(row) for row in rows]

    def chunks_of(self, source: str) -> list[StoredChunk]:
        """The stored chunks of a document, in order (for inspection and tests)."""
        with _connection(self.db) as conn:
            rows = conn.execute(
                """
                SELECT c.ord, c.section, c.text FROM kb_chunks c JOIN kb_documents d ON d.id = c.document_id
                WHERE d.source = %s ORDER BY c.ord
                """,
                (source,),
            ).fetchall()
        return [StoredChunk(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    def chunk_count(self) -> int:
        with _connection(self.db) as conn:
            row = conn.execute("SELECT count(*) FROM kb_chunks").fetchone()
        return int(row[0]) if row else 0
