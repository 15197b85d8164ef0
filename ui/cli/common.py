"""What CLI commands share: a database session on the configured server, quiet logging, time parsing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from engine.settings import Settings, get_settings
from engine.telemetry import configure_logging

if TYPE_CHECKING:
    from engine.store.database import Database


@contextmanager
def database(settings: Settings | None = None) -> Iterator[Database]:
    """Connect (starting the embedded server if needed), migrate, and release on exit."""
    from engine.store.database import connect
    from engine.store.migrate import upgrade

    settings = settings or get_settings()
    configure_logging("WARNING", settings.log_format, settings.secret_values())
    db = connect(settings)
    try:
        upgrade(db)
        yield db
    finally:
        db.close()


def parse_time_ms(text: str, option: str) -> int:
    """A time as people write it (``2024-01-01``, ISO 8601, epoch s/ms, ``7d ago``; no offset means UTC) -> epoch
    ms, through the one parser (``engine.data.timeparse``)."""
    from engine.data.timeparse import parse_utc_ms

    return parse_utc_ms(text, field=option)
