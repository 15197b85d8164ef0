"""The full-text arm's match budget: on a large base a plain query's commonest words stop widening the any-word
match (which is ranked row by row), chosen from ANALYZE's statistics; chunks with the rare words still come first."""

from __future__ import annotations

import numpy as np
import pytest

from engine.store.database import Database
from knowledge import store

MODEL = "budget-test"
COMMON = 400  # chunks holding only the common word
RARE = 3  # chunks holding the rare word too


def _vector(rng: np.random.Generator) -> list[float]:
    v = rng.standard_normal(384).astype(np.float32)
    return [float(x) for x in v / np.linalg.norm(v)]


@pytest.fixture(scope="module")
def base(db: Database) -> Database:
    rng = np.random.default_rng(3)
    texts = [f"the exposure report number {i} of the desk" for i in range(COMMON)]
    texts += [f"the exposure report on zeppelin futures, part {i}" for i in range(RARE)]
    with store.prepared(db) as conn:
        store.write_document(
            conn, source="budget://doc", title="Budget", kind="note", origin="note", content_hash="h",
            embedding_model=MODEL, chunking="test", metadata={},
            chunks=[store.ChunkWrite(f"budget-{i}", "", t, _vector(rng), {}) for i, t in enumerate(texts)],
        )  # fmt: skip
        conn.commit()
        conn.execute("ANALYZE kb_chunks")
    store.forget_lexeme_stats()
    return db


def test_the_rarest_terms_are_matched_on_within_the_budget(base: Database) -> None:
    with store.prepared(base) as conn:
        match = store.match_query
        assert match(conn, ["'exposur'", "'zeppelin'"], budget=50) == "( 'zeppelin' )"
        assert match(conn, ["'exposur'", "'zeppelin'"], budget=10_000) == "( 'zeppelin' ) | ( 'exposur' )"
        # a phrase is as rare as its rarest word
        assert match(conn, ["'exposur' <-> 'zeppelin'", "'report'"], budget=50) == "( 'exposur' <-> 'zeppelin' )"
        # a lexeme outside ANALYZE's most common ones is rarer than all of them: always matched on, however many
        assert match(conn, ["'exposur'", "'unseen'", "'neverseen'"], budget=1) == "( 'unseen' ) | ( 'neverseen' )"
        # every word common and the rarest alone over budget: the chunks holding them together
        assert match(conn, ["'report'", "'exposur'"], budget=1) == "( 'exposur' ) & ( 'report' )"
        assert match(conn, ["'report'"], budget=1) == "( 'report' )"


def test_a_bounded_match_keeps_the_chunks_with_the_rare_word_first_and_leaves_out_common_only_ones(
    base: Database,
) -> None:
    query = "zeppelin exposure"
    with store.prepared(base) as conn:
        every = store.text_arm(conn, query, model=MODEL, kinds=None, limit=1000, budget=0)
        bounded = store.text_arm(conn, query, model=MODEL, kinds=None, limit=1000, budget=50)
        rows = store.chunk_rows(conn, [cid for cid, _ in every])
        # a query with operators (a quoted phrase) is never relaxed to any word, so never bounded either
        phrase = '"exposure report" zeppelin'
        assert store.text_arm(conn, phrase, model=MODEL, kinds=None, limit=10, budget=1) == store.text_arm(
            conn, phrase, model=MODEL, kinds=None, limit=10, budget=0
        )
    assert len(every) == COMMON + RARE  # any word: every chunk
    assert len(bounded) == RARE and all("zeppelin" in rows[cid].text for cid, _ in bounded)
    assert bounded == every[:RARE]  # same scores (ranked on every word), same order
