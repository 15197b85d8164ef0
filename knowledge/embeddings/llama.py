"""Our embedders (the bundled MiniLM in numpy, or an OpenAI-compatible endpoint) as a LlamaIndex ``BaseEmbedding``.

No torch and no download: the wrapped ``Embedder`` does the work. The last few query vectors are cached, so the
dense and the full-text retrievers of one hybrid search (and a repeated query) embed the query once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

from knowledge.embeddings.base import Embedder

_QUERY_CACHE_SIZE = 64


class EmbedderEmbedding(BaseEmbedding):
    """LlamaIndex's embedding interface over an ``Embedder`` (created on first use when given a factory)."""

    _embedder: Embedder | None = PrivateAttr(default=None)
    _factory: Callable[[], Embedder] | None = PrivateAttr(default=None)
    _queries: OrderedDict[str, list[float]] = PrivateAttr(default_factory=OrderedDict)

    def __init__(
        self, embedder: Embedder | None = None, *, factory: Callable[[], Embedder] | None = None, name: str = ""
    ) -> None:
        if embedder is None and factory is None:
            raise ValueError("give an embedder or a factory")
        super().__init__(model_name=embedder.name if embedder is not None else name, embed_batch_size=64)
        self._embedder = embedder
        self._factory = factory

    @classmethod
    def class_name(cls) -> str:
        return "IQTSEmbedderEmbedding"

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            assert self._factory is not None
            self._embedder = self._factory()
            self.model_name = self._embedder.name
        return self._embedder

    def _get_query_embedding(self, query: str) -> list[float]:
        cached = self._queries.get(query)
        if cached is not None:
            self._queries.move_to_end(query)
            return cached
        vector = [float(x) for x in self.embedder.embed([query])[0]]
        self._queries[query] = vector
        if len(self._queries) > _QUERY_CACHE_SIZE:
            self._queries.popitem(last=False)
        return vector

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embedding(text)

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return [[float(x) for x in row] for row in self.embedder.embed(texts)]
