"""The starter documents: a fresh base can cite the risk policy, each strategy and the metrics glossary."""

from __future__ import annotations

from engine.risk.store import active_policy, save_and_activate
from engine.store.database import Database
from engine.strategies.registry import list_strategies
from knowledge.embeddings.base import Embedder
from knowledge.service import list_documents, search_knowledge, seed_starter_documents
from knowledge.starter import GLOSSARY_SOURCE, RISK_POLICY_SOURCE


def test_seeded_listed_and_cited(db: Database, minilm: Embedder) -> None:
    seed_starter_documents(db, embedder=minilm)
    listed = {d.source: d for d in list_documents(db) if d.origin == "starter"}
    strategies = {f"starter://strategy/{spec.name}" for spec in list_strategies()}
    assert {RISK_POLICY_SOURCE, GLOSSARY_SOURCE} | strategies <= set(listed)
    assert (listed[RISK_POLICY_SOURCE].kind, listed[GLOSSARY_SOURCE].kind) == ("risk_policy", "glossary")
    assert {listed[s].kind for s in strategies} == {"strategy"}
    assert all(d.chunks > 0 for d in listed.values())

    hits = search_knowledge(db, "what does my risk policy say about leverage?", k=3, embedder=minilm).hits
    assert hits[0].source == RISK_POLICY_SOURCE
    assert any(h.source == RISK_POLICY_SOURCE and "max_leverage" in h.text for h in hits)
    assert seed_starter_documents(db, embedder=minilm) and all(
        o.status == "unchanged" for o in seed_starter_documents(db, embedder=minilm)
    )


def test_a_policy_change_is_reindexed_on_the_next_search(db: Database, minilm: Embedder, unique: str) -> None:
    search_knowledge(db, "leverage", k=1, embedder=minilm)  # seeded with the current policy
    save_and_activate(db, f'version: "kb-{unique}"\ndefaults:\n  max_leverage: 3.5\n', "test")
    assert active_policy(db).version == f"kb-{unique}"
    hits = search_knowledge(db, "maximum leverage limit", k=5, kinds=["risk_policy"], embedder=minilm).hits
    assert hits and {h.source for h in hits} == {RISK_POLICY_SOURCE}
    assert any("3.5" in h.text for h in hits) and f"kb-{unique}" in hits[0].title
