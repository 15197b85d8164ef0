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
TEST_DB = f"iqts_test_{os.getpid()}"  # one per pytest session, so parallel sessions never collide


@pytest.fixture(scope="session")
def state_dir() -> Path:
    path = Path(os.environ.get("IQTS_STATE_DIR", REPO / ".iqts")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _drop(embedded: EmbeddedPostgres, name: str) -> None:
    with psycopg.connect(embedded.layout.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def settings(state_dir: Path) -> Iterator[Settings]:
    """Settings for the suite: a database of its own, created empty and dropped at the end of the session."""
    if os.environ.get("IQTS_DATABASE_URL"):
        yield load_settings(state_dir=state_dir)
        return
    embedded = EmbeddedPostgres(state_dir)
    embedded.start()
    _drop(embedded, TEST_DB)
    yield load_settings(state_dir=state_dir, db_name=TEST_DB)
    _drop(embedded, TEST_DB)


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


@pytest.fixture(scope="session")
def sample_loaded(db: Database) -> None:
    """The bundled real BTC/ETH/LTC history in the test database (prices for risk checks and tools)."""
    from engine.data.sample import load_sample_series
    from engine.data.store import BarStore, make_key

    store = BarStore(db)
    for series in load_sample_series():
        store.upsert_bars(make_key(series.exchange, series.symbol, series.timeframe), series.frame)
