"""Fixtures of the knowledge-base tests: one MiniLM per session, an embedder that counts its work."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from engine.settings import KnowledgeSettings
from engine.store.database import Database
from knowledge.embeddings.base import Embedder, Vectors
from knowledge.embeddings.minilm import local_embedder
from knowledge.models import IngestReport
from knowledge.service import KnowledgeBase, ingest_path

SAMPLES = Path(__file__).resolve().parents[3] / "knowledge" / "samples"


class CountingEmbedder:
    """Wraps an embedder and counts calls and texts (to prove what was, and was not, re-embedded)."""

    def __init__(self, inner: Embedder, name: str | None = None) -> None:
        self.inner = inner
        self._name = name or inner.name
        self.calls = 0
        self.texts = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.calls += 1
        self.texts += len(texts)
        return self.inner.embed(texts)

    def reset(self) -> None:
        self.calls = self.texts = 0


@pytest.fixture(scope="session")
def minilm() -> Embedder:
    return local_embedder()


@pytest.fixture(scope="session")
def kb_config() -> KnowledgeSettings:
    return KnowledgeSettings(allowed_roots=("~", ".", tempfile.gettempdir()))


@pytest.fixture
def counting(minilm: Embedder) -> CountingEmbedder:
    return CountingEmbedder(minilm)


@pytest.fixture
def kb(db: Database, counting: CountingEmbedder, kb_config: KnowledgeSettings) -> KnowledgeBase:
    return KnowledgeBase(db, counting, kb_config)


@pytest.fixture(scope="module")
def samples(db: Database, minilm: Embedder, kb_config: KnowledgeSettings) -> IngestReport:
    """The shipped samples, ingested once per session."""
    return ingest_path(db, SAMPLES, embedder=minilm, config=kb_config)
