"""The numpy all-MiniLM-L6-v2 against sentence-transformers' own output (fixtures/minilm_reference.json)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from knowledge.embeddings.base import Embedder
from knowledge.embeddings.minilm import MODEL_NAME, gelu_, local_embedder

REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "minilm_reference.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def embedder():
    return local_embedder()


def test_matches_sentence_transformers(embedder) -> None:
    expected = np.array(REFERENCE["embeddings"], dtype=np.float32)
    got = embedder.embed(REFERENCE["sentences"])
    assert got.dtype == np.float32
    assert got.shape == expected.shape == (8, 384)
    cosine = (got * expected).sum(axis=1) / np.linalg.norm(expected, axis=1)
    assert cosine.min() > 0.9999, cosine
    assert np.abs(got - expected).max() < 1e-4


def test_reference_covers_truncation(embedder) -> None:
    # the last sentence is longer than max_seq_length word pieces: it only matches if we truncate like ST does
    assert max(REFERENCE["token_counts_untruncated"]) > REFERENCE["max_seq_length"] == embedder.max_seq_length


def test_batching_does_not_change_vectors(embedder) -> None:
    sentences = REFERENCE["sentences"]
    together = embedder.embed(sentences)
    alone = np.vstack([embedder.embed([s]) for s in sentences])
    assert np.abs(together - alone).max() < 1e-5


def test_contract_shapes_and_norms(embedder) -> None:
    assert isinstance(embedder, Embedder)
    assert embedder.name == MODEL_NAME
    assert embedder.dim == 384
    empty = embedder.embed([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32
    vectors = embedder.embed(["", "a", "BTC"])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_similar_sentences_are_closer(embedder) -> None:
    a, b, c = embedder.embed(
        [
            "Exit when the fast moving average crosses below the slow one.",
            "The strategy closes its position on a bearish SMA crossover.",
            "Approvals expire after fifteen minutes.",
        ]
    )
    assert float(a @ b) > float(a @ c) + 0.1


def test_gelu_is_the_erf_gelu() -> None:
    x = np.linspace(-12, 12, 4900, dtype=np.float32).reshape(-1, 49)  # more rows than one block
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.ravel().tolist()]).reshape(x.shape)
    got = gelu_(x.copy(), block_rows=16)
    assert np.abs(got - exact).max() < 2e-6
