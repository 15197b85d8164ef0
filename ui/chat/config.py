"""Where the chat listens and which API its copilot calls, from the settings tree's ``chat`` branch."""

from __future__ import annotations

from engine.settings import ChatSettings, Settings

__all__ = ["ChatSettings", "api_url", "chat_url", "listen_host"]


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
