"""Reciprocal rank fusion and the relaxation of plain full-text queries."""

from __future__ import annotations

import pytest

from knowledge.search import is_plain_query, loosen, reciprocal_rank_fusion


def test_rrf_rewards_agreement() -> None:
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 4]], k=60)
    assert fused[3] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[1] == pytest.approx(1 / 61)
    assert max(fused, key=fused.__getitem__) == 3
    assert reciprocal_rank_fusion([[], []], k=60) == {}


@pytest.mark.parametrize(
    ("query", "plain"),
    [
        ("max daily loss", True),
        ("RP-08 order rate", True),
        ('"kill switch" release', False),
        ("stop -market", False),
        ("btc or eth", False),
    ],
)
def test_plain_queries(query: str, plain: bool) -> None:
    assert is_plain_query(query) is plain


def test_loosen_turns_and_into_or() -> None:
    assert loosen("'max' & 'daili' & 'loss'") == "'max' | 'daili' | 'loss'"
    assert loosen("'rp-08' <-> 'rp' <-> '08' & 'rate'") == "'rp-08' <-> 'rp' <-> '08' | 'rate'"
