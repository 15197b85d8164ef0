"""The process-wide runtime: settings, logging, the database (embedded or not) and the bus."""

from __future__ import annotations

from dataclasses import dataclass

from engine import chaos
from engine.bus import Bus, make_bus
from engine.settings import Settings
from engine.store.database import Database, connect
from engine.store.migrate import upgrade
from engine.telemetry import configure_logging, get_logger

log = get_logger(__name__)


@dataclass
class Runtime:
    """What every IQTS process holds. Build with ``Runtime.start``; release with ``aclose``."""

    settings: Settings
    db: Database
    bus: Bus

    @classmethod
    def start(cls, settings: Settings, *, migrate: bool = True, logging: bool = True) -> Runtime:
        if logging:
            configure_logging(settings.log_level, settings.log_format, settings.secret_values())
        chaos.arm(settings.chaos_kill_at, settings.mode)  # off unless the chaos suite set IQTS_CHAOS_KILL_AT
        db = connect(settings)
        try:
            if migrate:
                upgrade(db)
            bus = make_bus(settings)
        except BaseException:
            db.close()
            raise
        return cls(settings=settings, db=db, bus=bus)

    @property
    def database_description(self) -> str:
        if self.db.embedded is not None:
            return f"embedded PostgreSQL 18 + pgvector (socket {self.db.embedded.layout.socket_dir})"
        from engine.store.database import describe_target

        return f"PostgreSQL at {describe_target(self.db.url)}"

    @property
    def bus_description(self) -> str:
        return "Redis Streams" if self.settings.redis_url is not None else "in-process"

    async def aclose(self) -> None:
        await self.bus.close()
        self.db.close()
