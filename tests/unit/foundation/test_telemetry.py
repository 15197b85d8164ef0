from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest
from pydantic import SecretStr

import engine  # noqa: F401  (applies the offline defaults)
from engine.offline import OFFLINE_DEFAULTS
from engine.telemetry import configure_logging, get_logger, redact_text


def test_json_logs_redact_secrets_by_key_type_and_value(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json", secrets=["k3y-abcdef-123456"])
    log = get_logger("test")
    log.info(
        "connecting",
        api_key="plain-key-value",
        password=SecretStr("pw"),
        url="postgresql://user:hunter2pw@db:5432/iqts",
        note="the key is k3y-abcdef-123456 here",
        nested={"token": "tok-123", "ok": "visible"},
    )
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["event"] == "connecting"
    assert record["api_key"] == "***"
    assert record["password"] == "***"
    assert "hunter2pw" not in line and record["url"] == "postgresql://user:***@db:5432/iqts"
    assert "k3y-abcdef-123456" not in line
    assert record["nested"] == {"token": "***", "ok": "visible"}


def test_stdlib_loggers_go_through_the_same_redaction(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json", secrets=["another-secret-999"])
    logging.getLogger("thirdparty").warning("leaking another-secret-999 in a message")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "another-secret-999" not in line
    assert json.loads(line)["level"] == "warning"


def test_redact_text_handles_redis_and_https_urls() -> None:
    assert redact_text("redis://:pw123@host:6379/0") == "redis://:***@host:6379/0"
    assert redact_text("https://u:p@x.y") == "https://u:***@x.y"
    assert redact_text("nothing here") == "nothing here"


def test_offline_defaults_are_set_by_the_project_and_user_values_win() -> None:
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_DEFAULTS}
    env["DO_NOT_TRACK"] = "0"  # a user's explicit choice
    code = "import json, os, engine; print(json.dumps(dict(os.environ)))"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    seen = json.loads(result.stdout)
    for key, value in OFFLINE_DEFAULTS.items():
        expected = "0" if key == "DO_NOT_TRACK" else value
        assert seen[key] == expected, key


def test_logs_before_configuration_never_reach_stdout() -> None:
    """stdout belongs to a command's output (`iqts bench x --json | jq`) and to MCP stdio; early logs go to stderr."""
    code = "from engine.telemetry import get_logger; get_logger('early').info('bars.upserted', n=3); print('{}')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(done.stdout) == {}
    assert "bars.upserted" in done.stderr


def test_bench_json_is_pipeable() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ui.cli.main", "bench", "risk", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = json.loads(done.stdout)
    assert rows and all(row["bench"].startswith("risk.") for row in rows)
