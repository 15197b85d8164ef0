"""The agent's knobs (``IQTS_LLM_*``, ``IQTS_AGENT_*``, remote providers): a branch of the settings tree.

Only the agent reads them; the model choice itself (``IQTS_LLM``) and the provider keys sit at the root.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from engine.settings.base import branch_config


class AgentSettings(BaseSettings):
    """How the agent runs its model and its loop."""

    model_config = branch_config("IQTS_")

    # the embedded model (llama.cpp in-process through xllamacpp)
    llm_threads: int | None = Field(None, ge=1, le=64, description="CPU threads; unset: 1 when the machine is busy")
    llm_context: int = Field(8192, ge=1024, le=131072, description="context window in tokens")
    llm_max_tokens: int = Field(512, ge=16, le=8192, description="longest answer or tool call, in tokens")
    llm_temperature: float = Field(0.0, ge=0.0, le=2.0)
    llm_model_path: str | None = Field(None, description="a GGUF file to use instead of the bundled default")
    llm_timeout_s: float = Field(300.0, gt=0, description="per model call, for remote providers")

    # remote providers
    ollama_url: str = "http://127.0.0.1:11434"
    openai_compatible_api_key: SecretStr | None = None

    # the loop
    agent_max_steps: int = Field(8, ge=1, le=50, description="model calls per question before it must answer")
    agent_error_retries: int = Field(
        2, ge=0, le=10, description="further model steps after failed tool calls, with the error in view"
    )
    agent_tool_result_chars: int = Field(
        3500, ge=500, description="longest tool result the model reads (its view: agent.graph.result_view)"
    )
    agent_approval_wait_s: float = Field(
        10.0, ge=0, description="after a decision, how long to wait for the execution worker's result"
    )
    agent_approval_poll_s: float = Field(0.5, gt=0)
