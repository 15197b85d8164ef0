"""The one parser of points in time that people and agents write: a naive value means UTC, always.

Accepted (``parse_utc``):

* ISO 8601 dates and datetimes: ``2020-01-17``, ``2020-01-17T09:30``, ``2020-01-17 09:30:00``, basic forms
  such as ``20200117T0930``; with ``Z`` or an offset (``+02:00``) the instant is converted to UTC, without
  one it is read as UTC (never as the host's local time);
* epoch numbers: milliseconds (``1579219200000``) or seconds (``1579219200``, ``1579219200.5``); a number
  of at least 10^11 is read as milliseconds (10^11 seconds would be the year 5138);
* ``now``, ``today`` (00:00 UTC), ``yesterday``, and relative forms ``7d ago``, ``3 hours ago``,
  ``-90m``, ``2w ago`` (units: s, m/min, h, d, w);
* a ``datetime`` (naive -> UTC) or a ``date`` (00:00 UTC).

Errors are ``ValidationFailedError`` naming the field and the accepted forms. ``UtcDateTime`` is the
pydantic type for tool and API arguments that applies this parser.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Final

from pydantic import BeforeValidator, WithJsonSchema

from engine.errors import ValidationFailedError

MS_THRESHOLD: Final = 10**11
"""Epoch numbers at or above this are milliseconds, below it seconds."""
FORMS: Final = (
    "an ISO 8601 date or datetime (2020-01-17, 2020-01-17T09:30Z; no offset means UTC), epoch seconds or "
    "milliseconds, 'now', 'today', 'yesterday' or a relative time like '7d ago'"
)

_UNITS: Final[dict[str, timedelta]] = {
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
_UNIT_WORDS: Final[dict[str, str]] = {
    "s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s",
    "m": "m", "min": "m", "mins": "m", "minute": "m", "minutes": "m",
    "h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
    "d": "d", "day": "d", "days": "d",
    "w": "w", "wk": "w", "wks": "w", "week": "w", "weeks": "w",
}  # fmt: skip
_RELATIVE: Final = re.compile(r"^(?:-\s*(?P<n1>\d+)\s*(?P<u1>[a-z]+)|(?P<n2>\d+)\s*(?P<u2>[a-z]+)\s+ago)$")
_NUMBER: Final = re.compile(r"^\d+(?:\.\d+)?$")


def _from_epoch(number: float, field: str) -> datetime:
    if number < 0:
        raise ValidationFailedError(f"{field}: epoch time {number:g} is before 1970")
    seconds = number / 1000 if number >= MS_THRESHOLD else number
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise ValidationFailedError(f"{field}: epoch time {number:g} is out of range") from None


def _relative(text: str, now: datetime, field: str) -> datetime | None:
    lowered = " ".join(text.lower().split())
    if lowered == "now":
        return now
    if lowered in ("today", "yesterday"):
        midnight = datetime.combine(now.date(), time(), tzinfo=UTC)
        return midnight if lowered == "today" else midnight - timedelta(days=1)
    match = _RELATIVE.match(lowered)
    if match is None:
        return None
    count = int(match["n1"] or match["n2"])
    unit = _UNIT_WORDS.get(match["u1"] or match["u2"])
    if unit is None:
        raise ValidationFailedError(f"{field}: unknown time unit in {text!r}; use s, m, h, d or w (e.g. '7d ago')")
    return now - count * _UNITS[unit]


def to_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken to be UTC already (never host local time)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_utc(value: Any, *, field: str = "time", now: datetime | None = None) -> datetime:
    """A timezone-aware UTC datetime from what a person or agent wrote (see the module docstring)."""
    if isinstance(value, datetime):
        return to_utc(value)
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=UTC)
    if isinstance(value, bool):
        raise ValidationFailedError(f"{field}: expected {FORMS}, got {value!r}")
    if isinstance(value, int | float):
        return _from_epoch(float(value), field)
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailedError(f"{field}: expected {FORMS}, got {value!r}")
    text = value.strip()
    if _NUMBER.match(text):
        return _from_epoch(float(text), field)
    relative = _relative(text, to_utc(now) if now is not None else datetime.now(UTC), field)
    if relative is not None:
        return relative
    iso = text[:-1] + "+00:00" if text[-1:] in ("z", "Z") else text
    try:
        return to_utc(datetime.fromisoformat(iso))
    except ValueError:
        raise ValidationFailedError(f"{field}: {text!r} is not a time; use {FORMS}") from None


def parse_utc_ms(value: Any, *, field: str = "time", now: datetime | None = None) -> int:
    """Like :func:`parse_utc`, as integer milliseconds since the epoch."""
    return datetime_to_ms(parse_utc(value, field=field, now=now))


def datetime_to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch; naive means UTC."""
    utc = to_utc(moment)
    return (utc - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def ms_to_utc(ms: int) -> datetime:
    """The UTC datetime of epoch milliseconds."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def _validate(value: Any) -> Any:
    try:
        return parse_utc(value, field="value")
    except ValidationFailedError as error:
        raise ValueError(str(error).removeprefix("value: ")) from None


UtcDateTime = Annotated[
    datetime,
    BeforeValidator(_validate),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string"}, {"type": "integer"}],
            "description": "UTC time: ISO 8601 (naive = UTC), epoch s/ms, 'now', '7d ago'",
        }
    ),
]
"""A datetime argument parsed by :func:`parse_utc`: always timezone-aware UTC."""
