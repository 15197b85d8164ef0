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


def test_unknown_key_is_refused_naming_the_closest(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IQTS_FOUR_EYE", "true")  # a typo: silently ignoring it would leave four-eyes off
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "IQTS_FOUR_EYE " in message and "did you mean IQTS_FOUR_EYES?" in message
    assert "\n" not in message


def test_unknown_key_in_dotenv_is_refused_with_its_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("IQTS_CHAT_PROT=8123\n")
    with pytest.raises(ConfigError, match=r"IQTS_CHAT_PROT \(from \.env\).*did you mean IQTS_CHAT_PORT\?"):
        load_settings()


def test_every_branch_reads_its_own_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IQTS_LLM_THREADS", "2")
    monkeypatch.setenv("IQTS_CHAT_PORT", "8123")
    monkeypatch.setenv("IQTS_KB_DEFAULT_K", "7")
    monkeypatch.setenv("IQTS_TELEGRAM_CHAT_ID", "42")
    s = load_settings()
    assert (s.agent.llm_threads, s.chat.port, s.kb.default_k, s.notify.telegram_chat_id) == (2, 8123, 7, "42")


def test_a_bad_branch_value_names_its_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IQTS_CHAT_PORT", "0")
    with pytest.raises(ConfigError, match="IQTS_CHAT_PORT"):
        load_settings()


def test_every_secret_of_the_tree_is_redacted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from engine.telemetry import redact_text

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IQTS_OPENAI_COMPATIBLE_API_KEY", "compat-key-123456")
    monkeypatch.setenv("IQTS_TELEGRAM_BOT_TOKEN", "bot-token-654321")
    monkeypatch.setenv("IQTS_KB_REMOTE_API_KEY", "kb-remote-key-777")
    s = load_settings()
    for secret in ("compat-key-123456", "bot-token-654321", "kb-remote-key-777"):
        assert secret in s.secret_values()
        assert secret not in redact_text(f"the value is {secret} here")
