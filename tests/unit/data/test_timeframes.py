from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from engine.data.timeframes import (
    TIMEFRAMES,
    floor_ts,
    floor_ts_array,
    is_aligned,
    ms_to_timeframe,
    rollup_factor,
    timeframe_ms,
    validate_timeframe,
)
from engine.errors import ValidationFailedError


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("tf", "expected"),
    [
        ("1m", 60_000),
        ("5m", 300_000),
        ("15m", 900_000),
        ("1h", 3_600_000),
        ("4h", 14_400_000),
        ("1d", 86_400_000),
        ("1w", 604_800_000),
    ],
)
def test_timeframe_round_trip(tf: str, expected: int) -> None:
    assert timeframe_ms(tf) == expected
    assert ms_to_timeframe(expected) == tf


@pytest.mark.parametrize("bad", ["2h", "1M", "60s", "", "1H", "1min"])
def test_unsupported_timeframe_is_a_clear_error(bad: str) -> None:
    with pytest.raises(ValidationFailedError, match=r"unsupported timeframe .*supported: 1m, 5m, 15m, 1h, 4h, 1d, 1w"):
        timeframe_ms(bad)
    with pytest.raises(ValidationFailedError):
        validate_timeframe(bad)


def test_ms_without_timeframe() -> None:
    with pytest.raises(ValidationFailedError, match="no supported timeframe lasts 7200000 ms"):
        ms_to_timeframe(7_200_000)


def test_floor_to_hour_day_and_four_hours() -> None:
    t = ms(2024, 3, 5, 13, 47) + 12_345
    assert floor_ts(t, "1m") == ms(2024, 3, 5, 13, 47)
    assert floor_ts(t, "5m") == ms(2024, 3, 5, 13, 45)
    assert floor_ts(t, "15m") == ms(2024, 3, 5, 13, 45)
    assert floor_ts(t, "1h") == ms(2024, 3, 5, 13)
    assert floor_ts(t, "4h") == ms(2024, 3, 5, 12)
    assert floor_ts(t, "1d") == ms(2024, 3, 5)


def test_weekly_buckets_open_on_monday() -> None:
    # 2024-03-05 was a Tuesday; its week opened Monday 2024-03-04 00:00 UTC
    assert floor_ts(ms(2024, 3, 5, 13), "1w") == ms(2024, 3, 4)
    assert floor_ts(ms(2024, 3, 4), "1w") == ms(2024, 3, 4)
    assert floor_ts(ms(2024, 3, 3, 23, 59), "1w") == ms(2024, 2, 26)
    assert datetime.fromtimestamp(floor_ts(0, "1w") / 1000, tz=UTC).weekday() == 0


def test_floor_array_matches_scalar() -> None:
    rng = np.random.default_rng(7)
    ts = rng.integers(0, ms(2030, 1, 1), size=1000, dtype=np.int64)
    for tf in TIMEFRAMES:
        floored = floor_ts_array(ts, tf)
        assert floored.dtype == np.int64
        assert floored.tolist() == [floor_ts(int(t), tf) for t in ts]
        assert all(is_aligned(int(f), tf) for f in floored[:20])


def test_rollup_factor() -> None:
    assert rollup_factor("1m", "1h") == 60
    assert rollup_factor("1h", "1d") == 24
    assert rollup_factor("1d", "1w") == 7
    with pytest.raises(ValidationFailedError, match="cannot roll 1h bars up to 5m"):
        rollup_factor("1h", "5m")
