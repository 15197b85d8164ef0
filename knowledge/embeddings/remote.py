"""Embeddings from any OpenAI-compatible ``POST {base_url}/embeddings`` endpoint (OpenAI, Ollama, vLLM, LiteLLM)."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import numpy as np
from pydantic import BaseModel, SecretStr, ValidationError

from knowledge.embeddings.base import Vectors, l2_normalise
from knowledge.errors import EmbeddingError


class _Item(BaseModel):
    index: int
    embedding: list[float]


class _Response(BaseModel):
    data: list[_Item]


class OpenAICompatibleEmbedder:
    """Batched calls to an OpenAI-style embeddings endpoint; vectors are checked for width and L2-normalised.

    ``transport`` lets tests (and air-gapped deployments) supply an ``httpx`` transport; the API key is sent as a
    bearer token and never appears in an error message.
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        dim: int,
        api_key: SecretStr | None = None,
        send_dimensions: bool = True,
        batch_size: int = 64,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._url = base_url.rstrip("/") + "/embeddings"
        self._model = model
        self._dim = dim
        self._send_dimensions = send_dimensions
        self._batch_size = batch_size
        headers = {"Accept": "application/json"}
        if api_key is not None and api_key.get_secret_value():
            headers["Authorization"] = f"Bearer {api_key.get_secret_value()}"
        self._client = httpx.Client(headers=headers, timeout=timeout_s, transport=transport)

    @property
    def name(self) -> str:
        return f"openai-compatible:{self._model}"

    @property
    def dim(self) -> int:
        return self._dim

    def close(self) -> None:
        self._client.close()

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        rows: list[Vectors] = []
        for start in range(0, len(texts), self._batch_size):
            rows.append(self._embed_batch(list(texts[start : start + self._batch_size])))
        return np.concatenate(rows, axis=0)

    def _embed_batch(self, batch: list[str]) -> Vectors:
        body: dict[str, object] = {"model": self._model, "input": batch, "encoding_format": "float"}
        if self._send_dimensions:
            body["dimensions"] = self._dim
        where = f"the embeddings endpoint {self._url}"
        try:
            response = self._client.post(self._url, json=body)
        except httpx.HTTPError as error:
            raise EmbeddingError(f"{where} is not answering: {type(error).__name__}") from None
        if response.status_code != httpx.codes.OK:
            raise EmbeddingError(f"{where} answered HTTP {response.status_code}: {_short(response.text)}")
        try:
            parsed = _Response.model_validate_json(response.content)
        except ValidationError:
            raise EmbeddingError(f"{where} returned a malformed response") from None
        items = sorted(parsed.data, key=lambda item: item.index)
        if [item.index for item in items] != list(range(len(batch))):
            raise EmbeddingError(f"{where} returned {len(items)} vectors for {len(batch)} texts")
        widths = {len(item.embedding) for item in items}
        if widths != {self._dim}:
            raise EmbeddingError(
                f"{where} returned vectors of width {sorted(widths)}, the knowledge base stores {self._dim}; "
                "choose a model (or `dimensions`) that gives that width"
            )
        return l2_normalise(np.array([item.embedding for item in items], dtype=np.float32))


def _short(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit] + "..."
