"""The knowledge base's retrieval before LlamaIndex, kept to be measured against (``iqts bench knowledge``).

The same steps as the old ``knowledge/service.py``: the hand-written Markdown chunker, each chunk embedded with its
document title and heading path, a vector arm (cosine) and a full-text arm (``websearch_to_tsquery``, chunks with
every word first, then ``ts_rank_cd``), fused by reciprocal rank fusion. The chunks live in a temporary table of the
caller's connection, so the measured store stays untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from pgvector.psycopg import register_vector
from psycopg import Connection

from bench.legacy_kb.chunking import chunk_markdown
from bench.legacy_kb.search import is_plain_query, loosen, reciprocal_rank_fusion
from knowledge.embeddings.base import Embedder
from knowledge.models import Chunk

MAX_TOKENS: Final = 160
OVERLAP_TOKENS: Final = 32
CANDIDATES_PER_ARM: Final = 40
RRF_K: Final = 60

_TABLE = """
CREATE TEMP TABLE legacy_chunks (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source    text NOT NULL,
    section   text NOT NULL,
    text      text NOT NULL,
    embedding vector(384) NOT NULL,
    tsv       tsvector GENERATED ALWAYS AS (
                  setweight(to_tsvector('english', section), 'A') || setweight(to_tsvector('english', text), 'B')
              ) STORED
) ON COMMIT DROP
"""


@dataclass(frozen=True)
class LegacyHit:
    source: str
    section: str
    score: float


def embedding_input(title: str, chunk: Chunk) -> str:
    head = chunk.section if chunk.section.startswith(title) else " > ".join(p for p in (title, chunk.section) if p)
    return f"{head}\n\n{chunk.text}"


class LegacyIndex:
    """The old hybrid search over ``(source, title, markdown)`` documents, inside one open transaction."""

    def __init__(self, conn: Connection[Any], embedder: Embedder) -> None:
        self.conn = conn
        self.embedder = embedder
        register_vector(conn)
        conn.execute(_TABLE)

    def add(self, documents: Sequence[tuple[str, str, str]]) -> int:
        rows: list[tuple[str, str, str, Any]] = []
        for source, title, text in documents:
            chunks = chunk_markdown(text, MAX_TOKENS, OVERLAP_TOKENS)
            if not chunks:
                continue
            vectors = self.embedder.embed([embedding_input(title, c) for c in chunks])
            rows += [
                (source, c.section, c.text, np.asarray(v, dtype=np.float32))
                for c, v in zip(chunks, vectors, strict=True)
            ]
        with self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO legacy_chunks (source, section, text, embedding) VALUES (%s, %s, %s, %s)", rows
            )
        return len(rows)

    def search(self, query: str, k: int) -> list[LegacyHit]:
        vector = np.asarray(self.embedder.embed([query])[0], dtype=np.float32)
        by_vector = [
            int(r[0])
            for r in self.conn.execute(
                "SELECT id FROM legacy_chunks ORDER BY embedding <=> %s LIMIT %s", (vector, CANDIDATES_PER_ARM)
            ).fetchall()
        ]
        row = self.conn.execute("SELECT websearch_to_tsquery('english', %s)::text", (query,)).fetchone()
        strict = str(row[0]) if row else ""
        loose = loosen(strict) if strict and is_plain_query(query) else strict
        by_text: list[int] = []
        if strict:
            by_text = [
                int(r[0])
                for r in self.conn.execute(
                    """
                    SELECT id FROM legacy_chunks WHERE tsv @@ %(loose)s::tsquery
                    ORDER BY (tsv @@ %(strict)s::tsquery) DESC, ts_rank_cd(tsv, %(loose)s::tsquery, 32) DESC, id
                    LIMIT %(limit)s
                    """,
                    {"strict": strict, "loose": loose, "limit": CANDIDATES_PER_ARM},
                ).fetchall()
            ]
        fused = reciprocal_rank_fusion([by_vector, by_text], RRF_K)
        best = sorted(fused, key=lambda cid: (-fused[cid], cid))[:k]
        if not best:
            return []
        where = {
            int(r[0]): (str(r[1]), str(r[2]))
            for r in self.conn.execute(
                "SELECT id, source, section FROM legacy_chunks WHERE id = ANY(%s)", (best,)
            ).fetchall()
        }
        return [LegacyHit(where[cid][0], where[cid][1], fused[cid]) for cid in best]
