"""``KnowledgeBase``: ingestion, incremental re-indexing and hybrid retrieval, on LlamaIndex.

- Readers (``knowledge.loaders``) turn files into ``Document``s; notes and journal entries are ``Document``s too.
- An ``IngestionPipeline`` (``MarkdownNodeParser`` + sized sections + our embedding) with a PostgreSQL docstore
  (``UPSERTS``): a document whose hash is unchanged is skipped before any parsing or embedding.
- ``PgVectorStore`` holds the nodes; ``VectorStoreIndex`` retrievers query it densely and by full text, and a
  ``QueryFusionRetriever`` fuses the two arms (mode ``IQTS_KB_FUSION``, measured by ``iqts bench knowledge``).
- One document is ingested in one PostgreSQL transaction (docstore hash, chunk delete and chunk insert together).

Importing this module imports llama_index.core (several seconds): ``knowledge.service`` imports it lazily.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

from llama_index.core import Settings as LlamaSettings
from llama_index.core import VectorStoreIndex
from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
from llama_index.core.llms import MockLLM
from llama_index.core.retrievers import QueryFusionRetriever
from llama_index.core.retrievers.fusion_retriever import FUSION_MODES
from llama_index.core.schema import (
    Document,
    MetadataMode,
    NodeRelationship,
    NodeWithScore,
    QueryBundle,
    RelatedNodeInfo,
    TextNode,
)
from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters
from pydantic_core import to_jsonable_python

from engine.errors import NotFoundError, ValidationFailedError
from engine.settings import KnowledgeSettings, get_settings
from engine.store.database import Database
from engine.telemetry import get_logger
from knowledge.config import get_knowledge_config
from knowledge.docstore import forget_document, postgres_docstore
from knowledge.embeddings.base import Embedder
from knowledge.embeddings.factory import make_embedder
from knowledge.embeddings.llama import EmbedderEmbedding
from knowledge.errors import IngestError
from knowledge.loaders import check_allowed, iter_files, load_file, source_of
from knowledge.models import (
    DocumentInfo,
    DocumentKind,
    DocumentOrigin,
    DocumentOutcome,
    Hit,
    IngestReport,
    JournalKind,
    NoteRef,
    SearchResult,
)
from knowledge.parsing import chunking_signature, node_parsers
from knowledge.service_models import JOURNAL_SCHEME, NOTE_SCHEME, URI, NoteInput, SearchQuery, validated
from knowledge.store import KnowledgeStore, StoredChunk
from knowledge.tx import in_transaction, ingest_transaction
from knowledge.vector_store import PgVectorStore

log = get_logger(__name__)

FUSION_CHOICES: Final = ("reciprocal_rerank", "relative_score", "dist_based_score")


def configure_llamaindex_offline() -> None:
    """No LLM and no OpenAI default: LlamaIndex runs offline (MockLLM; embeddings are always passed explicitly)."""
    LlamaSettings.llm = MockLLM()
    LlamaSettings.embed_model = EmbedderEmbedding(factory=lambda: default_embedder(get_knowledge_config()))


configure_llamaindex_offline()


@lru_cache(maxsize=4)
def default_embedder(config: KnowledgeSettings) -> Embedder:
    """The configured embedder, one per process and config (the local model's weights load once)."""
    return make_embedder(config, get_settings())


class _Empty(Exception):
    """The document yields no text: roll its transaction back."""


_ARMS: Final = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kb-arm")
"""Runs the retrieval arms side by side (the database work of each overlaps; psycopg waits without the GIL)."""


class ArmFusionRetriever(QueryFusionRetriever):
    """``QueryFusionRetriever`` over one query (no LLM query generation) that keeps each arm's ranking."""

    arms: dict[int, list[str]]

    def _run_sync_queries(self, queries: list[QueryBundle]) -> dict[tuple[str, int], list[NodeWithScore]]:
        """Both arms at once (each on its own pooled connection: about 10 ms off a search at 100,000 chunks), or
        one after the other inside an open ingestion transaction, whose connection must not be shared."""
        if in_transaction():
            results = super()._run_sync_queries(queries)
        else:
            jobs = [(query, i, retriever) for query in queries for i, retriever in enumerate(self._retrievers)]
            found = list(_ARMS.map(lambda job: job[2].retrieve(job[0]), jobs))
            results = {(query.query_str, i): nodes for (query, i, _), nodes in zip(jobs, found, strict=True)}
        self.arms = {i: [n.node.node_id for n in nodes] for (_, i), nodes in results.items()}
        return results


class KnowledgeBase:
    """Ingestion, incremental re-indexing and hybrid retrieval over one database."""

    def __init__(self, db: Database, embedder: Embedder | None = None, config: KnowledgeSettings | None = None) -> None:
        self.db = db
        self.config = config or get_knowledge_config()
        self.embedder = embedder or default_embedder(self.config)
        self.embed_model = EmbedderEmbedding(self.embedder)
        self.store = KnowledgeStore(db)
        self.vector_store = PgVectorStore(
            db,
            self.embedder.name,
            ef_search=self.config.hnsw_ef_search,
            rrf_k=self.config.rrf_k,
            text_budget=self.config.text_match_budget,
        )
        self.docstore = postgres_docstore(db)
        self.chunking = chunking_signature(self.config.chunk_max_tokens, self.config.chunk_overlap_tokens)
        self.index = VectorStoreIndex.from_vector_store(self.vector_store, embed_model=self.embed_model)

    # ---------------------------------------------------------------- ingestion

    def _pipeline(self) -> IngestionPipeline:
        return IngestionPipeline(
            transformations=[
                *node_parsers(self.config.chunk_max_tokens, self.config.chunk_overlap_tokens),
                self.embed_model,
            ],
            vector_store=self.vector_store,
            docstore=self.docstore,
            docstore_strategy=DocstoreStrategy.UPSERTS,
            disable_cache=True,
        )

    def _stamp(self, document: Document) -> Document:
        """Embedding model and chunking in the document's metadata: a change of either changes its hash."""
        document.metadata["embedding_model"] = self.embedder.name
        document.metadata["chunking"] = self.chunking
        document.excluded_embed_metadata_keys = [k for k in document.metadata if k != "title"]
        document.excluded_llm_metadata_keys = [k for k in document.metadata if k != "title"]
        return document

    def ingest_document(self, document: Document) -> tuple[str, int]:
        """Index one ``Document`` in one transaction: ``(status, chunks)``, status added/updated/unchanged/removed.

        Unchanged (same hash in the docstore) costs one or two queries and no parsing or embedding. A document with
        no text left is removed if it was stored (else ``IngestError``). Nothing is half-written: a failure rolls
        the whole document back.
        """
        document = self._stamp(document)
        source = document.id_
        state = self.store.state(source)
        if state is not None and self.docstore.get_document_hash(source) == document.hash:
            return "unchanged", 0
        try:
            with ingest_transaction(self.db, lock_key=f"kb:{source}"):
                if state is None:
                    forget_document(self.db, source)  # a hash without a stored document must not skip it
                nodes = self._pipeline().run(documents=[document], store_doc_text=False)
                if not nodes:
                    if state is None:
                        raise _Empty
                    self.store.delete(source)
                    forget_document(self.db, source)
                    return "removed", 0
        except _Empty:
            raise IngestError(f"{source}: no text to index") from None
        return ("added" if state is None else "updated"), len(nodes)

    def ingest_path(self, path: Path | str, *, kind: DocumentKind | None = None, prune: bool = False) -> IngestReport:
        """Index one file or every supported file under a folder; unchanged files cost a hash, nothing more.

        With ``prune``, documents stored from inside the folder whose files are gone are removed too.
        """
        started = time.perf_counter()
        root = Path(path).expanduser()
        if not root.exists():
            raise IngestError(f"no such file or folder: {root}")
        root = check_allowed(root, self.config)
        if root.is_file() and root.suffix.lower() not in {s.lower() for s in self.config.file_suffixes}:
            raise IngestError(f"{root.name}: unsupported file type (supported: {', '.join(self.config.file_suffixes)})")
        outcomes: list[DocumentOutcome] = []
        embedded = 0
        for file in iter_files(root, self.config):
            try:
                check_allowed(file, self.config)  # a symbolic link inside may point outside
                outcome = self._ingest_file(file, kind)
            except IngestError as error:
                if root.is_file():
                    raise
                outcome = DocumentOutcome(source=source_of(file), status="skipped", reason=str(error))
            outcomes.append(outcome)
            embedded += outcome.chunks if outcome.status in ("added", "updated") else 0
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

    def _ingest_file(self, path: Path, kind: DocumentKind | None) -> DocumentOutcome:
        source = source_of(path)
        try:
            document = load_file(path, self.config, kind)
        except IngestError as error:
            if "no text to index" in str(error) or "is empty" in str(error):
                info = self.store.state(source)
                if info is not None:  # the file has no text any more: its document goes
                    self.remove(source)
                    return DocumentOutcome(source=source, status="removed", reason="the file has no text any more")
            raise
        status, chunks = self.ingest_document(document)
        title = str(document.metadata["title"])
        return DocumentOutcome(
            source=source,
            title=title,
            kind=document.metadata["kind"],
            status=status,
            chunks=chunks,  # type: ignore[arg-type]
        )

    def prune(self, folder: Path | str) -> list[DocumentOutcome]:
        """Remove the documents stored from files under ``folder`` that no longer exist."""
        return prune_missing(self.db, folder)

    # ---------------------------------------------------------------- notes and the journal

    def add_note(
        self,
        title: str,
        text: str,
        kind: DocumentKind = "note",
        tags: Sequence[str] = (),
        source: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        origin: DocumentOrigin | None = None,
    ) -> NoteRef:
        """Store a note (Markdown allowed). With ``source`` (a URI), adding again replaces that note in place."""
        note: NoteInput = validated(
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
        resolved_origin = origin or ("journal" if uri.startswith(f"{JOURNAL_SCHEME}://") else "note")
        document = Document(
            id_=uri,
            text=note.text,
            metadata={
                "title": note.title,
                "kind": note.kind,
                "origin": resolved_origin,
                "content_hash": digest,
                "document": {**note.metadata, "tags": list(note.tags), "format": "note"},
            },
        )
        try:
            status, chunks = self.ingest_document(document)
        except IngestError:
            raise ValidationFailedError("the note has no text to index") from None
        state = self.store.state(uri)
        if state is None:
            raise ValidationFailedError("the note has no text to index")
        if status == "unchanged":
            chunks = len(self.store.chunks_of(uri))
        log.info("kb.note", source=uri, kind=note.kind, status=status, chunks=chunks)
        return NoteRef(
            id=state.id,
            source=uri,
            title=note.title,
            kind=note.kind,
            status="unchanged" if status == "unchanged" else ("added" if status == "added" else "updated"),
            chunks=chunks,
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

    def _filters(self, kinds: Sequence[str] | None) -> MetadataFilters | None:
        if not kinds:
            return None
        return MetadataFilters(filters=[MetadataFilter(key="kind", value=list(kinds), operator=FilterOperator.IN)])

    def retrieve(
        self,
        query: str,
        k: int,
        kinds: Sequence[str] | None = None,
        *,
        hybrid: bool = True,
        fusion: str | None = None,
        embedding: list[float] | None = None,
    ) -> tuple[list[NodeWithScore], dict[int, list[str]]]:
        """LlamaIndex retrieval: dense only, or dense + full text fused (``fusion``: a QueryFusionRetriever mode, or
        ``store_rrf`` for the store's own hybrid mode); the nodes and each arm's ranking of node ids. ``embedding``:
        the query's, when the caller has it already."""
        if embedding is None:
            embedding = self.embed_model.get_query_embedding(query)
        bundle = QueryBundle(query_str=query, embedding=embedding)
        filters = self._filters(kinds)
        pool = max(self.config.candidates_per_arm, k)
        if not hybrid:
            dense = self.index.as_retriever(similarity_top_k=k, filters=filters)
            nodes = dense.retrieve(bundle)
            return nodes, {0: [n.node.node_id for n in nodes]}
        mode = fusion or self.config.fusion
        if mode == "store_rrf":
            retriever = self.index.as_retriever(
                similarity_top_k=k, sparse_top_k=pool, vector_store_query_mode="hybrid", filters=filters
            )
            return retriever.retrieve(bundle), {}
        if mode not in FUSION_CHOICES:
            raise ValidationFailedError(f"unknown fusion mode {mode!r} (one of: {', '.join(FUSION_CHOICES)})")
        fused = ArmFusionRetriever(
            [
                self.index.as_retriever(similarity_top_k=pool, filters=filters),
                self.index.as_retriever(similarity_top_k=pool, vector_store_query_mode="text_search", filters=filters),
            ],
            llm=MockLLM(),
            mode=FUSION_MODES(mode),
            similarity_top_k=k,
            num_queries=1,
            use_async=False,
        )
        nodes = fused.retrieve(bundle)
        return nodes, fused.arms

    def search(
        self,
        query: str,
        k: int | None = None,
        kinds: Sequence[DocumentKind] | None = None,
        hybrid: bool = True,
        *,
        fusion: str | None = None,
    ) -> list[Hit]:
        """The ``k`` best chunks for ``query``: the dense (HNSW) and full-text arms fused (``hybrid``), or the dense
        arm alone. Every hit carries its citation (document, section, score) and is marked untrusted.
        """
        request: SearchQuery = validated(
            SearchQuery,
            query=query,
            k=self.config.default_k if k is None else k,
            kinds=tuple(kinds) if kinds else None,
            hybrid=hybrid,
        )
        if request.k > self.config.max_k:
            raise ValidationFailedError(f"k must be at most {self.config.max_k}")
        embedding = self.embed_model.get_query_embedding(request.query)  # once: the retrieval and the explanation
        nodes, arms = self.retrieve(
            request.query, request.k, request.kinds, hybrid=request.hybrid, fusion=fusion, embedding=embedding
        )
        ranks = {arm: {node_id: rank for rank, node_id in enumerate(ids, start=1)} for arm, ids in arms.items()}
        chunk_ids = [int(n.node.metadata["chunk_id"]) for n in nodes]
        components = self.vector_store.component_scores(chunk_ids, embedding, request.query)
        hits: list[Hit] = []
        for item in nodes:
            meta = item.node.metadata
            cid = int(meta["chunk_id"])
            vector_score, fts_score = components.get(cid, (0.0, 0.0))
            hits.append(
                Hit(
                    document_id=int(meta["document_id"]),
                    chunk_id=cid,
                    title=str(meta["title"]),
                    source=str(meta["source"]),
                    kind=meta["kind"],
                    section=str(meta.get("section", "")),
                    text=item.node.get_content(metadata_mode=MetadataMode.NONE),
                    score=float(item.score or 0.0),
                    vector_score=vector_score,
                    fts_score=fts_score,
                    vector_rank=ranks.get(0, {}).get(item.node.node_id),
                    fts_rank=ranks.get(1, {}).get(item.node.node_id),
                )
            )
        return hits

    def search_result(
        self, query: str, k: int | None = None, kinds: Sequence[DocumentKind] | None = None, hybrid: bool = True
    ) -> SearchResult:
        from knowledge.coverage import content_words, word_coverage

        hits = [
            h.model_copy(update={"matched": word_coverage(query, [f"{h.title} {h.section} {h.text}"])[0]})
            for h in self.search(query, k, kinds, hybrid)
        ]
        found = {w for h in hits for w in h.matched}  # a word is in the passages when it is in one of them
        words = content_words(query)
        matched, unmatched = [w for w in words if w in found], [w for w in words if w not in found]
        return SearchResult(
            query=query,
            k=self.config.default_k if k is None else k,
            kinds=list(kinds) if kinds else None,
            hybrid=hybrid,
            embedder=self.embedder.name,
            hits=hits,
            matched=matched,
            unmatched=unmatched,
        )

    # ---------------------------------------------------------------- housekeeping

    def documents(self, kinds: Sequence[DocumentKind] | None = None) -> list[DocumentInfo]:
        return self.store.documents(kinds)

    def remove(self, source: str) -> DocumentInfo:
        """Delete one document by its source: a file path (relative paths are resolved) or a note URI."""
        return remove_source(self.db, source)

    def reembed_stale(self) -> int:
        """Re-embed, from their stored chunks, documents indexed by another embedder; how many were.

        The chunks are kept as they are; the document's docstore hash is dropped, so the next add of the file
        re-indexes it (with the current chunking) once.
        """
        count = 0
        for info in self.store.documents():
            state = self.store.state(info.source)
            if state is None or info.embedding_model == self.embedder.name:
                continue
            chunks: list[StoredChunk] = self.store.chunks_of(info.source)
            nodes = [
                TextNode(
                    text=chunk.text,
                    metadata={
                        "title": info.title,
                        "section": chunk.section,
                        "kind": info.kind,
                        "origin": info.origin,
                        "content_hash": info.content_hash,
                        "chunking": state.chunking,
                        "document": info.metadata,
                    },
                    excluded_embed_metadata_keys=["kind", "origin", "content_hash", "chunking", "document"],
                    metadata_template="{value}",
                    metadata_separator="\n",
                )
                for chunk in chunks
            ]
            for node in nodes:
                node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=info.source)
            embedded = self.embed_model(nodes)
            with ingest_transaction(self.db, lock_key=f"kb:{info.source}"):
                self.vector_store.add(embedded)
                forget_document(self.db, info.source)
            count += 1
        return count


def prune_missing(db: Database, folder: Path | str) -> list[DocumentOutcome]:
    """Remove the documents stored from files under ``folder`` that no longer exist (or are no longer files)."""
    store = KnowledgeStore(db)
    removed: list[DocumentOutcome] = []
    for source in store.sources_under(source_of(Path(folder))):
        if Path(source).is_file():
            continue
        with ingest_transaction(db, lock_key=f"kb:{source}"):
            info = store.delete(source)
            forget_document(db, source)
        if info is not None:
            removed.append(
                DocumentOutcome(
                    source=source, title=info.title, kind=info.kind, status="removed", reason="file is gone"
                )
            )
    return removed


def remove_source(db: Database, source: str) -> DocumentInfo:
    """Delete one document by file path (absolute or relative to the working directory) or note URI."""
    store = KnowledgeStore(db)
    candidates = [source] if URI.match(source) else [source_of(Path(source)), source]
    for candidate in dict.fromkeys(candidates):
        with ingest_transaction(db, lock_key=f"kb:{candidate}"):
            info = store.delete(candidate)
            if info is not None:
                forget_document(db, candidate)
        if info is not None:
            return info
    raise NotFoundError(f"no document with source {source!r}; see `iqts kb list`")
