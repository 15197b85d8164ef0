"""``PgVectorStore``: a LlamaIndex ``BasePydanticVectorStore`` over our own tables and psycopg 3 pool.

``VectorStoreIndex``, its retrievers and ``QueryFusionRetriever`` run on it. Query modes: ``default`` (pgvector
HNSW, cosine), ``text_search``/``sparse`` (PostgreSQL full text, ``websearch_to_tsquery``), ``hybrid`` (both arms
fused by reciprocal rank in the store). The SQL lives in ``knowledge.store`` (the tables' owner).

Why not llama-index-vector-stores-postgres: it drives psycopg2 + asyncpg through SQLAlchemy (two more drivers next
to our psycopg 3 pool), its HNSW settings path fails on psycopg 3, and its writes cannot share the transaction in
which the docstore records a document's hash, so a failed ingestion could leave a hash without chunks. The SQL is
small; owning it keeps one driver, one pool and one transaction per document.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.schema import BaseNode, MetadataMode, NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    FilterOperator,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from pydantic import PrivateAttr

from engine.store.database import Database
from knowledge import store

DOCUMENT_KEYS = ("title", "kind", "origin", "content_hash", "chunking", "embedding_model", "document")
"""Node metadata that describes the node's document (written to kb_documents, not repeated per chunk)."""


def kinds_of(filters: MetadataFilters | None) -> list[str] | None:
    """The ``kind`` filter (``==`` or ``in``): the only metadata filter this store applies (inside the scan)."""
    if filters is None or not filters.filters:
        return None
    kinds: list[str] = []
    for item in filters.filters:
        if isinstance(item, MetadataFilters) or item.key != "kind":
            raise NotImplementedError("PgVectorStore filters on `kind` only")
        if item.operator == FilterOperator.IN and isinstance(item.value, list):
            kinds.extend(str(v) for v in item.value)
        elif item.operator == FilterOperator.EQ:
            kinds.append(str(item.value))
        else:
            raise NotImplementedError(f"PgVectorStore: unsupported operator {item.operator} on `kind`")
    return kinds


