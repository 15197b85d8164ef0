"""Shared fixtures: the real PostgreSQL (embedded, or IQTS_DATABASE_URL) and the real Redis."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from engine.settings import Settings, load_settings
from engine.store.database import Database, connect
from engine.store.embedded import EmbeddedPostgres
from engine.store.migrate import upgrade

REPO = Path(__file__).resolve().parent.parent
TEST_DB = "iqts_test"


@pytest.fixture(scope="session")
def state_dir() -> Path:
    path = Path(os.environ.get("IQTS_STATE_DIR", REPO / ".iqts")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def settings(state_dir: Path) -> Settings:
    """Settings for the suite: a dedicated database, recreated empty at the start of the session."""
    if os.environ.get("IQTS_DATABASE_URL"):
        return load_settings(state_dir=state_dir)
    embedded = EmbeddedPostgres(state_dir)
    embedded.start()
    with psycopg.connect(embedded.layout.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(TEST_DB)))
    return load_settings(state_dir=state_dir, db_name=TEST_DB)


@pytest.fixture(scope="session")
def db(settings: Settings) -> Iterator[Database]:
    database = connect(settings)
    upgrade(database)
    yield database
    database.close()


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("IQTS_TEST_REDIS_URL")
    if not url:
        pytest.fail("IQTS_TEST_REDIS_URL is not set: run the suite with `make test`, which starts Redis")
    return url


@pytest.fixture
def unique() -> str:
    """A short unique token for names (topics, groups, accounts) so tests never collide."""
    return uuid.uuid4().hex[:10]
