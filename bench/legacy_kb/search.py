"""Hybrid retrieval pieces that need no database: query relaxation and reciprocal rank fusion."""

from __future__ import annotations

import re
from collections.abc import Sequence

_OPERATORS = re.compile(r'"|(?:^|\s)-\S|\bor\b', re.IGNORECASE)


def is_plain_query(query: str) -> bool:
    """No web-search operators (quoted phrase, ``-term``, ``or``): just words, safe to relax from AND to OR."""
    return _OPERATORS.search(query) is None


def loosen(tsquery: str) -> str:
    """Every ``&`` of a ``websearch_to_tsquery`` text made ``|``, so chunks with only some of the words match too.

    Applied to plain queries only (see ``is_plain_query``); chunks with every word still rank first.
    """
    return tsquery.replace(" & ", " | ")


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int) -> dict[int, float]:
    """``sum(1 / (k + rank))`` over the rankings each id appears in (ranks are 1-based)."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return fused