class PgVectorStore(BasePydanticVectorStore):
    """LlamaIndex vector store over ``kb_documents`` / ``kb_chunks`` (pgvector HNSW + PostgreSQL full text).

    A node's ``ref_doc_id`` is its document's source (a resolved file path or a note URI). ``add`` writes each
    document's nodes together: it upserts the document row from the nodes' document metadata and replaces the
    document's chunks. Vectors of other embedding models are never compared: every query filters on
    ``embedding_model``.
    """

    stores_text: bool = True
    is_embedding_query: bool = True
    flat_metadata: bool = False

    embedding_model: str
    ef_search: int = 80
    rrf_k: int = 60
    text_budget: int = 0

    _db: Database = PrivateAttr()

    def __init__(
        self, db: Database, embedding_model: str, *, ef_search: int = 80, rrf_k: int = 60, text_budget: int = 0
    ) -> None:
        super().__init__(
            stores_text=True, embedding_model=embedding_model, ef_search=ef_search, rrf_k=rrf_k, text_budget=text_budget
        )
        self._db = db

    @classmethod
    def class_name(cls) -> str:
        return "IQTSPgVectorStore"

    @property
    def client(self) -> Database:
        return self._db

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        by_doc: dict[str, list[BaseNode]] = {}
        for node in nodes:
            if node.embedding is None:
                raise ValueError(f"node {node.node_id} has no embedding")
            by_doc.setdefault(node.ref_doc_id or node.node_id, []).append(node)
        with store.prepared(self._db) as conn:
            for source, doc_nodes in by_doc.items():
                head = doc_nodes[0].metadata
                store.write_document(
                    conn,
                    source=source,
                    title=str(head.get("title") or source),
                    kind=str(head.get("kind") or "note"),
                    origin=str(head.get("origin") or "file"),
                    content_hash=str(head.get("content_hash") or ""),
                    embedding_model=self.embedding_model,
                    chunking=str(head.get("chunking") or ""),
                    metadata=dict(head.get("document") or {}),
                    chunks=[
                        store.ChunkWrite(
                            node_id=node.node_id,
                            section=str(node.metadata.get("section", "")),
                            text=node.get_content(metadata_mode=MetadataMode.NONE),
                            embedding=node.embedding or [],
                            metadata={k: v for k, v in node.metadata.items() if k not in DOCUMENT_KEYS},
                        )
                        for node in doc_nodes
                    ],
                )
        return [node.node_id for node in nodes]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Remove the document's nodes (the document row keeps its id for the write that follows)."""
        with store.prepared(self._db) as conn:
            store.delete_chunks(conn, ref_doc_id)

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        kinds = kinds_of(query.filters)
        limit = max(1, query.similarity_top_k)
        mode = query.mode
        with store.prepared(self._db) as conn:
            if mode == VectorStoreQueryMode.DEFAULT:
                scored = [(cid, 1.0 - dist) for cid, dist in self._dense(conn, query, kinds, limit)]
            elif mode in (VectorStoreQueryMode.TEXT_SEARCH, VectorStoreQueryMode.SPARSE):
                scored = self._text(conn, query, kinds, query.sparse_top_k or limit)
            elif mode == VectorStoreQueryMode.HYBRID:
                pool = max(limit, query.sparse_top_k or 0)
                dense = [cid for cid, _ in self._dense(conn, query, kinds, pool)]
                text = [cid for cid, _ in self._text(conn, query, kinds, pool)]
                fused: dict[int, float] = {}
                for ranking in (dense, text):
                    for rank, cid in enumerate(ranking, start=1):
                        fused[cid] = fused.get(cid, 0.0) + 1.0 / (self.rrf_k + rank)
                scored = sorted(fused.items(), key=lambda item: (-item[1], item[0]))[: query.hybrid_top_k or limit]
            else:
                raise NotImplementedError(f"PgVectorStore does not support query mode {mode}")
            rows = store.chunk_rows(conn, [cid for cid, _ in scored])
        kept = [(to_node(rows[cid]), score) for cid, score in scored if cid in rows]  # replaced meanwhile: left out
        return VectorStoreQueryResult(
            nodes=[node for node, _ in kept],
            similarities=[score for _, score in kept],
            ids=[node.node_id for node, _ in kept],
        )

    def _dense(
        self, conn: Any, query: VectorStoreQuery, kinds: list[str] | None, limit: int
    ) -> list[tuple[int, float]]:
        if query.query_embedding is None:
            raise ValueError("a vector query needs the query's embedding")
        return store.vector_arm(
            conn, query.query_embedding, model=self.embedding_model, kinds=kinds, limit=limit, ef_search=self.ef_search
        )

    def _text(self, conn: Any, query: VectorStoreQuery, kinds: list[str] | None, limit: int) -> list[tuple[int, float]]:
        return store.text_arm(
            conn, query.query_str or "", model=self.embedding_model, kinds=kinds, limit=limit, budget=self.text_budget
        )

    def component_scores(
        self, chunk_ids: Sequence[int], embedding: Sequence[float], text: str
    ) -> dict[int, tuple[float, float]]:
        with store.prepared(self._db) as conn:
            return store.component_scores(conn, chunk_ids, embedding, text)


def to_node(row: store.ChunkRow) -> TextNode:
    """A stored chunk as a LlamaIndex node: its document is the node's source (``ref_doc_id``)."""
    node = TextNode(
        id_=row.node_id,
        text=row.text,
        metadata={
            **row.metadata,
            "chunk_id": row.chunk_id,
            "document_id": row.document_id,
            "source": row.source,
            "title": row.title,
            "kind": row.kind,
            "section": row.section,
            "ord": row.ord,
        },
    )
    node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=row.source)
    return node
