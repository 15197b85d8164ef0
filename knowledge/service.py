"""The knowledge base: ingest files and notes, keep them indexed by content hash, retrieve with citations.

``KnowledgeBase`` holds the database, the embedder and the config. The module-level functions are the service
calls of the MCP tools and the CLI (``search_knowledge``, ``add_note``, ``ingest_path``, ``journal_entry``, ...);
each builds a ``KnowledgeBase`` on the process-wide embedder (the model loads once per process).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator
from pydantic_core import to_jsonable_python

from engine.errors import NotFoundError, ValidationFailedError
from engine.settings import KnowledgeSettings, get_settings
from engine.store.database import Database
from engine.telemetry import get_logger
from knowledge.chunking import chunk_markdown, chunking_signature
from knowledge.config import get_knowledge_config
from knowledge.embeddings.base import Embedder, Vectors
from knowledge.embeddings.factory import make_embedder
from knowledge.errors import IngestError
from knowledge.loaders import ParsedDocument, iter_files, parse_file, read_bytes, source_of
from knowledge.models import (
    Chunk,
    DocumentInfo,
    DocumentKind,
    DocumentOutcome,
    Hit,
    IngestReport,
    JournalKind,
    NoteRef,
    SearchResult,
)
from knowledge.search import is_plain_query, loosen, reciprocal_rank_fusion
from knowledge.store import KnowledgeStore

log = get_logger(__name__)

NOTE_SCHEME: Final = "note"
JOURNAL_SCHEME: Final = "journal"
_URI = re.compile(r"^[a-z][a-z0-9+.-]*://\S+$")
_MAX_QUERY_CHARS: Final = 2000
_MAX_TITLE_CHARS: Final = 300


class NoteInput(BaseModel):
    """A note as given by a caller (an MCP client, the journal, a script): validated before anything is stored."""

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    title: str = Field(min_length=1, max_length=_MAX_TITLE_CHARS)
    text: str = Field(min_length=1)
    kind: DocumentKind = "note"
    tags: tuple[str, ...] = ()
    source: str | None = Field(None, description="a URI naming the note; adding the same URI again updates it")
    metadata: dict[str, JsonValue] = Field(default_factory=dict)

    @field_validator("source")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        if value is not None and not _URI.match(value):
            raise ValueError("must be a URI such as note://my-idea or https://example.org/post (files use paths)")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(tag.strip() for tag in value if tag.strip()))


class SearchQuery(BaseModel):
    """A retrieval request, validated."""

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    query: str = Field(min_length=1, max_length=_MAX_QUERY_CHARS)
    k: int = Field(ge=1)
    kinds: tuple[DocumentKind, ...] | None = None
    hybrid: bool = True


def _validated(model: type[BaseModel], **values: Any) -> Any:
    try:
        return model.model_validate(values)
    except ValidationError as error:
        details = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in error.errors())
        raise ValidationFailedError(f"invalid {model.__name__}: {details}") from None


def embedding_input(title: str, chunk: Chunk) -> str:
    """What is embedded for a chunk: its document title and heading path, then its text (context helps recall)."""
    head = chunk.section if chunk.section.startswith(title) else " > ".join(p for p in (title, chunk.section) if p)
    return f"{head}\n\n{chunk.text}"


@lru_cache(maxsize=4)
def default_embedder(config: KnowledgeSettings) -> Embedder:
    """The configured embedder, one per process and config (the local model's weights load once)."""
    return make_embedder(config, get_settings())


class KnowledgeBase:
    """Ingestion, incremental re-indexing and hybrid retrieval over one database."""

    def __init__(self, db: Database, embedder: Embedder | None = None, config: KnowledgeSettings | None = None) -> None:
        self.config = config or get_knowledge_config()
        self.embedder = embedder or default_embedder(self.config)
        self.store = KnowledgeStore(db)
        self.chunking = chunking_signature(self.config.chunk_max_tokens, self.config.chunk_overlap_tokens)

    # ---------------------------------------------------------------- ingestion

    def ingest_path(self, path: Path | str, *, kind: DocumentKind | None = None, prune: bool = False) -> IngestReport:
        """Index one file or every supported file under a folder; unchanged files cost a hash, nothing more.

        With ``prune``, documents stored from inside the folder whose files are gone are removed too.
        """
        started = time.perf_counter()
        root = Path(path).expanduser()
        if not root.exists():
            raise IngestError(f"no such file or folder: {root}")
        if root.is_file() and root.suffix.lower() not in {s.lower() for s in self.config.file_suffixes}:
            raise IngestError(f"{root.name}: unsupported file type (supported: {', '.join(self.config.file_suffixes)})")
        outcomes: list[DocumentOutcome] = []
        embedded = 0
        for file in iter_files(root, self.config):
            try:
                outcome, count = self._ingest_file(file, kind)
            except IngestError as error:
                if root.is_file():
                    raise
                outcome, count = DocumentOutcome(source=source_of(file), status="skipped", reason=str(error)), 0
            outcomes.append(outcome)
            embedded += count
        if prune and root.is_dir():
            outcomes.extend(self.prune(root))
        report = IngestReport(
            path=source_of(root), documents=outcomes, chunks_embedded=embedded, seconds=time.perf_counter() - started
        )
        log.info(
            "kb.ingested",
            path=report.path,
            added=report.added,
            updated=report.updated,
            unchanged=report.unchanged,
            skipped=report.skipped,
            removed=report.removed,
            chunks_embedded=embedded,
        )
        return report

    def _ingest_file(self, path: Path, kind: DocumentKind | None) -> tuple[DocumentOutcome, int]:
        data = read_bytes(path, self.config)
        source = source_of(path)
        state = self.store.state(source)
        digest = hashlib.sha256(data).hexdigest()
        if (
            state is not None
            and self._current(state.content_hash, state.embedding_model, state.chunking, digest)
            and kind in (None, state.kind)
        ):
            return DocumentOutcome(source=source, title=state.title, kind=state.kind, status="unchanged"), 0
        parsed = parse_file(path, data, self.config, kind)
        if not parsed.chunks:
            if state is not None:
                self.store.delete(source)
                return DocumentOutcome(source=source, status="removed", reason="the file has no text any more"), 0
            return DocumentOutcome(source=source, title=parsed.title, status="skipped", reason="no text to index"), 0
        self._write(parsed)
        status = "added" if state is None else "updated"
        return (
            DocumentOutcome(
                source=source, title=parsed.title, kind=parsed.kind, status=status, chunks=len(parsed.chunks)
            ),
            len(parsed.chunks),
        )

    def _current(self, stored_hash: str, stored_model: str, stored_chunking: str, digest: str) -> bool:
        return (stored_hash, stored_model, stored_chunking) == (digest, self.embedder.name, self.chunking)

    def _embed_chunks(self, title: str, chunks: Sequence[Chunk]) -> Vectors:
        return self.embedder.embed([embedding_input(title, chunk) for chunk in chunks])

    def _write(self, parsed: ParsedDocument) -> int:
        vectors = self._embed_chunks(parsed.title, parsed.chunks)
        document_id, _ = self.store.write(
            source=parsed.source,
            title=parsed.title,
            kind=parsed.kind,
            content_hash=parsed.content_hash,
            embedding_model=self.embedder.name,
            chunking=self.chunking,
            metadata=parsed.metadata,
            chunks=parsed.chunks,
            vectors=vectors,
        )
        return document_id

    def prune(self, folder: Path | str) -> list[DocumentOutcome]:
        """Remove the documents stored from files under ``folder`` that no longer exist."""
        return prune_missing(self.store, folder)

    # ---------------------------------------------------------------- notes and the journal

    def add_note(
        self,
        title: str,
        text: str,
        kind: DocumentKind = "note",
        tags: Sequence[str] = (),
        source: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> NoteRef:
        """Store a note (Markdown allowed). With ``source`` (a URI), adding again replaces that note in place."""
        note: NoteInput = _validated(
            NoteInput,
            title=title,
            text=text,
            kind=kind,
            tags=tuple(tags),
            source=source,
            metadata=to_jsonable_python(dict(metadata or {}), fallback=str),
        )
        uri = note.source or f"{NOTE_SCHEME}://{uuid.uuid4().hex}"
        digest = hashlib.sha256(
            json.dumps(
                {"title": note.title, "text": note.text, "kind": note.kind, "tags": note.tags, "meta": note.metadata},
                sort_keys=True,
            ).encode()
        ).hexdigest()
        state = self.store.state(uri)
        chunks = chunk_markdown(note.text, self.config.chunk_max_tokens, self.config.chunk_overlap_tokens)
        if state is not None and self._current(state.content_hash, state.embedding_model, state.chunking, digest):
            return NoteRef(
                id=state.id, source=uri, title=note.title, kind=note.kind, status="unchanged", chunks=len(chunks)
            )
        if not chunks:
            raise ValidationFailedError("the note has no text to index")
        metadata_out: dict[str, Any] = {**note.metadata, "tags": list(note.tags), "format": "note"}
        document_id = self._write(
            ParsedDocument(
                source=uri, title=note.title, kind=note.kind, content_hash=digest, chunks=chunks, metadata=metadata_out
            )
        )
        log.info("kb.note", source=uri, kind=note.kind, chunks=len(chunks))
        return NoteRef(
            id=document_id,
            source=uri,
            title=note.title,
            kind=note.kind,
            status="added" if state is None else "updated",
            chunks=len(chunks),
        )

    def journal_entry(
        self,
        kind: JournalKind,
        subject_id: str | int,
        title: str,
        body: str,
        metadata: Mapping[str, Any] | None = None,
    ) -> int:
        """A trade-journal note (kind ``journal``) about a backtest, study, approval decision or fill; its id.

        One note per subject: journaling the same ``(kind, subject_id)`` again updates it. Scalar metadata is also
        written into the text as a details list, so figures such as a Sharpe ratio or a fill price are searchable.
        """
        if kind not in ("backtest", "study", "approval", "fill"):
            raise ValidationFailedError(f"unknown journal kind {kind!r}")
        subject = str(subject_id).strip()
        if not subject:
            raise ValidationFailedError("a journal entry needs a subject id")
        details = to_jsonable_python(dict(metadata or {}), fallback=str)
        text = body.strip()
        if details:
            lines = [
                f"- {key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}"
                for key, value in details.items()
            ]
            text = f"{text}\n\nDetails:\n" + "\n".join(lines)
        ref = self.add_note(
            title,
            text,
            kind="journal",
            tags=("journal", kind),
            source=f"{JOURNAL_SCHEME}://{kind}/{subject}",
            metadata={**details, "journal_kind": kind, "subject_id": subject},
        )
        return ref.id

    # ---------------------------------------------------------------- retrieval

    def search(
        self,
        query: str,
        k: int | None = None,
        kinds: Sequence[DocumentKind] | None = None,
        hybrid: bool = True,
    ) -> list[Hit]:
        """The ``k`` best chunks for ``query``: reciprocal rank fusion of the HNSW vector arm and the full-text arm
        (``hybrid``), or the vector arm alone. Every hit carries its citation and is marked untrusted.
        """
        request: SearchQuery = _validated(
            SearchQuery,
            query=query,
            k=self.config.default_k if k is None else k,
            kinds=tuple(kinds) if kinds else None,
            hybrid=hybrid,
        )
        if request.k > self.config.max_k:
            raise ValidationFailedError(f"k must be at most {self.config.max_k}")
        vector = self.embedder.embed([request.query])[0]
        pool = max(self.config.candidates_per_arm, request.k)
        by_vector = self.store.vector_arm(
            vector,
            model=self.embedder.name,
            kinds=request.kinds,
            limit=pool,
            ef_search=self.config.hnsw_ef_search,
        )
        strict = self.store.tsquery(request.query)
        loose = loosen(strict) if strict and is_plain_query(request.query) else strict
        by_text = (
            self.store.fts_arm(strict, loose, model=self.embedder.name, kinds=request.kinds, limit=pool)
            if request.hybrid and strict
            else []
        )
        vector_rank = {chunk_id: rank for rank, (chunk_id, _) in enumerate(by_vector, start=1)}
        text_rank = {chunk_id: rank for rank, (chunk_id, _) in enumerate(by_text, start=1)}
        if request.hybrid:
            fused = reciprocal_rank_fusion([list(vector_rank), list(text_rank)], self.config.rrf_k)
            never = len(vector_rank) + len(text_rank) + 1
            order = sorted(fused, key=lambda c: (-fused[c], vector_rank.get(c, never), text_rank.get(c, never), c))[
                : request.k
            ]
            scores = {c: fused[c] for c in order}
        else:
            order = [chunk_id for chunk_id, _ in by_vector[: request.k]]
            scores = {chunk_id: 1.0 - distance for chunk_id, distance in by_vector[: request.k]}
        rows = self.store.hit_rows(order, vector, loose)
        return [
            Hit(
                document_id=rows[c].document_id,
                chunk_id=c,
                title=rows[c].title,
                source=rows[c].source,
                kind=rows[c].kind,
                section=rows[c].section,
                text=rows[c].text,
                score=scores[c],
                vector_score=rows[c].vector_score,
                fts_score=rows[c].fts_score,
                vector_rank=vector_rank.get(c),
                fts_rank=text_rank.get(c),
            )
            for c in order
            if c in rows  # a chunk replaced between the two queries is simply left out
        ]

    def search_result(
        self, query: str, k: int | None = None, kinds: Sequence[DocumentKind] | None = None, hybrid: bool = True
    ) -> SearchResult:
        hits = self.search(query, k, kinds, hybrid)
        return SearchResult(
            query=query,
            k=self.config.default_k if k is None else k,
            kinds=list(kinds) if kinds else None,
            hybrid=hybrid,
            embedder=self.embedder.name,
            hits=hits,
        )

    # ---------------------------------------------------------------- housekeeping

    def documents(self, kinds: Sequence[DocumentKind] | None = None) -> list[DocumentInfo]:
        return self.store.documents(kinds)

    def remove(self, source: str) -> DocumentInfo:
        """Delete one document by its source: a file path (relative paths are resolved) or a note URI."""
        return remove_source(self.store, source)

    def reembed_stale(self) -> int:
        """Re-embed, from their stored chunks, documents indexed by another embedder; how many were.

        The chunks are kept as they are (with their recorded chunking), so a later ``ingest_path`` of a file whose
        chunking settings changed still re-chunks it.
        """
        count = 0
        for info in self.store.documents():
            state = self.store.state(info.source)
            if state is None or info.embedding_model == self.embedder.name:
                continue
            chunks = self.store.chunks_of(info.source)
            self.store.write(
                source=info.source,
                title=info.title,
                kind=info.kind,
                content_hash=info.content_hash,
                embedding_model=self.embedder.name,
                chunking=state.chunking,
                metadata=info.metadata,
                chunks=chunks,
                vectors=self._embed_chunks(info.title, chunks),
            )
            count += 1
        return count


def prune_missing(store: KnowledgeStore, folder: Path | str) -> list[DocumentOutcome]:
    """Remove the documents stored from files under ``folder`` that no longer exist (or are no longer files)."""
    removed: list[DocumentOutcome] = []
    for source in store.sources_under(source_of(Path(folder))):
        if Path(source).is_file():
            continue
        info = store.delete(source)
        if info is not None:
            removed.append(
                DocumentOutcome(
                    source=source, title=info.title, kind=info.kind, status="removed", reason="file is gone"
                )
            )
    return removed


def remove_source(store: KnowledgeStore, source: str) -> DocumentInfo:
    """Delete one document by file path (absolute or relative to the working directory) or note URI."""
    candidates = [source] if _URI.match(source) else [source_of(Path(source)), source]
    for candidate in dict.fromkeys(candidates):
        info = store.delete(candidate)
        if info is not None:
            return info
    raise NotFoundError(f"no document with source {source!r}; see `iqts kb list`")


# -------------------------------------------------------------------- service functions (MCP tools, CLI)


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
    """Retrieve the best chunks with citations; every hit is marked untrusted (see ``as_untrusted_block``)."""
    return KnowledgeBase(db, embedder, config).search_result(query, k, kinds, hybrid)


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
    return KnowledgeBase(db, embedder, config).journal_entry(kind, subject_id, title, body, metadata)


def prune(db: Database, folder: Path | str) -> list[DocumentOutcome]:
    """Remove documents whose files under ``folder`` are gone (needs no embedder)."""
    return prune_missing(KnowledgeStore(db), folder)


def list_documents(db: Database, kinds: Sequence[DocumentKind] | None = None) -> list[DocumentInfo]:
    """Stored documents with their chunk counts (needs no embedder)."""
    return KnowledgeStore(db).documents(kinds)


def remove_document(db: Database, source: str) -> DocumentInfo:
    """Delete one document by file path or note URI (needs no embedder)."""
    return remove_source(KnowledgeStore(db), source)
