"""What a chat model can do, declared up front so the graph never has to guess."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Provider = Literal["local", "ollama", "openai", "anthropic", "openai-compatible", "scripted"]


class Capabilities(BaseModel):
    """Declared, not probed."""

    model_config = ConfigDict(frozen=True)

    native_tool_calling: bool = Field(description="the provider's own tool-call API is used")
    constrained_decoding: bool = Field(
        description="tool calls come from JSON-schema-constrained decoding (one anyOf branch per tool)"
    )
    streaming: bool = Field(description="answer tokens arrive as they are generated")
    json_schema_output: bool = Field(description="the provider can be held to a JSON schema")
    runs_offline: bool = Field(description="needs no network and no key")
    ground_optional_arguments: bool = Field(
        False, description="drop optional arguments the user never mentioned (small models invent them)"
    )


class ModelInfo(BaseModel):
    """Which model answers, said plainly."""

    model_config = ConfigDict(frozen=True)

    provider: Provider
    model: str
    label: str
    capabilities: Capabilities
