"""The chat's own knobs (``IQTS_CHAT_*``), beside the shared settings that choose the model and the database."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine.settings import Settings


class ChatSettings(BaseSettings):
    """Where the chat listens, which API it talks to, how often it reads an approval back."""

    model_config = SettingsConfigDict(
        env_prefix="IQTS_CHAT_", env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

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


def load_chat_settings(**overrides: object) -> ChatSettings:
    return ChatSettings(**overrides)  # type: ignore[arg-type]


def listen_host(settings: Settings, chat: ChatSettings) -> str:
    return chat.host or settings.api_host


def chat_url(settings: Settings, chat: ChatSettings) -> str:
    host = listen_host(settings, chat)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 (a comparison, not a bind)
    return f"http://{shown}:{chat.port}"


def api_url(settings: Settings, chat: ChatSettings) -> str:
    """The API the chat's copilot calls: the configured one, else the local listener (not the public URL, which
    may sit behind a proxy the chat process cannot reach)."""
    if chat.api_url:
        return chat.api_url.rstrip("/")
    host = settings.api_host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104
        host = "127.0.0.1"
    return f"http://{host}:{settings.api_port}"
