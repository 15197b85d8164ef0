"""The chat's surroundings: its tables in the ``chat`` schema, element files kept in the database, the app root it
writes (and nothing outside it), the page served without outside links, and its settings."""

from __future__ import annotations

import base64
import json
import stat
import tomllib
import uuid
from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.settings import Settings
from engine.store.database import Database
from ui.chat.config import ChatSettings, api_url, chat_url
from ui.chat.copilot import load_model_factory
from ui.chat.history import SCHEMA, DatabaseFiles, ensure_schema, sqlalchemy_url
from ui.chat.serve import _offline_html, chainlit_env
from ui.chat.workdir import prepare


def test_the_schema_is_created_once_and_apart_from_iqts_tables(db: Database) -> None:
    ensure_schema(db.url)
    ensure_schema(db.url)  # idempotent
    with db.connection() as conn:
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (SCHEMA,)
            ).fetchall()
        }
        iqts_users = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'users'"
        ).fetchall()
    assert tables == {"users", "threads", "steps", "elements", "feedbacks", "files"}
    assert "password_hash" in {r[0] for r in iqts_users}  # IQTS's own users table is untouched


async def test_element_files_are_kept_in_the_database_and_served_as_data_urls(db: Database) -> None:
    ensure_schema(db.url)
    files = DatabaseFiles(db.url)
    key = f"user/{uuid.uuid4()}/equity.json"
    uploaded = await files.upload_file(key, '{"data": []}', mime="application/json")
    expected = "data:application/json;base64," + base64.b64encode(b'{"data": []}').decode()
    assert uploaded == {"object_key": key, "url": expected}
    assert await files.get_read_url(key) == expected
    await files.upload_file(key, b"{}", mime="application/json", overwrite=False)  # kept as it was
    assert await files.get_read_url(key) == expected
    assert await files.delete_file(key) is True
    assert await files.delete_file(key) is False
    with pytest.raises(KeyError):
        await files.get_read_url(key)


def test_the_sqlalchemy_url_names_psycopg() -> None:
    assert (
        sqlalchemy_url("postgresql://iqts@/db?host=/tmp/s&port=5432")
        == "postgresql+psycopg://iqts@/db?host=/tmp/s&port=5432"
    )
    assert sqlalchemy_url("postgres://u:p@h:5/d") == "postgresql+psycopg://u:p@h:5/d"
    assert sqlalchemy_url("postgresql+asyncpg://u@h/d") == "postgresql+psycopg://u@h/d"
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        sqlalchemy_url("mysql://u@h/d")


def test_the_app_root_holds_the_config_the_readme_and_a_kept_secret(settings: Settings, tmp_path: Path) -> None:
    local = settings.model_copy(update={"state_dir": tmp_path})
    chat = ChatSettings(port=8123, host="127.0.0.1", session_timeout_s=120)
    root = prepare(local, chat)
    assert root.path == tmp_path / "chat"
    config = tomllib.loads((root.path / ".chainlit" / "config.toml").read_text())
    assert config["project"]["allow_origins"] == ["http://127.0.0.1:8123", "http://localhost:8123"]
    assert config["project"]["session_timeout"] == 120
    assert config["features"]["unsafe_allow_html"] is False and config["features"]["latex"] is False
    assert config["features"]["spontaneous_file_upload"]["enabled"] is False
    assert config["features"]["mcp"]["enabled"] is False and config["features"]["edit_message"] is False
    assert config["UI"]["cot"] == "full" and config["UI"]["custom_meta_image_url"].startswith("http://127.0.0.1:8123")
    assert (root.path / "public" / "theme.json").read_text() == '{"custom_fonts": []}'  # no Google Fonts link
    assert "only ever **proposed**" in (root.path / "chainlit.md").read_text()
    words = json.loads((root.path / ".chainlit" / "translations" / "en-US.json").read_text())
    assert words["auth"]["login"]["form"]["email"]["label"] == "Username"
    assert words["auth"]["login"]["form"]["password"]["label"] == "Password"  # Chainlit's own words kept
    assert words["auth"]["login"]["errors"]["credentialsSignin"] == "Wrong username or password."
    assert config["UI"]["language"] == "en-US"
    assert "IQTS" in (root.path / "public" / "logo_light.svg").read_text()
    secret_file = root.path / "auth-secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600 and len(root.auth_secret) >= 32
    assert prepare(local, chat).auth_secret == root.auth_secret  # sign-ins survive a restart
    env = chainlit_env(local, chat)
    assert env["CHAINLIT_APP_ROOT"] == str(root.path) and env["CHAINLIT_AUTH_SECRET"] == root.auth_secret
    assert env["CHAINLIT_AUTH_COOKIE_NAME"] == "iqts_chat"  # not the inbox's cookie on the same host


def test_the_page_links_nothing_outside() -> None:
    page = (
        '<head><link href="https://fonts.googleapis.com/css2?family=Inter" rel="stylesheet" />\n'
        '<link\n  rel="stylesheet"\n  href="https://cdn.jsdelivr.net/npm/katex@0.16.22/dist/katex.min.css"\n/>\n'
        '<link rel="icon" href="/favicon" /><script type="module" src="/assets/index.js"></script></head>'
    )
    served = _offline_html(lambda _root: page)("")  # type: ignore[operator]
    assert "https://" not in served
    assert '<link rel="icon" href="/favicon" />' in served and 'src="/assets/index.js"' in served


def test_urls_of_the_chat_and_of_the_api_it_calls(settings: Settings) -> None:
    local = settings.model_copy(update={"api_host": "0.0.0.0", "api_port": 8100, "public_url": "https://iqts.example"})
    assert chat_url(local, ChatSettings(port=8101)) == "http://127.0.0.1:8101"
    assert api_url(local, ChatSettings()) == "http://127.0.0.1:8100"  # the local listener, not the public URL
    assert api_url(local, ChatSettings(api_url="http://api:8000/")) == "http://api:8000"


def test_the_model_factory_hook() -> None:
    assert load_model_factory(None) is None
    factory = load_model_factory("tests.integration.chat.script:scripted_model")
    assert factory is not None and factory().label == "scripted chat test model"  # type: ignore[attr-defined]
    for bad in (
        "no_colon",
        "tests.integration.chat.script:missing",
        "no.such.module:x",
        "tests.integration.chat.script:LABEL",
    ):
        with pytest.raises(ConfigError, match="IQTS_CHAT_MODEL_FACTORY"):
            load_model_factory(bad)
