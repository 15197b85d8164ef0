"""What CLI commands share: a database session on the configured server, quiet logging, time parsing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from engine.errors import ValidationFailedError
from engine.settings import Settings, get_settings
from engine.store.database import Database, connect
from engine.store.migrate import upgrade
from engine.telemetry import configure_logging


@contextmanager
def database(settings: Settings | None = None) -> Iterator[Database]:
    """Connect (starting the embedded server if needed), migrate, and release on exit."""
    settings = settings or get_settings()
    configure_logging("WARNING", settings.log_format, settings.secret_values())
    db = connect(settings)
    try:
        upgrade(db)
        yield db
    finally:
        db.close()


def parse_time_ms(text: str, option: str) -> int:
    """``2024-01-01``, ``2024-01-01T12:00``, or epoch milliseconds -> epoch ms (UTC)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationFailedError(f"{option}: {text!r} is not a date (use YYYY-MM-DD or ISO 8601)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
