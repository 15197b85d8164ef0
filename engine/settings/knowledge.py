"""The knowledge base's knobs (``IQTS_KB_*``): a branch of the settings tree.

Defaults run fully offline (the bundled MiniLM in numpy).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings

from engine.settings.base import branch_config

EmbedderChoice = Literal["local", "openai-compatible"]
FusionMode = Literal["reciprocal_rerank", "relative_score", "dist_based_score"]


class KnowledgeSettings(BaseSettings):
    """Embeddings, chunking and retrieval settings."""

    model_config = branch_config("IQTS_KB_")

    # which embedder: the bundled all-MiniLM-L6-v2 run in numpy, or any OpenAI-compatible /embeddings endpoint
    embedder: EmbedderChoice = "local"
    local_max_seq_length: int = Field(256, ge=8, le=512)  # sentence_bert_config.json of all-MiniLM-L6-v2
    local_batch_size: int = Field(32, ge=1, le=1024)
    remote_base_url: str = "https://api.openai.com/v1"
    remote_model: str = "text-embedding-3-small"
    remote_api_key: SecretStr | None = None  # falls back to IQTS_OPENAI_API_KEY
    remote_send_dimensions: bool = True  # ask the server for 384-wide vectors (OpenAI text-embedding-3)
    remote_batch_size: int = Field(64, ge=1, le=2048)
    remote_timeout_s: float = Field(30.0, gt=0)

    # chunking (token = a word or a punctuation mark, close to BERT's basic tokenizer before word pieces)
    chunk_max_tokens: int = Field(160, ge=16, le=2048)
    chunk_overlap_tokens: int = Field(32, ge=0)

    # the journal duty: how often it catches up on decisions and fills (knowledge.trade_journal)
    journal_interval_s: float = Field(5.0, gt=0)

    # ingestion
    max_file_bytes: int = Field(20_000_000, ge=1)
    file_suffixes: tuple[str, ...] = (".md", ".markdown", ".txt", ".text", ".pdf")
    # folders files may be added from (the bundled samples always may); a path outside them is refused
    allowed_roots: tuple[str, ...] = ("~", ".")

    # retrieval
    default_k: int = Field(5, ge=1, le=100)
    max_k: int = Field(50, ge=1, le=500)
    candidates_per_arm: int = Field(40, ge=1, le=1000)  # rows each arm (vector, full text) brings to the fusion
    rrf_k: int = Field(60, ge=1)  # reciprocal rank fusion constant (Cormack et al. 2009)
    # how the dense and full-text arms are fused (LlamaIndex QueryFusionRetriever modes; see `iqts bench knowledge`)
    fusion: FusionMode = "dist_based_score"
    hnsw_ef_search: int = Field(80, ge=1, le=1000)
    # about how many chunks the full-text arm ranks at most: a plain query's commonest words are left out of its
    # any-word match beyond it (ANALYZE's statistics; 0: every word). See docs/knowledge.md for the measured figures.
    text_match_budget: int = Field(500, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> KnowledgeSettings:
        if self.chunk_overlap_tokens * 2 > self.chunk_max_tokens:
            raise ValueError("chunk_overlap_tokens must be at most half of chunk_max_tokens")
        if self.default_k > self.max_k:
            raise ValueError("default_k must not exceed max_k")
        return self
