"""Ingest the shipped samples into the real PostgreSQL + pgvector and retrieve with citations."""

from __future__ import annotations

import pytest
from pgvector.psycopg import register_vector

from engine.errors import ValidationFailedError
from engine.store.database import Database
from knowledge.models import IngestReport
from knowledge.service import KnowledgeBase, list_documents, search_knowledge
from knowledge.store import _VECTOR_ARM as VECTOR_ARM_SQL
from tests.integration.knowledge.conftest import SAMPLES


def test_samples_are_ingested_with_their_kinds(db: Database, samples: IngestReport) -> None:
    assert {d.status for d in samples.documents} <= {"added", "unchanged"}  # unchanged if the database persists
    assert samples.chunks_embedded == sum(d.chunks for d in samples.documents if d.status == "added")
    stored = {d.source.rsplit("/", 1)[1]: d for d in list_documents(db) if d.source.startswith(str(SAMPLES))}
    assert {name: d.kind for name, d in stored.items()} == {
        "sma-crossover-btc.md": "strategy",
        "risk-policy.md": "risk_policy",
        "btc-hourly-seasonality.md": "report",
        "btc-volatility-regimes.pdf": "report",
    }
    assert all(d.chunks > 0 for d in stored.values())
    assert stored["sma-crossover-btc.md"].title == "SMA crossover on BTC/USD (hourly)"
    assert stored["btc-volatility-regimes.pdf"].title == "BTC volatility regimes and position sizing"
    assert stored["btc-volatility-regimes.pdf"].metadata["pages"] == 2


@pytest.mark.parametrize(
    ("query", "file", "section"),
    [
        ("When does the SMA strategy exit a position?", "sma-crossover-btc.md", "Exit rules"),
        ("How much money can we lose in a day before orders are rejected?", "risk-policy.md", "Loss limits"),
        ("Which hours of the day is bitcoin most volatile?", "btc-hourly-seasonality.md", "Findings: volatility"),
        ("how long do turbulent volatility regimes last", "btc-volatility-regimes.pdf", "page 1"),
        ("halve the maximum order notional in the turbulent regime", "btc-volatility-regimes.pdf", "page 2"),
    ],
)
def test_the_right_document_comes_first(
    kb: KnowledgeBase, samples: IngestReport, query: str, file: str, section: str
) -> None:
    hits = kb.search(query, k=3)
    top = hits[0]
    assert top.source == str(SAMPLES / top.source.split("/samples/", 1)[1])
    assert top.source.endswith("/" + file), [h.citation for h in hits]
    assert any(section in h.section for h in hits if h.source == top.source), [h.citation for h in hits]
    assert top.citation == f"{top.title} § {top.section} ({top.source})"
    assert top.untrusted is True
    assert 0 < top.vector_score <= 1 and top.score > 0
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_hybrid_beats_or_equals_vector_only_on_a_rule_name(kb: KnowledgeBase, samples: IngestReport) -> None:
    query = "RP-08"

    def rank(hits) -> int:
        return next((i for i, h in enumerate(hits, 1) if "RP-08 order rate" in h.text), 99)

    hybrid = kb.search(query, k=10)
    vector_only = kb.search(query, k=10, hybrid=False)
    assert rank(hybrid) == 1
    assert rank(hybrid) <= rank(vector_only)
    assert hybrid[0].fts_rank == 1 and hybrid[0].fts_score > 0
    assert all(h.fts_rank is None for h in vector_only)
    assert vector_only[0].score == pytest.approx(vector_only[0].vector_score, abs=1e-6)


def test_kinds_filter_and_service_result(db: Database, kb: KnowledgeBase, samples: IngestReport) -> None:
    result = search_knowledge(db, "position limits and stops", 4, ["strategy"], embedder=kb.embedder)
    assert result.hits and all(h.kind == "strategy" for h in result.hits)
    assert result.embedder == kb.embedder.name and result.k == 4 and result.kinds == ["strategy"]
    assert result.as_untrusted_block().count("</untrusted-data>") == len(result.hits)


def test_only_stop_words_still_searches_by_vector(kb: KnowledgeBase, samples: IngestReport) -> None:
    hits = kb.search("what is the", k=2)
    assert len(hits) == 2 and all(h.fts_rank is None and h.fts_score == 0 for h in hits)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"query": "   "}, "query"),
        ({"query": "x" * 2001, "k": 1}, "at most 2000 characters"),
        ({"query": "x", "k": 0}, "k"),
        ({"query": "x", "k": 1000}, "k must be at most"),
        ({"query": "x", "kinds": ["memo"]}, "kinds"),
    ],
)
def test_bad_requests(kb: KnowledgeBase, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationFailedError, match=message):
        kb.search(**kwargs)  # type: ignore[arg-type]


def test_vector_arm_can_use_the_hnsw_index(db: Database, kb: KnowledgeBase, samples: IngestReport) -> None:
    vector = kb.embedder.embed(["exit rules"])[0]
    with db.connection() as conn:
        register_vector(conn)
        conn.execute("SET LOCAL enable_seqscan = off")  # a few dozen rows: the planner would rightly seq-scan
        params = {"q": vector, "model": kb.embedder.name, "kinds": ["strategy"], "limit": 10}
        plan = "\n".join(row[0] for row in conn.execute("EXPLAIN " + VECTOR_ARM_SQL, params))
        conn.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
        ids = [row[0] for row in conn.execute(VECTOR_ARM_SQL, params)]
        kinds = {r[0] for r in conn.execute("SELECT kind FROM kb_chunks WHERE id = ANY(%s)", (ids,))}
        strategy_chunks = conn.execute("SELECT count(*) FROM kb_chunks WHERE kind = 'strategy'").fetchone()
    assert "Index Scan using kb_chunks_embedding_hnsw" in plan, plan
    assert kinds == {"strategy"} and len(ids) == min(10, strategy_chunks[0] if strategy_chunks else 0)
