"""Which words of a question no retrieved passage contains.

Retrieval always returns the nearest passages, even when nothing stored is about the question ("what do my notes
say about Solana options?" returns the strategy documents). The words no hit contains tell the reader, a person or
a model, that the documents do not cover them, so the answer can say so instead of retelling unrelated passages.

A word counts as contained when a word of a passage starts with its stem (the word less a common English ending,
at least four letters): "trading" is in "trade", "halvings" in "halving". The test is lenient on purpose: a word is
reported only when it is really absent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_WORD = re.compile(r"[a-z0-9][a-z0-9_\-]*[a-z0-9]|[a-z0-9]", re.IGNORECASE)
_ENDINGS = ("ings", "ing", "ies", "ied", "ed", "es", "s", "ly")
MIN_STEM = 4
_STOPWORDS_TEXT = """
    a about above after again against all am an and any are as at be because been before being below between both
    but by can could did do does doing down during each few for from further had has have having he her here hers how
    i if in into is it its itself just me more most my myself no nor not now of off on once only or other our ours out
    over own same she should so some such than that the their them then there these they this those through to too
    under until up very was we were what when where which while who whom why will with would you your yours yourself
    say says said tell show find give written wrote write according note notes noted document documents doc docs
    knowledge base search look please thing things anything something mine me kind"""
STOPWORDS: frozenset[str] = frozenset(_STOPWORDS_TEXT.split())


def stem(word: str) -> str:
    """``word`` less one common ending, keeping at least :data:`MIN_STEM` letters."""
    lowered = word.lower()
    for ending in _ENDINGS:
        if lowered.endswith(ending) and len(lowered) - len(ending) >= MIN_STEM:
            return lowered[: -len(ending)]
    return lowered


def content_words(text: str) -> list[str]:
    """The words of ``text`` that carry its subject (no stopwords, no one- or two-letter words), once each."""
    seen: dict[str, None] = {}
    for match in _WORD.finditer(text):
        word = match.group(0).lower()
        if len(word) >= 3 and word not in STOPWORDS and not word.isdigit():
            seen.setdefault(word, None)
    return list(seen)


def word_coverage(query: str, passages: Iterable[str]) -> tuple[list[str], list[str]]:
    """(found, missing): the content words of ``query`` that some passage contains, and those none does."""
    words = content_words(query)
    if not words:
        return [], []
    vocabulary = {m.group(0).lower() for text in passages for m in _WORD.finditer(text)}
    joined = " ".join(sorted(vocabulary))
    found, missing = [], []
    for word in words:
        if word in vocabulary or re.search(rf"(?<![a-z0-9]){re.escape(stem(word))}", joined):
            found.append(word)
        else:
            missing.append(word)
    return found, missing


def unmatched_words(query: str, passages: Iterable[str]) -> list[str]:
    """The content words of ``query`` that no passage contains (see the module docstring)."""
    return word_coverage(query, passages)[1]
