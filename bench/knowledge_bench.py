"""Knowledge-base retrieval quality and latency (``iqts bench knowledge``).

Quality: the labelled questions of ``bench/data/knowledge_questions.jsonl`` (question -> the document and section
that answer it) over the starter documents (risk policy, one per strategy, metrics glossary) and the repository's
``docs/``. A hit is relevant when it comes from the expected document and its section path contains the expected
section. Reported per method: hit@1, hit@5, MRR@10 and nDCG@5 (binary gains; the ideal ranking puts the relevant
chunks found in the top 10 first). Methods: the implementation before LlamaIndex (``bench/legacy_kb``), LlamaIndex
dense only, and hybrid (dense + PostgreSQL full text) under each fusion mode; the best is marked.

Latency: p50/p95 of a whole ``KnowledgeBase.search`` (query embedding included) with the store padded to 10,000
(and, with ``--large``, 100,000) chunks: synthetic chunks (random unit vectors, text drawn from the docs' words)
inserted in bulk with COPY, removed afterwards. Ingest: milliseconds per page (3,000 characters) of the docs.

Run: ``uv run python -m bench.knowledge_bench [--json] [--large]`` or ``iqts bench knowledge [--large]``. It uses
its own database (``iqts_bench_kb``) unless given one.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
from pgvector.psycopg import register_vector
from psycopg import Connection
from pydantic import BaseModel

from bench.legacy_kb.index import LegacyIndex
from engine.settings import KnowledgeSettings, load_settings
from engine.store.database import Database, connect
from engine.store.migrate import upgrade
from engine.telemetry import configure_logging
from knowledge.base import KnowledgeBase
from knowledge.embeddings.base import Embedder
from knowledge.loaders import first_heading
from knowledge.starter import ensure_starter_documents, starter_documents
from knowledge.store import forget_lexeme_stats

ROOT: Final = Path(__file__).resolve().parents[1]
QUESTIONS: Final = Path(__file__).resolve().parent / "data" / "knowledge_questions.jsonl"
JOURNAL: Final = Path(__file__).resolve().parent / "data" / "knowledge_journal.jsonl"
DOCS: Final = ROOT / "docs"
SYNTHETIC: Final = "bench://synthetic/"
CHUNKS_PER_SYNTHETIC_DOC: Final = 50
PAGE_CHARS: Final = 3_000
FUSIONS: Final = ("reciprocal_rerank", "relative_score", "dist_based_score", "store_rrf")
DEFAULT_SIZES: Final = (10_000,)
LARGE_SIZES: Final = (10_000, 100_000)
TOP: Final = 10
NOT_IN_CORPUS: Final = ("knowledge.md",)
BULK_INDEXES: Final = ("kb_chunks_embedding_hnsw", "kb_chunks_tsv")  # migration 0006


class Question(BaseModel):
    question: str
    source: str
    section: str = ""


class KnowledgeBenchRow(BaseModel):
    measure: str  # quality, latency or ingest
    method: str
    chunks: int
    questions: int | None = None
    hit_at_1: float | None = None
    hit_at_5: float | None = None
    mrr: float | None = None
    ndcg_at_5: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    ms_per_page: float | None = None


class JournalSample(BaseModel):
    """A trade-journal entry as IQTS writes it (captured from real runs on the bundled data; see the file's head)."""

    kind: Literal["backtest", "study", "approval", "fill"]
    subject_id: str
    title: str
    body: str
    metadata: dict[str, Any] = {}


def load_journal(path: Path = JOURNAL) -> list[JournalSample]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [JournalSample.model_validate_json(line) for line in lines if line.strip() and not line.startswith("//")]


def load_questions(path: Path = QUESTIONS) -> list[Question]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [Question.model_validate_json(line) for line in lines if line.strip()]


def _relevant(question: Question, source: str, section: str) -> bool:
    same = source == question.source or source.endswith("/" + question.source)
    return same and question.section.lower() in section.lower()


def score(questions: Sequence[Question], ranked: Sequence[Sequence[tuple[str, str]]]) -> dict[str, float]:
    """hit@1, hit@5, MRR@10 and nDCG@5 of ranked (source, section) lists, one per question."""
    hit1 = hit5 = rr = ndcg = 0.0
    for question, hits in zip(questions, ranked, strict=True):
        flags = [_relevant(question, source, section) for source, section in hits[:TOP]]
        first = next((i for i, flag in enumerate(flags) if flag), None)
        if first is not None:
            rr += 1.0 / (first + 1)
            hit1 += first == 0
            hit5 += first < 5
        dcg = sum(1.0 / math.log2(i + 2) for i, flag in enumerate(flags[:5]) if flag)
        ideal = sum(1.0 / math.log2(i + 2) for i in range(min(sum(flags), 5)))
        ndcg += dcg / ideal if ideal else 0.0
    n = len(questions)
    return {"hit_at_1": hit1 / n, "hit_at_5": hit5 / n, "mrr": rr / n, "ndcg_at_5": ndcg / n}


def _docs(docs_dir: Path) -> list[Path]:
    """The docs pages of the corpus: all but the page that reports this bench (it quotes its questions and
    results, so every edit of it would move the figures it reports)."""
    return [p for p in sorted(docs_dir.glob("*.md")) if p.name not in NOT_IN_CORPUS]


def _corpus_documents(kb: KnowledgeBase, docs_dir: Path) -> list[tuple[str, str, str]]:
    docs = [(d.source, d.title, d.text) for d in starter_documents(kb)]
    for info in kb.store.documents(kinds=["journal"]):
        docs.append((info.source, info.title, "\n".join(c.text for c in kb.store.chunks_of(info.source))))
    for path in _docs(docs_dir):
        text = path.read_text(encoding="utf-8")
        docs.append((str(path), first_heading(text) or path.stem, text))
    return docs


def _reset(db: Database) -> None:
    """Empty the bench's knowledge tables. TRUNCATE, not DELETE: the HNSW graph of a previous run's 100,000 deleted
    chunks would otherwise stay in the index until a vacuum, and a scan that meets mostly dead entries returns fewer
    live ones (quality moved by 0.08 hit@1 between two runs before this)."""
    with db.connection() as conn:
        conn.execute("TRUNCATE kb_chunks, kb_documents, kb_docstore")


def _index(kb: KnowledgeBase, docs_dir: Path, journal: Sequence[JournalSample]) -> KnowledgeBenchRow:
    ensure_starter_documents(kb, force=True)
    for entry in journal:
        kb.journal_entry(entry.kind, entry.subject_id, entry.title, entry.body, entry.metadata)
    started = time.perf_counter()
    embedded = sum(kb.ingest_path(path).chunks_embedded for path in _docs(docs_dir))
    seconds = time.perf_counter() - started
    pages = sum(len(p.read_text(encoding="utf-8")) for p in _docs(docs_dir)) / PAGE_CHARS
    return KnowledgeBenchRow(
        measure="ingest", method="llamaindex pipeline (docs/)", chunks=embedded,
        ms_per_page=1000 * seconds / max(pages, 1e-9),
    )  # fmt: skip


def _chunk_count(db: Database) -> int:
    with db.connection() as conn:
        row = conn.execute("SELECT count(*) FROM kb_chunks").fetchone()
    return int(row[0]) if row else 0


def quality_rows(kb: KnowledgeBase, questions: Sequence[Question], docs_dir: Path = DOCS) -> list[KnowledgeBenchRow]:
    chunks = _chunk_count(kb.db)
    rows: list[KnowledgeBenchRow] = []
    with kb.db.connection() as conn:
        legacy = LegacyIndex(conn, kb.embedder)
        legacy_chunks = legacy.add(_corpus_documents(kb, docs_dir))
        ranked = [[(h.source, h.section) for h in legacy.search(q.question, TOP)] for q in questions]
        conn.rollback()  # the temporary table goes
    rows.append(KnowledgeBenchRow(measure="quality", method="legacy (hand-written hybrid)", chunks=legacy_chunks,
                                  questions=len(questions), **score(questions, ranked)))  # fmt: skip

    def run(hybrid: bool, fusion: str | None) -> dict[str, float]:
        hits = [kb.search(q.question, k=TOP, hybrid=hybrid, fusion=fusion) for q in questions]
        return score(questions, [[(h.source, h.section) for h in found] for found in hits])

    rows.append(KnowledgeBenchRow(measure="quality", method="llamaindex dense only", chunks=chunks,
                                  questions=len(questions), **run(False, None)))  # fmt: skip
    hybrid = [
        KnowledgeBenchRow(measure="quality", method=f"llamaindex hybrid {mode}", chunks=chunks,
                          questions=len(questions), **run(True, mode))
        for mode in FUSIONS
    ]  # fmt: skip
    best = max(hybrid, key=lambda r: (r.mrr or 0.0, r.ndcg_at_5 or 0.0, r.hit_at_1 or 0.0))
    best.method += " (best)"
    default = kb.config.fusion
    for row in hybrid:
        if row.method.split()[2] == default:
            row.method += " [default]"
    return rows + hybrid


def _vocabulary(docs_dir: Path) -> list[str]:
    words = re.findall(r"[a-z]{3,}", " ".join(p.read_text(encoding="utf-8") for p in docs_dir.glob("*.md")).lower())
    return sorted(set(words))


def pad_synthetic(db: Database, model: str, target: int, *, docs_dir: Path = DOCS, seed: int = 7) -> int:
    """Insert synthetic chunks (bulk COPY) until the store holds ``target`` chunks; the number inserted."""
    missing = target - _chunk_count(db)
    if missing <= 0:
        return 0
    rng = np.random.default_rng(seed + target)
    vocabulary = np.array(_vocabulary(docs_dir))
    weights = 1.0 / np.arange(1, len(vocabulary) + 1)  # Zipf-like: a few common words, a long tail
    weights /= weights.sum()
    inserted = 0
    with db.connection() as conn, _indexes_rebuilt_after(conn):
        register_vector(conn)
        start = int(conn.execute("SELECT count(*) FROM kb_documents WHERE starts_with(source, %s)",
                                 (SYNTHETIC,)).fetchone()[0])  # type: ignore[index]  # fmt: skip
        docs = math.ceil(missing / CHUNKS_PER_SYNTHETIC_DOC)
        for d in range(start, start + docs):
            row = conn.execute(
                "INSERT INTO kb_documents (source, title, kind, origin, content_hash, embedding_model, chunking) "
                "VALUES (%s, %s, 'note', 'note', %s, %s, 'bench') RETURNING id",
                (f"{SYNTHETIC}{d}", f"Synthetic {d}", f"bench-{d}", model),
            ).fetchone()
            assert row is not None
            n = min(CHUNKS_PER_SYNTHETIC_DOC, missing - inserted)
            vectors = rng.standard_normal((n, 384)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            texts = [" ".join(rng.choice(vocabulary, size=60, p=weights)) for _ in range(n)]
            with conn.cursor().copy(
                "COPY kb_chunks (document_id, node_id, ord, kind, embedding_model, section, text, embedding) "
                "FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["int8", "text", "int4", "text", "text", "text", "text", "vector"])
                for i in range(n):
                    copy.write_row((row[0], f"bench-{d}-{i}", i, "note", model, f"Synthetic {d}", texts[i],
                                    vectors[i]))  # fmt: skip
            inserted += n
    return inserted


@contextmanager
def _indexes_rebuilt_after(conn: Connection[Any]) -> Iterator[None]:
    """Bulk-load without the HNSW and GIN indexes and build them once afterwards: inserting 90,000 vectors into a
    live HNSW graph took more than 15 minutes here, building the graph over 100,000 rows a few."""
    indexes = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'kb_chunks'"
        " AND indexname = ANY(%s)",
        (list(BULK_INDEXES),),
    ).fetchall()
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    conn.commit()
    try:
        yield
    finally:
        conn.commit()
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET max_parallel_maintenance_workers = 2")
        for _, definition in indexes:
            conn.execute(definition)
        conn.commit()


def remove_synthetic(db: Database) -> None:
    with db.connection() as conn:
        conn.execute("DELETE FROM kb_documents WHERE starts_with(source, %s)", (SYNTHETIC,))


def _percentiles(samples: Sequence[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49], cuts[94]


def latency_rows(
    kb: KnowledgeBase, questions: Sequence[Question], sizes: Sequence[int], queries: int, docs_dir: Path = DOCS
) -> list[KnowledgeBenchRow]:
    rows: list[KnowledgeBenchRow] = []
    texts = [q.question for q in questions]
    try:
        for size in sorted(sizes):
            pad_synthetic(kb.db, kb.embedder.name, size, docs_dir=docs_dir)
            with kb.db.connection() as conn:
                conn.execute("ANALYZE kb_chunks")
            forget_lexeme_stats()  # the text arm's estimates must see the padded table
            chunks = _chunk_count(kb.db)
            budget = kb.vector_store.text_budget
            methods: list[tuple[str, int, Callable[[str], object]]] = [
                (f"hybrid {kb.config.fusion}, text match budget {budget}", budget, lambda q: kb.search(q, k=5)),
                (f"hybrid {kb.config.fusion}, every word matched", 0, lambda q: kb.search(q, k=5)),
                ("dense only", budget, lambda q: kb.search(q, k=5, hybrid=False)),
            ]
            for name, method_budget, search in methods:
                kb.vector_store.text_budget = method_budget
                for text in texts[:5]:  # warm up: caches, prepared plans
                    search(text)
                samples = []
                for i in range(queries):
                    started = time.perf_counter()
                    search(texts[i % len(texts)])
                    samples.append(1000 * (time.perf_counter() - started))
                p50, p95 = _percentiles(samples)
                rows.append(KnowledgeBenchRow(measure="latency", method=name, chunks=chunks, p50_ms=p50, p95_ms=p95))
            kb.vector_store.text_budget = budget
    finally:
        remove_synthetic(kb.db)
    return rows


def run_knowledge_bench(
    *,
    large: bool = False,
    sizes: Sequence[int] | None = None,
    queries: int = 200,
    questions: Sequence[Question] | None = None,
    journal: Sequence[JournalSample] | None = None,
    db: Database | None = None,
    embedder: Embedder | None = None,
    docs_dir: Path = DOCS,
) -> list[KnowledgeBenchRow]:
    own = db is None
    database = db or connect(load_settings(db_name="iqts_bench_kb"))
    try:
        upgrade(database)
        config = KnowledgeSettings(allowed_roots=(str(ROOT), str(docs_dir), tempfile.gettempdir()))
        kb = KnowledgeBase(database, embedder, config)
        labelled = list(questions) if questions is not None else load_questions()
        _reset(database)
        rows = [_index(kb, docs_dir, load_journal() if journal is None else journal)]
        rows += quality_rows(kb, labelled, docs_dir)
        rows += latency_rows(kb, labelled, sizes or (LARGE_SIZES if large else DEFAULT_SIZES), queries, docs_dir)
        return rows
    finally:
        if own:
            database.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--large", action="store_true", help="also measure at 100,000 chunks (minutes)")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    configure_logging(level="WARNING")
    rows = run_knowledge_bench(large=args.large, queries=args.queries)
    for row in rows:
        print(json.dumps(row.model_dump()) if args.json else row)


if __name__ == "__main__":
    main()
