"""The OpenAI-compatible embedder over a local httpx MockTransport and a loopback socket, and the factory."""

from __future__ import annotations

import json
import socket

import httpx
import numpy as np
import pytest
from pydantic import SecretStr

from engine.settings import load_settings
from knowledge.config import EMBEDDING_DIM, load_knowledge_config
from knowledge.embeddings.base import Embedder
from knowledge.embeddings.factory import make_embedder
from knowledge.embeddings.remote import OpenAICompatibleEmbedder
from knowledge.errors import EmbeddingError

KEY = "sk-test-0123456789"


def _vector(text: str, dim: int) -> list[float]:
    rng = np.random.default_rng(abs(hash(text)) % 2**32)
    return [float(x) for x in rng.standard_normal(dim) * 3]  # deliberately not unit length


class FakeServer:
    """An OpenAI-style /embeddings endpoint that records what it was sent."""

    def __init__(self, dim: int = EMBEDDING_DIM, *, status: int = 200, body: bytes | None = None) -> None:
        self.dim, self.status, self.body = dim, status, body
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.body is not None or self.status != 200:
            return httpx.Response(self.status, content=self.body or b'{"error": {"message": "boom"}}')
        payload = json.loads(request.content)
        data = [{"index": i, "embedding": _vector(t, self.dim)} for i, t in enumerate(payload["input"])]
        return httpx.Response(200, json={"object": "list", "data": list(reversed(data)), "model": payload["model"]})


def _embedder(server: FakeServer, *, batch_size: int = 64, send_dimensions: bool = True) -> OpenAICompatibleEmbedder:
    return OpenAICompatibleEmbedder(
        base_url="http://embeddings.test/v1/",
        model="text-embedding-3-small",
        dim=EMBEDDING_DIM,
        api_key=SecretStr(KEY),
        batch_size=batch_size,
        send_dimensions=send_dimensions,
        transport=httpx.MockTransport(server),
    )


def test_request_shape_batching_and_order() -> None:
    server = FakeServer()
    embedder = _embedder(server, batch_size=2)
    assert isinstance(embedder, Embedder)
    texts = ["one", "two", "three", "four", "five"]
    vectors = embedder.embed(texts)
    assert vectors.shape == (5, EMBEDDING_DIM) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    expected = np.array([_vector(t, EMBEDDING_DIM) for t in texts])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.abs(vectors - expected).max() < 1e-6  # input order kept though the server answers reversed
    assert len(server.requests) == 3
    first = server.requests[0]
    assert str(first.url) == "http://embeddings.test/v1/embeddings"
    assert first.headers["authorization"] == f"Bearer {KEY}"
    assert json.loads(first.content) == {
        "model": "text-embedding-3-small",
        "input": ["one", "two"],
        "encoding_format": "float",
        "dimensions": EMBEDDING_DIM,
    }
    assert embedder.name == "openai-compatible:text-embedding-3-small"
    assert embedder.embed([]).shape == (0, EMBEDDING_DIM)
    assert len(server.requests) == 3  # nothing sent for no texts


def test_dimensions_can_be_left_to_the_server() -> None:
    server = FakeServer()
    _embedder(server, send_dimensions=False).embed(["x"])
    assert "dimensions" not in json.loads(server.requests[0].content)


@pytest.mark.parametrize(
    ("server", "message"),
    [
        (FakeServer(status=500), "answered HTTP 500"),
        (FakeServer(status=401, body=b'{"error": "bad key"}'), "answered HTTP 401"),
        (FakeServer(body=b"<html>not json</html>"), "malformed response"),
        (FakeServer(body=b'{"data": [{"index": 5, "embedding": [1.0]}]}'), "returned 1 vectors for 1 texts"),
        (FakeServer(dim=1536), "width [1536]"),
    ],
)
def test_failures_are_one_clear_line_without_the_key(server: FakeServer, message: str) -> None:
    with pytest.raises(EmbeddingError) as caught:
        _embedder(server).embed(["x"])
    text = str(caught.value)
    assert message in text and KEY not in text and "\n" not in text


def test_unreachable_server_over_real_loopback() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    embedder = OpenAICompatibleEmbedder(
        base_url=f"http://127.0.0.1:{port}/v1", model="m", dim=EMBEDDING_DIM, api_key=SecretStr(KEY), timeout_s=2
    )
    with pytest.raises(EmbeddingError, match="is not answering: ConnectError"):
        embedder.embed(["x"])


def test_factory_picks_the_configured_embedder(tmp_path) -> None:
    server = FakeServer()
    config = load_knowledge_config(embedder="openai-compatible", remote_base_url="http://embeddings.test/v1")
    settings = load_settings(state_dir=tmp_path, openai_api_key=KEY)
    remote = make_embedder(config, settings, transport=httpx.MockTransport(server))
    assert remote.name.startswith("openai-compatible:")
    remote.embed(["x"])
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"  # falls back to IQTS_OPENAI_API_KEY
    local = make_embedder(load_knowledge_config())
    assert local.name == "sentence-transformers/all-MiniLM-L6-v2" and local.dim == EMBEDDING_DIM
