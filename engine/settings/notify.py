"""Where approval notifications go (``IQTS_WEBHOOK_*``, ``IQTS_TELEGRAM_*``): a branch of the settings tree.

All optional: with nothing set, the notifier sends nothing.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings

from engine.settings.base import branch_config


class NotifySettings(BaseSettings):
    """Webhook and Telegram channels for new approval requests."""

    model_config = branch_config("IQTS_")

    webhook_url: SecretStr | None = Field(None, description="POST a JSON message here on each new pending request")
    webhook_secret: SecretStr | None = Field(None, description="HMAC-SHA256 key signing the webhook body")
    webhook_timeout_s: float = Field(5.0, gt=0, le=60)
    telegram_bot_token: SecretStr | None = None
    telegram_chat_id: str | None = Field(None, max_length=64)
    telegram_api_url: str = "https://api.telegram.org"
    telegram_timeout_s: float = Field(5.0, gt=0, le=60)

    @field_validator("webhook_url", "webhook_secret", "telegram_bot_token", "telegram_chat_id", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and urlsplit(value.get_secret_value()).scheme not in ("http", "https"):
            raise ValueError("IQTS_WEBHOOK_URL must be an http(s) URL")
        return value
