"""KnowledgeSettings: environment variables, and inconsistent values rejected in one line."""

from __future__ import annotations

import pytest

from engine.errors import ConfigError
from knowledge.config import load_knowledge_config


def test_environment_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IQTS_KB_CHUNK_MAX_TOKENS", "200")
    monkeypatch.setenv("IQTS_KB_EMBEDDER", "openai-compatible")
    config = load_knowledge_config()
    assert config.chunk_max_tokens == 200 and config.embedder == "openai-compatible"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"chunk_max_tokens": 40, "chunk_overlap_tokens": 30}, "at most half"),
        ({"embedder": "torch"}, "IQTS_KB_EMBEDDER"),
        ({"default_k": 80, "max_k": 10}, "default_k"),
    ],
)
def test_bad_values(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_knowledge_config(**overrides)
    assert "\n" not in str(caught.value)
