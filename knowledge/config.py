"""The knowledge base's fixed facts; its knobs are the settings tree's ``kb`` branch (``IQTS_KB_*``)."""

from __future__ import annotations

from typing import Final

from engine.settings import KnowledgeSettings, get_settings, load_settings

EMBEDDING_DIM: Final = 384
"""Width of ``kb_chunks.embedding`` (migration 0006): every embedder must produce vectors of this size."""

FTS_CONFIG: Final = "english"
"""Text search configuration of the generated ``kb_chunks.tsv`` column; queries must use the same one."""


def load_knowledge_config(**overrides: object) -> KnowledgeSettings:
    """The ``kb`` branch from the environment with ``overrides`` applied (ConfigError with a one-line reason)."""
    return load_settings(kb=overrides).kb


def get_knowledge_config() -> KnowledgeSettings:
    """The process-wide ``kb`` branch."""
    return get_settings().kb
