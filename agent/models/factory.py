"""One factory for every chat model, each with declared capabilities.

``make_chat_model(spec, settings)`` builds the LangChain chat model for ``IQTS_LLM``; ``describe_model`` says which
model that is (its ``label`` is what the chat shows) and what it can do. Keys come from ``engine.settings``
(``SecretStr``) and the agent's own settings; they are handed to the client and never logged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from pydantic import SecretStr

from agent.models.capabilities import Capabilities, ModelInfo
from agent.models.spec import ModelSpec, ModelSpecError, parse_spec
from engine.settings import AgentSettings, Settings, get_settings

REMOTE = Capabilities(
    native_tool_calling=True, constrained_decoding=False, streaming=True, json_schema_output=True, runs_offline=False
)
LOCAL = Capabilities(
    native_tool_calling=False,
    constrained_decoding=True,
    streaming=True,
    json_schema_output=True,
    runs_offline=True,
    ground_optional_arguments=True,
)
OLLAMA = Capabilities(
    native_tool_calling=True, constrained_decoding=False, streaming=True, json_schema_output=True, runs_offline=True
)
SCRIPTED = Capabilities(
    native_tool_calling=True, constrained_decoding=False, streaming=True, json_schema_output=False, runs_offline=True
)


def describe_model(spec: str, settings: Settings | None = None) -> ModelInfo:
    """Which model ``spec`` names and what it can do (no weights are loaded, no network is used)."""
    parsed = parse_spec(spec)
    if parsed.provider == "local":
        from agent.models.fetch import ARTIFACTS, QWEN_CODER_1_5B, SMOLLM2_135M

        agent_settings = (settings or get_settings()).agent
        aliases = {"qwen2.5-coder-1.5b-instruct": QWEN_CODER_1_5B, "smollm2": SMOLLM2_135M}
        artifact = aliases.get(parsed.model) or ARTIFACTS.get(parsed.model)
        if agent_settings.llm_model_path:
            label = f"{agent_settings.llm_model_path.rsplit('/', 1)[-1]} (local, in-process)"
        elif artifact is None:
            raise ModelSpecError(f"IQTS_LLM=local:{parsed.model}: no bundled model of that name")
        else:
            label = artifact.label
        return ModelInfo(provider="local", model=parsed.model, label=label, capabilities=LOCAL)
    if parsed.provider == "ollama":
        return ModelInfo(provider="ollama", model=parsed.model, label=f"{parsed.model} (Ollama)", capabilities=OLLAMA)
    if parsed.provider == "openai":
        return ModelInfo(provider="openai", model=parsed.model, label=f"{parsed.model} (OpenAI)", capabilities=REMOTE)
    if parsed.provider == "anthropic":
        return ModelInfo(
            provider="anthropic", model=parsed.model, label=f"{parsed.model} (Anthropic)", capabilities=REMOTE
        )
    host = (parsed.base_url or "").split("://", 1)[-1].split("/", 1)[0]
    return ModelInfo(
        provider="openai-compatible", model=parsed.model, label=f"{parsed.model} (at {host})", capabilities=REMOTE
    )


def prompt_cache_dir(settings: Settings) -> Path:
    """Where the local model's prefix caches and thread measurement live (in the state dir)."""
    return settings.state_dir / "models" / "prompt-cache"


def _key(value: SecretStr | None, name: str) -> SecretStr:
    if value is None or not value.get_secret_value():
        raise ModelSpecError(f"{name} is not set")
    return value


def make_chat_model(spec: str, settings: Settings, agent_settings: AgentSettings | None = None) -> BaseChatModel:
    """The chat model ``spec`` names. ``local`` fetches and verifies the bundled weights on first use."""
    agent_settings = agent_settings or settings.agent
    parsed: ModelSpec = parse_spec(spec)
    info = describe_model(spec, settings)
    common: dict[str, Any] = {"temperature": agent_settings.llm_temperature}
    if parsed.provider == "local":
        from agent.models import prefill
        from agent.models.fetch import QWEN_CODER_1_5B, SMOLLM2_135M, ensure_model, models_dir
        from agent.models.local import LocalChatModel, default_threads

        sha256: str | None = None
        if agent_settings.llm_model_path:
            path = agent_settings.llm_model_path
        else:
            artifact = SMOLLM2_135M if parsed.model in ("smollm2", SMOLLM2_135M.name) else QWEN_CODER_1_5B
            path = str(ensure_model(artifact, models_dir(settings)))
            sha256 = artifact.sha256
        cache_dir = prompt_cache_dir(settings)
        return LocalChatModel(
            model_path=path,
            label=info.label,
            threads=agent_settings.llm_threads or prefill.choose_threads(cache_dir, default_threads()),
            context=agent_settings.llm_context,
            max_tokens=agent_settings.llm_max_tokens,
            temperature=agent_settings.llm_temperature,
            cache_dir=str(cache_dir),
            model_sha256=sha256,
        )
    if parsed.provider == "ollama":
        from langchain_ollama import ChatOllama

        return ChatOllama(model=parsed.model, base_url=agent_settings.ollama_url, **common)
    if parsed.provider == "openai":
        from langchain_openai import ChatOpenAI

        key = _key(settings.openai_api_key, "IQTS_OPENAI_API_KEY")
        return ChatOpenAI(model=parsed.model, api_key=key, timeout=agent_settings.llm_timeout_s, **common)
    if parsed.provider == "anthropic":
        from langchain_anthropic import ChatAnthropic

        key = _key(settings.anthropic_api_key, "IQTS_ANTHROPIC_API_KEY")
        return ChatAnthropic(  # type: ignore[call-arg]
            model_name=parsed.model,
            api_key=key,
            timeout=agent_settings.llm_timeout_s,
            max_tokens_to_sample=agent_settings.llm_max_tokens * 4,
            **common,
        )
    from langchain_openai import ChatOpenAI

    key = agent_settings.openai_compatible_api_key or SecretStr("not-needed")
    return ChatOpenAI(
        model=parsed.model, base_url=parsed.base_url, api_key=key, timeout=agent_settings.llm_timeout_s, **common
    )
