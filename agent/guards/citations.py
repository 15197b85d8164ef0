"""Sources cited, not retyped: an answer drawn from the knowledge base names the documents it came from.

The model is asked to cite its sources and a small one mostly does not. :func:`citation_line` is the line appended
under an answer after ``search_knowledge``: the titles of the best hits (at most :data:`MAX_SOURCES` distinct ones)
that the answer does not already name. When the search found none of the question's words (its result lists every
content word under ``not_in_any_passage``, none under ``words_found``) there is nothing to cite, and the line
is empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MAX_SOURCES = 2
HEAD = "Sources:"
SEARCH_TOOL = "search_knowledge"


def _covered(result: Mapping[str, Any]) -> bool:
    """The search found some word of the question in its passages (the server lists them under ``words_found``;
    a server that does not say is taken at its hits)."""
    return "words_found" not in result or bool(result.get("words_found"))


def cited_titles(artifacts: Iterable[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """The titles to cite from this turn's knowledge searches, best hits first."""
    titles: list[str] = []
    for tool, result in artifacts:
        if tool != SEARCH_TOOL or not _covered(result):
            continue
        for hit in result.get("hits") or []:
            title = str(hit.get("title", "")).strip() if isinstance(hit, Mapping) else ""
            if title and title not in titles:
                titles.append(title)
    return titles[:MAX_SOURCES]


def citation_line(artifacts: Iterable[tuple[str, Mapping[str, Any]]], answer: str) -> str:
    """``Sources: A; B`` for the titles the answer does not name ('' when it names them all, or none apply)."""
    lowered = answer.lower()
    titles = [t for t in cited_titles(artifacts) if t.lower() not in lowered]
    return f"{HEAD} {'; '.join(titles)}" if titles else ""
