"""Shared fixtures: the real PostgreSQL (embedded, or IQTS_DATABASE_URL) and the real Redis.

Isolation: every test module gets a database of its own, cloned (``CREATE DATABASE ... TEMPLATE``, about 0.1 s)
from one template migrated once per session, and dropped when the module ends. So no module sees another's
state, and a module may change global state (the kill switch, the ledger, the audit log) freely. Fixtures that
depend on ``settings``/``db`` are therefore module- or function-scoped, never session-scoped.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from engine.settings import Settings, load_settings
from engine.store.database import Database, check_url, connect
from engine.store.embedded import EmbeddedPostgres
from engine.store.migrate import upgrade

# numpy's BLAS (OpenBLAS: the MiniLM embedder) on one thread, in this process and the `iqts` processes tests start,
# unless the caller chose. Its threads spin while they wait for each other: with the other core busy (PostgreSQL,
# an `iqts mcp` child, another job on the machine) tests/integration/knowledge took 86 s on two threads and 20 s on
# one; on an idle machine two threads embed about 1.6x faster, a few seconds over the suite. This must run before
# anything imports numpy (nothing above does; no plugin does).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# the `iqts mcp` servers tests start do not warm the knowledge base and kernels in the background (seconds of CPU
# per server, beside the test that started it); tests/integration/mcp/test_mcp_warm.py runs the warm-up itself
os.environ.setdefault("IQTS_MCP_WARM", "false")

REPO = Path(__file__).resolve().parent.parent
_PREFIX = f"iqts_t{os.getpid()}"  # one namespace per pytest session, so parallel sessions never collide
_numbers = itertools.count(1)


@dataclass(frozen=True)
class PgServer:
    """Where test databases are made: an admin connection string and how to address one database."""

    admin: str
    state_dir: Path
    external_url: str | None  # IQTS_DATABASE_URL, when the suite runs against a server of the operator's

    def settings_for(self, name: str, **overrides: object) -> Settings:
        if self.external_url is None:
            return load_settings(state_dir=self.state_dir, db_name=name, **overrides)
        url = psycopg.conninfo.make_conninfo(self.external_url, dbname=name)
        return load_settings(state_dir=self.state_dir, database_url=url, **overrides)

    def execute(self, statement: sql.Composable) -> None:
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(statement)

    def drop(self, name: str) -> None:
        self.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def clone(self, template: str, name: str) -> None:
        self.drop(name)
        self.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template)))


@pytest.fixture(scope="session")
def state_dir() -> Path:
    path = Path(os.environ.get("IQTS_STATE_DIR", REPO / ".iqts")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def pg_server(state_dir: Path) -> PgServer:
    """The PostgreSQL server the suite uses: the embedded one in the state dir, or IQTS_DATABASE_URL's."""
    external = os.environ.get("IQTS_DATABASE_URL", "").strip()
    if external:
        url = check_url(external)
        return PgServer(admin=url, state_dir=state_dir, external_url=url)
    embedded = EmbeddedPostgres(state_dir)
    embedded.start()
    return PgServer(admin=embedded.layout.conninfo("postgres"), state_dir=state_dir, external_url=None)


@pytest.fixture(scope="session")
def template_db(pg_server: PgServer) -> Iterator[str]:
    """A database migrated once per session; every module's database is a copy of it."""
    name = f"{_PREFIX}_template"
    pg_server.drop(name)
    pg_server.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    database = connect(pg_server.settings_for(name))
    try:
        upgrade(database)
    finally:
        database.close()  # a template must have no open connection when it is copied
    yield name
    pg_server.drop(name)


@pytest.fixture(scope="module")
def settings(pg_server: PgServer, template_db: str) -> Iterator[Settings]:
    """Settings for this module: a database of its own, copied from the migrated template, dropped after."""
    name = f"{_PREFIX}_{next(_numbers)}"
    pg_server.clone(template_db, name)
    yield pg_server.settings_for(name)
    pg_server.drop(name)


@pytest.fixture(scope="module")
def db(settings: Settings) -> Iterator[Database]:
    database = connect(settings)
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


@pytest.fixture(scope="module")
def sample_loaded(db: Database) -> None:
    """The bundled real BTC/ETH/LTC history in this module's database (prices for risk checks and tools)."""
    from engine.data.sample import load_sample_series
    from engine.data.store import BarStore, make_key

    store = BarStore(db)
    for series in load_sample_series():
        store.upsert_bars(make_key(series.exchange, series.symbol, series.timeframe), series.frame)
