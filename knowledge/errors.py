"""Errors of the knowledge base, each one clear line for the CLI, API and MCP tools."""

from __future__ import annotations

from engine.errors import IQTSError


class EmbeddingError(IQTSError):
    """The embedder cannot produce vectors (model files missing, remote endpoint failing or malformed)."""


class IngestError(IQTSError):
    """A path cannot be ingested (missing, unreadable, unsupported or too large)."""
