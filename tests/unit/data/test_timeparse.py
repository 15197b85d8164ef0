"""The one UTC time parser: ISO 8601, offsets, epoch s/ms, relative forms; a naive value is UTC, always."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from engine.data.timeparse import UtcDateTime, datetime_to_ms, parse_utc, parse_utc_ms
from engine.errors import ValidationFailedError

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
JAN17 = datetime(2020, 1, 17, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-01-17", JAN17),
        ("2020-01-17T09:30", JAN17 + timedelta(hours=9, minutes=30)),
        ("2020-01-17 09:30:00", JAN17 + timedelta(hours=9, minutes=30)),
        ("2020-01-17T09:30Z", JAN17 + timedelta(hours=9, minutes=30)),
        ("2020-01-17t09:30z", JAN17 + timedelta(hours=9, minutes=30)),
        ("2020-01-17T09:30+02:00", JAN17 + timedelta(hours=7, minutes=30)),
        ("2020-01-17T09:30:00.250-05:00", JAN17 + timedelta(hours=14, minutes=30, milliseconds=250)),
        ("20200117T0930", JAN17 + timedelta(hours=9, minutes=30)),
        ("1579219200000", JAN17),  # epoch ms
        ("1579219200", JAN17),  # epoch s
        ("1579219200.5", JAN17 + timedelta(milliseconds=500)),
        ("now", NOW),
        ("today", datetime(2024, 5, 1, tzinfo=UTC)),
        ("yesterday", datetime(2024, 4, 30, tzinfo=UTC)),
        ("7d ago", NOW - timedelta(days=7)),
        ("3 hours ago", NOW - timedelta(hours=3)),
        ("-90m", NOW - timedelta(minutes=90)),
        ("2w ago", NOW - timedelta(weeks=2)),
        (" 2020-01-17 ", JAN17),
    ],
)
def test_written_times_parse_to_utc(text: str, expected: datetime) -> None:
    parsed = parse_utc(text, now=NOW)
    assert parsed == expected and parsed.utcoffset() == timedelta(0)


def test_values_that_are_already_times_or_numbers() -> None:
    assert parse_utc(datetime(2020, 1, 17, 9)) == JAN17 + timedelta(hours=9)  # naive: UTC
    assert parse_utc(datetime(2020, 1, 17, 9, tzinfo=timezone(timedelta(hours=1)))) == JAN17 + timedelta(hours=8)
    assert parse_utc(date(2020, 1, 17)) == JAN17
    assert parse_utc(1_579_219_200_000) == parse_utc(1_579_219_200) == JAN17
    assert parse_utc_ms("2020-01-17") == 1_579_219_200_000
    assert datetime_to_ms(datetime(2020, 1, 17)) == 1_579_219_200_000


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("17/01/2020", "since: '17/01/2020' is not a time"),
        ("soon", "since: 'soon' is not a time"),
        ("", "since: expected an ISO 8601"),
        (None, "since: expected an ISO 8601"),
        (True, "since: expected an ISO 8601"),
        (-5, "since: epoch time -5 is before 1970"),
        ("3 fortnights ago", "since: unknown time unit"),
        (10**20, "since: epoch time 1e+20 is out of range"),
    ],
)
def test_bad_times_name_the_field_and_the_forms(value: object, message: str) -> None:
    with pytest.raises(ValidationFailedError) as raised:
        parse_utc(value, field="since", now=NOW)
    assert str(raised.value).startswith(message)


def test_the_pydantic_type_parses_and_explains() -> None:
    adapter = TypeAdapter(UtcDateTime)
    assert adapter.validate_python("2020-01-17T09:30") == JAN17 + timedelta(hours=9, minutes=30)
    assert adapter.validate_python(1_579_219_200_000) == JAN17
    with pytest.raises(ValidationError, match="'next week' is not a time"):
        adapter.validate_python("next week")
    assert adapter.json_schema()["anyOf"] == [{"type": "string"}, {"type": "integer"}]


def test_naive_means_utc_under_a_berlin_host_clock() -> None:
    """In a process whose local time is Berlin's (UTC+1 in January, +2 in July), naive input still means UTC."""
    script = (
        "import json, time\n"
        "from datetime import datetime\n"
        "from engine.data.timeparse import parse_utc_ms, datetime_to_ms\n"
        "print(json.dumps({'offset': time.strftime('%z', time.localtime(1579219200)),\n"
        "  'summer_offset': time.strftime('%z', time.localtime(1593561600)),\n"
        "  'text': parse_utc_ms('2020-01-17T09:30'), 'summer': parse_utc_ms('2020-07-01 00:00'),\n"
        "  'date': parse_utc_ms('2020-01-17'), 'naive': datetime_to_ms(datetime(2020, 1, 17, 9, 30)),\n"
        "  'local_would_be': int(datetime(2020, 1, 17, 9, 30).timestamp() * 1000)}))\n"
    )
    env = os.environ | {"TZ": "Europe/Berlin"}
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert (seen["offset"], seen["summer_offset"]) == ("+0100", "+0200")  # the clock really is Berlin's
    nine_thirty = 1_579_219_200_000 + (9 * 60 + 30) * 60_000
    assert seen["text"] == seen["naive"] == nine_thirty
    assert seen["date"] == 1_579_219_200_000 and seen["summer"] == 1_593_561_600_000
    assert seen["local_would_be"] == nine_thirty - 3_600_000  # what reading it as local time gets wrong
