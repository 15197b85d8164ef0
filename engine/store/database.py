"""Connection pool and the choice between the embedded server and ``IQTS_DATABASE_URL``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
from psycopg import Connection
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool, PoolTimeout

from engine.errors import ConfigError, DatabaseUnavailableError
from engine.settings import Settings
from engine.store.embedded import EmbeddedPostgres
from engine.telemetry import get_logger, redact_text

log = get_logger(__name__)


def describe_target(url: str) -> str:
    """The server a URL points at, without credentials (for messages)."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    host = info.get("host") or "localhost"
    port = info.get("port") or "5432"
    return f"{host}:{port}/{info.get('dbname', '')}"


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return redact_text(text[0] if text else type(error).__name__)


def _lost_server(error: psycopg.OperationalError) -> bool:
    """The server is away or restarting (not a cancelled query or a lock timeout, which are the caller's)."""
    if isinstance(error, psycopg.errors.QueryCanceled | psycopg.errors.LockNotAvailable):
        return False
    return error.sqlstate is None or error.sqlstate.startswith(("08", "57P"))  # connection exceptions, shutdowns


def check_url(url: str) -> str:
    """Validate a database URL's syntax; return it normalised for SQLAlchemy-free use."""
    url = re.sub(r"^postgresql\+psycopg2?://", "postgresql://", url.strip())
    url = re.sub(r"^postgres://", "postgresql://", url)
    try:
        psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as error:
        raise ConfigError(f"IQTS_DATABASE_URL is malformed: {_first_line(error)}") from None
    if not url.startswith("postgresql://") and "=" not in url:
        raise ConfigError("IQTS_DATABASE_URL must be a postgresql:// URL")
    return url


@dataclass
class Database:
    """A psycopg 3 connection pool on the IQTS database (plus the embedded server, if we started it)."""

    url: str
    pool: ConnectionPool[Connection[TupleRow]]
    embedded: EmbeddedPostgres | None = field(default=None)

    @contextmanager
    def connection(self) -> Iterator[Connection[TupleRow]]:
        """A pooled connection; the block is one transaction (committed on success)."""
        try:
            with self.pool.connection() as conn:
                yield conn
        except PoolTimeout as error:
            raise DatabaseUnavailableError(f"database {describe_target(self.url)} is not answering") from error
        except psycopg.OperationalError as error:
            if not _lost_server(error):
                raise
            raise DatabaseUnavailableError(
                f"database {describe_target(self.url)} went away: {_first_line(error)}"
            ) from error

    def ping(self) -> bool:
        try:
            with self.pool.connection(timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except (psycopg.Error, PoolTimeout):
            return False

    @property
    def sqlalchemy_url(self) -> str:
        """The same database for SQLAlchemy users (Optuna's RDB storage)."""
        return "postgresql+psycopg://" + self.url.removeprefix("postgresql://")

    def close(self) -> None:
        self.pool.close()
        if self.embedded is not None and self.embedded.started_here:
            self.embedded.stop()


def resolve_database_url(settings: Settings) -> tuple[str, EmbeddedPostgres | None]:
    """``IQTS_DATABASE_URL`` when set; otherwise start (or join) the embedded server."""
    if settings.database_url is not None:
        return check_url(settings.database_url.get_secret_value()), None
    embedded = EmbeddedPostgres(settings.state_dir, start_timeout_s=settings.embedded_pg_start_timeout_s)
    embedded.start()
    embedded.ensure_database(settings.db_name)
    return embedded.url(settings.db_name), embedded


def connect(settings: Settings) -> Database:
    """Open the pool, failing with one clear line when the server cannot be reached."""
    url, embedded = resolve_database_url(settings)
    try:
        with psycopg.connect(url, connect_timeout=int(max(1, settings.db_connect_timeout_s))) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        if embedded is not None and embedded.started_here:
            embedded.stop()
        raise DatabaseUnavailableError(
            f"cannot connect to the database at {describe_target(url)}: {_first_line(error)}"
        ) from None
    pool: ConnectionPool[Connection[TupleRow]] = ConnectionPool(
        url,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        open=True,
        timeout=settings.db_connect_timeout_s,
        name="iqts",
        check=ConnectionPool.check_connection,  # a connection the server dropped is replaced, not handed out
        reconnect_timeout=float("inf"),  # keep trying while the server is away: recovery needs no restart
    )
    log.info("database.connected", target=describe_target(url), embedded=embedded is not None)
    return Database(url=url, pool=pool, embedded=embedded)
