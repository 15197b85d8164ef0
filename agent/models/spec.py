"""Parse ``IQTS_LLM``: ``local`` | ``ollama:MODEL`` | ``openai:MODEL`` | ``anthropic:MODEL`` |
``openai-compatible:BASE_URL#MODEL``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from agent.models.capabilities import Provider


class ModelSpecError(ValueError):
    """An ``IQTS_LLM`` value that names no usable model."""


class ModelSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    provider: Provider
    model: str
    base_url: str | None = None


def parse_spec(spec: str) -> ModelSpec:
    text = spec.strip()
    if text in ("", "local"):
        return ModelSpec(provider="local", model="qwen2.5-coder-1.5b-instruct")
    provider, sep, rest = text.partition(":")
    rest = rest.strip()
    if not sep or not rest:
        raise ModelSpecError(
            f"IQTS_LLM={spec!r}: expected local, ollama:MODEL, openai:MODEL, anthropic:MODEL or "
            "openai-compatible:BASE_URL#MODEL"
        )
    if provider == "local":
        return ModelSpec(provider="local", model=rest)
    if provider in ("ollama", "openai", "anthropic"):
        return ModelSpec(provider=provider, model=rest)  # type: ignore[arg-type]
    if provider == "openai-compatible":
        base_url, hash_sign, model = rest.rpartition("#")
        if not hash_sign or not base_url or not model:
            raise ModelSpecError(f"IQTS_LLM={spec!r}: write openai-compatible:BASE_URL#MODEL")
        if not base_url.startswith(("http://", "https://")):
            raise ModelSpecError(f"IQTS_LLM={spec!r}: the base URL must start with http:// or https://")
        return ModelSpec(provider="openai-compatible", model=model, base_url=base_url)
    raise ModelSpecError(f"IQTS_LLM={spec!r}: unknown provider {provider!r}")
