"""The knowledge base's service calls: what the MCP tools, the CLI and the journal call.

Each builds a ``KnowledgeBase`` (``knowledge.base``, on LlamaIndex) on the process-wide embedder. LlamaIndex is
imported on first use, not when this module is imported, so surfaces that only register tools start fast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.settings import KnowledgeSettings
from engine.store.database import Database
from knowledge.embeddings.base import Embedder
from knowledge.models import (
    DocumentInfo,
    DocumentKind,
    DocumentOutcome,
    IngestReport,
    JournalKind,
    NoteRef,
    SearchResult,
)
from knowledge.store import KnowledgeStore

if TYPE_CHECKING:
    from knowledge.base import KnowledgeBase


def __getattr__(name: str) -> Any:
    if name in ("KnowledgeBase", "default_embedder"):
        from knowledge import base

        return getattr(base, name)
    raise AttributeError(name)


def _kb(db: Database, embedder: Embedder | None, config: KnowledgeSettings | None) -> KnowledgeBase:
    from knowledge.base import KnowledgeBase
    from knowledge.starter import ensure_starter_documents

    kb = KnowledgeBase(db, embedder, config)
    ensure_starter_documents(kb)
    return kb


def warm(db: Database) -> None:
    """Get the first search's costs out of its way: the retrieval stack imported, the embedder loaded, the starter
    documents indexed when they are missing or stale (in the eval's fresh databases the first search spent 6-7 s
    on this, in a new install the first question about a note)."""
    _kb(db, None, None).search_result("warm up", 1, None, True)


def search_knowledge(
    db: Database,
    query: str,
    k: int | None = None,
    kinds: Sequence[DocumentKind] | None = None,
    hybrid: bool = True,
    *,
    embedder: Embedder | None = None,
    config: KnowledgeSettings | None = None,
) -> SearchResult:
    """Retrieve the best chunks with citations; every hit is marked untrusted (see ``as_untrusted_block``).

    The starter documents (risk policy, strategies, metrics glossary) are indexed first if missing or stale.
    """
    return _kb(db, embedder, config).search_result(query, k, kinds, hybrid)


def add_note(
    db: Database,
    title: str,
    text: str,
    kind: DocumentKind = "note",
    tags: Sequence[str] = (),
    source: str | None = None,
    *,
    metadata: Mapping[str, Any] | None = None,
    embedder: Embedder | None = None,
    config: KnowledgeSettings | None = None,
) -> NoteRef:
    """Store a note; with a ``source`` URI, adding it again updates it."""
    from knowledge.base import KnowledgeBase

    return KnowledgeBase(db, embedder, config).add_note(title, text, kind, tags, source, metadata)


def ingest_path(
    db: Database,
    path: Path | str,
    *,
    kind: DocumentKind | None = None,
    prune: bool = False,
    embedder: Embedder | None = None,
    config: KnowledgeSettings | None = None,
) -> IngestReport:
    """Index a file or a folder (recursively); unchanged files are skipped by content hash."""
    from knowledge.base import KnowledgeBase

    return KnowledgeBase(db, embedder, config).ingest_path(path, kind=kind, prune=prune)


def journal_entry(
    db: Database,
    kind: JournalKind,
    subject_id: str | int,
    title: str,
    body: str,
    metadata: Mapping[str, Any] | None = None,
    *,
    embedder: Embedder | None = None,
    config: KnowledgeSettings | None = None,
) -> int:
    """Journal a backtest, study, approval decision or fill as a ``journal`` note; the note's id."""
    from knowledge.base import KnowledgeBase

    return KnowledgeBase(db, embedder, config).journal_entry(kind, subject_id, title, body, metadata)


def seed_starter_documents(
    db: Database, *, embedder: Embedder | None = None, config: KnowledgeSettings | None = None
) -> list[DocumentOutcome]:
    """Index (or re-index when changed) the generated starter documents; cheap when nothing changed."""
    from knowledge.base import KnowledgeBase
    from knowledge.starter import ensure_starter_documents

    return ensure_starter_documents(KnowledgeBase(db, embedder, config), force=True)


def prune(db: Database, folder: Path | str) -> list[DocumentOutcome]:
    """Remove documents whose files under ``folder`` are gone (needs no embedder)."""
    from knowledge.base import prune_missing

    return prune_missing(db, folder)


def list_documents(db: Database, kinds: Sequence[DocumentKind] | None = None) -> list[DocumentInfo]:
    """Stored documents with their origin and chunk counts (needs no embedder)."""
    return KnowledgeStore(db).documents(kinds)


def remove_document(db: Database, source: str) -> DocumentInfo:
    """Delete one document by file path or note URI (needs no embedder)."""
    from knowledge.base import remove_source

    return remove_source(db, source)
