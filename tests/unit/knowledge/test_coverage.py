"""The words of a question that no retrieved passage contains (``knowledge.coverage``)."""

from __future__ import annotations

import pytest

from knowledge.coverage import content_words, stem, unmatched_words

STRATEGY_DOCS = [
    "donchian_breakout: turtle breakout of the previous N-bar high/low, exit on the M-bar channel.",
    "Backtest it with the run_backtest tool, optimise its parameters within the bounds with an Optuna study.",
]


def test_a_subject_no_passage_mentions_is_reported() -> None:
    assert unmatched_words("What do my notes say about trading Solana options?", STRATEGY_DOCS) == [
        "trading",
        "solana",
        "options",
    ]


def test_words_the_passages_hold_are_not_reported_whatever_their_ending() -> None:
    passages = ["Journal: the LTC breakout failed; lesson: wait for a daily close above resistance."]
    assert unmatched_words("What lesson did I write down after the failed LTC breakouts?", passages) == []
    assert unmatched_words("lessons about closing", passages) == []  # lesson(s), clos(e|ing)


@pytest.mark.parametrize(
    ("word", "root"),
    [("trading", "trad"), ("halvings", "halv"), ("notes", "note"), ("ltc", "ltc"), ("eyes", "eyes")],
)
def test_stems_keep_at_least_four_letters(word: str, root: str) -> None:
    assert stem(word) == root


def test_only_content_words_count() -> None:
    assert content_words("What does my note say about the ETH thesis, and my ETH size?") == ["eth", "thesis", "size"]
    assert unmatched_words("what do my notes say?", STRATEGY_DOCS) == []
    assert unmatched_words("anything", []) == []
