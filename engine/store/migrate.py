"""Versioned schema migrations recorded in ``schema_migrations`` (applied by ``iqts db upgrade`` and at start).

Each migration is a SQL file ``engine/store/migrations/NNNN_name.sql`` run in its own transaction. An
advisory lock makes concurrent starts safe; a checksum catches an applied file that was edited since.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

from pydantic import BaseModel

from engine.errors import ConfigError
from engine.store.database import Database
from engine.telemetry import get_logger

log = get_logger(__name__)

_LOCK_KEY = 0x1A75_0001  # pg_advisory_xact_lock key reserved for migrations
_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationStatus(BaseModel):
    version: int
    name: str
    applied: bool


def discover() -> list[Migration]:
    """All migrations shipped with the package, in version order."""
    found: list[Migration] = []
    for entry in resources.files("engine.store.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match["version"]), match["name"], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ConfigError(f"two migrations share a version number: {versions}")
    return found


_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def upgrade(db: Database) -> list[Migration]:
    """Apply every pending migration; return those applied now."""
    applied_now: list[Migration] = []
    with db.connection() as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(_CREATE_TABLE)
            conn.commit()
            done = {row[0]: row[1] for row in conn.execute("SELECT version, checksum FROM schema_migrations")}
            for migration in discover():
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        raise ConfigError(
                            f"migration {migration.version:04d}_{migration.name} was edited after it was applied; "
                            "add a new migration instead"
                        )
                    continue
                with conn.transaction():
                    conn.execute(migration.sql)  # type: ignore[arg-type]  # trusted, shipped SQL
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                log.info("migration.applied", version=migration.version, name=migration.name)
                applied_now.append(migration)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now


def status(db: Database) -> list[MigrationStatus]:
    """Each shipped migration and whether it is applied."""
    with db.connection() as conn:
        conn.execute(_CREATE_TABLE)
        applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    return [MigrationStatus(version=m.version, name=m.name, applied=m.version in applied) for m in discover()]
