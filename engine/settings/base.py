"""What every branch of the settings tree shares: where values come from, and that they are frozen."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict


def branch_config(env_prefix: str) -> SettingsConfigDict:
    """The model config of a branch reading ``env_prefix``-prefixed variables."""
    return SettingsConfigDict(
        env_prefix=env_prefix,
        env_file=".env",
        env_file_encoding="utf-8",
        # unknown IQTS_* keys are refused by engine.settings.unknown, which knows the whole tree; a branch alone
        # sees only its own prefix, so it must let the others' keys pass
        extra="ignore",
        frozen=True,
    )
