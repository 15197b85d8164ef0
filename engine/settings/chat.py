"""The chat's knobs (``IQTS_CHAT_*``): a branch of the settings tree."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from engine.settings.base import branch_config


class ChatSettings(BaseSettings):
    """Where the chat listens, which API it talks to, how often it reads an approval back."""

    model_config = branch_config("IQTS_CHAT_")

    host: str | None = Field(None, description="listen address; unset: the API's (IQTS_API_HOST)")
    port: int = Field(8001, ge=1, le=65535)
    api_url: str | None = Field(
        None, description="the IQTS API whose /mcp the copilot uses; unset: this machine's API (IQTS_API_PORT)"
    )
    approval_poll_s: float = Field(2.0, gt=0, description="how often an open approval card reads its status")
    session_timeout_s: int = Field(300, ge=10, description="how long a dropped connection's session is kept")
    model_factory: str | None = Field(
        None,
        description="'module:callable' returning a LangChain chat model, instead of IQTS_LLM (tests and evals)",
    )
