from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.settings import load_settings


def test_defaults_are_the_embedded_ones(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("IQTS_DATABASE_URL", "IQTS_REDIS_URL", "IQTS_MODE", "IQTS_STATE_DIR"):
        monkeypatch.delenv(var, raising=False)
    s = load_settings()
    assert s.database_url is None and s.redis_url is None
    assert s.mode == "dry-run"
    assert s.llm == "local"
    assert s.state_dir == (tmp_path / ".iqts").resolve()


def test_env_prefix_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("IQTS_API_PORT=9123\nIQTS_MODE=sandbox\n")
    monkeypatch.setenv("IQTS_MODE", "live")  # the environment beats .env
    s = load_settings()
    assert s.api_port == 9123
    assert s.mode == "live"


def test_secrets_are_secretstr_and_never_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IQTS_EXCHANGE_API_SECRET", "sup3r-s3cret-value")
    monkeypatch.setenv("IQTS_DATABASE_URL", "postgresql://u:dbpassword1@db/x")
    s = load_settings()
    assert "sup3r-s3cret-value" not in repr(s)
    assert "dbpassword1" not in repr(s)
    assert "sup3r-s3cret-value" in s.secret_values()


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("IQTS_API_PORT", "abc", "IQTS_API_PORT"),
        ("IQTS_API_PORT", "70000", "IQTS_API_PORT"),
        ("IQTS_MODE", "yolo", "IQTS_MODE"),
        ("IQTS_LOG_LEVEL", "LOUD", "IQTS_LOG_LEVEL"),
    ],
)
def test_malformed_values_give_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_blank_urls_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IQTS_DATABASE_URL", "  ")
    assert load_settings().database_url is None
