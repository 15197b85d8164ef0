"""Choose the embedder from ``KnowledgeSettings``: ``local`` (bundled MiniLM, numpy) or ``openai-compatible``."""

from __future__ import annotations

import httpx

from engine.settings import KnowledgeSettings, Settings
from knowledge.config import EMBEDDING_DIM
from knowledge.embeddings.base import Embedder
from knowledge.errors import EmbeddingError


def make_embedder(
    config: KnowledgeSettings, settings: Settings | None = None, *, transport: httpx.BaseTransport | None = None
) -> Embedder:
    """The configured embedder, checked to produce ``EMBEDDING_DIM``-wide vectors (the width of the store)."""
    embedder: Embedder
    if config.embedder == "local":
        from knowledge.embeddings.minilm import local_embedder

        embedder = local_embedder(None, config.local_max_seq_length, config.local_batch_size)
    else:
        from knowledge.embeddings.remote import OpenAICompatibleEmbedder

        api_key = config.remote_api_key or (settings.openai_api_key if settings is not None else None)
        embedder = OpenAICompatibleEmbedder(
            base_url=config.remote_base_url,
            model=config.remote_model,
            dim=EMBEDDING_DIM,
            api_key=api_key,
            send_dimensions=config.remote_send_dimensions,
            batch_size=config.remote_batch_size,
            timeout_s=config.remote_timeout_s,
            transport=transport,
        )
    if embedder.dim != EMBEDDING_DIM:
        raise EmbeddingError(
            f"embedder {embedder.name} gives {embedder.dim}-d vectors; the store holds {EMBEDDING_DIM}"
        )
    return embedder
