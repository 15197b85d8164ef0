"""A database of a test module's own on the suite's PostgreSQL server (embedded or ``IQTS_DATABASE_URL``).

For tests whose expectations depend on *everything* stored (which series is the default for "BTC"), so that
series other modules store cannot change the answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from pydantic import SecretStr

from engine.settings import Settings
from engine.store.database import Database, connect, resolve_database_url
from engine.store.migrate import upgrade


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@contextmanager
def own_database(settings: Settings, name: str) -> Iterator[tuple[Settings, Database]]:
    """Create ``name`` empty on the suite's server, migrate it, yield settings pointing at it and the database;
    drop it afterwards."""
    base_url, _ = resolve_database_url(settings)
    admin = _with_database(base_url, "postgres")
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(drop)
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    if settings.database_url is not None:
        own = settings.model_copy(update={"database_url": SecretStr(_with_database(base_url, name))})
    else:
        own = settings.model_copy(update={"db_name": name})
    database = connect(own)
    try:
        upgrade(database)
        yield own, database
    finally:
        database.pool.close()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(drop)
