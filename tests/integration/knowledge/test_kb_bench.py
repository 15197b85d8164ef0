"""`iqts bench knowledge` on a tiny corpus: every method reports every metric, latency has p50/p95 (not values)."""

from __future__ import annotations

from pathlib import Path

from bench.knowledge_bench import KnowledgeBenchRow, Question, load_questions, run_knowledge_bench, score
from engine.store.database import Database
from knowledge.embeddings.base import Embedder


def test_the_labelled_set_is_large_enough_and_scored_as_documented() -> None:
    questions = load_questions()
    assert len(questions) >= 60 and len({q.question for q in questions}) == len(questions)
    q = Question(question="x", source="docs/a.md", section="Intro")
    perfect = score([q], [[("/repo/docs/a.md", "A > Intro")]])
    second = score([q], [[("starter://glossary/metrics", "Intro"), ("/repo/docs/a.md", "A > Intro")]])
    assert perfect == {"hit_at_1": 1.0, "hit_at_5": 1.0, "mrr": 1.0, "ndcg_at_5": 1.0}
    assert (second["hit_at_1"], second["hit_at_5"], second["mrr"]) == (0.0, 1.0, 0.5)


def test_bench_on_a_tiny_corpus_reports_every_metric(db: Database, minilm: Embedder, tmp_path: Path) -> None:
    (tmp_path / "limits.md").write_text(
        "# Limits\n\n## Leverage\n\nGross exposure over equity, at most 1x.\n\n"
        "## Drawdown\n\nStop at 20% below peak.\n",
        encoding="utf-8",
    )
    questions = [
        Question(question="how is leverage limited", source="limits.md", section="Leverage"),
        Question(question="Sharpe ratio", source="starter://glossary/metrics", section="Sharpe"),
    ]
    rows = run_knowledge_bench(sizes=(300,), queries=10, questions=questions, db=db, embedder=minilm, docs_dir=tmp_path)
    by_measure: dict[str, list[KnowledgeBenchRow]] = {}
    for row in rows:
        by_measure.setdefault(row.measure, []).append(row)
    quality = by_measure["quality"]
    methods = [r.method for r in quality]
    assert methods[0].startswith("legacy") and "llamaindex dense only" in methods
    assert sum("(best)" in m for m in methods) == 1 and sum("[default]" in m for m in methods) == 1
    for row in quality:
        assert row.questions == 2
        assert all(0.0 <= v <= 1.0 for v in (row.hit_at_1, row.hit_at_5, row.mrr, row.ndcg_at_5) if v is not None)
        assert None not in (row.hit_at_1, row.hit_at_5, row.mrr, row.ndcg_at_5)
    latency = by_measure["latency"]
    assert {r.chunks for r in latency} == {300} and len(latency) == 3
    assert all(r.p50_ms is not None and r.p95_ms is not None and r.p50_ms <= r.p95_ms for r in latency)
    assert by_measure["ingest"][0].ms_per_page is not None
    with db.connection() as conn:  # the synthetic chunks are gone again, the indexes dropped for the load are back
        row = conn.execute("SELECT count(*) FROM kb_documents WHERE source LIKE 'bench://%'").fetchone()
        indexes = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'kb_chunks'")}
    assert row is not None and row[0] == 0
    assert {"kb_chunks_embedding_hnsw", "kb_chunks_tsv"} <= indexes
