"""Bar timeframes: the supported strings, their length in milliseconds, and flooring timestamps to them.

All timestamps are integer milliseconds since the Unix epoch, UTC. A bar's ``ts`` is the open time of
its bucket. Buckets of up to one day are aligned to the epoch (so daily bars open at 00:00 UTC);
weekly buckets open on Monday 00:00 UTC, as on Binance and in ccxt (the epoch itself was a Thursday).
"""

from __future__ import annotations

from typing import Final, Literal, get_args

import numpy as np
import numpy.typing as npt

from engine.errors import ValidationFailedError

Timeframe = Literal["1m", "5m", "15m", "1h", "4h", "1d", "1w"]

MINUTE_MS: Final = 60_000
HOUR_MS: Final = 60 * MINUTE_MS
DAY_MS: Final = 24 * HOUR_MS
WEEK_MS: Final = 7 * DAY_MS

# 1970-01-01 was a Thursday: the first Monday 00:00 UTC after the epoch is 4 days in.
WEEK_ORIGIN_MS: Final = 4 * DAY_MS

TIMEFRAMES: Final[dict[str, int]] = {
    "1m": MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "1h": HOUR_MS,
    "4h": 4 * HOUR_MS,
    "1d": DAY_MS,
    "1w": WEEK_MS,
}
"""Supported timeframe -> length in milliseconds, shortest first."""

_MS_TO_TIMEFRAME: Final[dict[int, str]] = {ms: tf for tf, ms in TIMEFRAMES.items()}

assert set(get_args(Timeframe)) == set(TIMEFRAMES), "Timeframe literal and TIMEFRAMES disagree"


def _supported() -> str:
    return ", ".join(TIMEFRAMES)


def validate_timeframe(timeframe: str) -> Timeframe:
    """Return ``timeframe`` if supported, else raise ValidationFailedError naming the supported ones."""
    if timeframe not in TIMEFRAMES:
        raise ValidationFailedError(f"unsupported timeframe {timeframe!r}; supported: {_supported()}")
    return timeframe  # type: ignore[return-value]


def timeframe_ms(timeframe: str) -> int:
    """Length of one bar of ``timeframe`` in milliseconds ("1h" -> 3_600_000)."""
    return TIMEFRAMES[validate_timeframe(timeframe)]


def ms_to_timeframe(ms: int) -> Timeframe:
    """The timeframe whose bars last ``ms`` milliseconds (3_600_000 -> "1h")."""
    try:
        return _MS_TO_TIMEFRAME[ms]  # type: ignore[return-value]
    except KeyError:
        raise ValidationFailedError(f"no supported timeframe lasts {ms} ms; supported: {_supported()}") from None


def _origin(timeframe: str) -> int:
    return WEEK_ORIGIN_MS if timeframe == "1w" else 0


def floor_ts(ts: int, timeframe: str) -> int:
    """Open time of the ``timeframe`` bucket containing ``ts`` (ms UTC)."""
    step = timeframe_ms(timeframe)
    origin = _origin(timeframe)
    return ts - (ts - origin) % step


def floor_ts_array(ts: npt.NDArray[np.int64], timeframe: str) -> npt.NDArray[np.int64]:
    """Vectorised :func:`floor_ts` over an int64 array."""
    step = timeframe_ms(timeframe)
    origin = _origin(timeframe)
    arr = np.asarray(ts, dtype=np.int64)
    floored: npt.NDArray[np.int64] = arr - (arr - origin) % step
    return floored


def is_aligned(ts: int, timeframe: str) -> bool:
    """Whether ``ts`` is the open time of a ``timeframe`` bucket."""
    return floor_ts(ts, timeframe) == ts


def rollup_factor(source: str, target: str) -> int:
    """How many ``source`` bars make one ``target`` bar ("1m" -> "1h" is 60).

    Raises ValidationFailedError when ``target`` is not a whole multiple of ``source`` (or is shorter).
    """
    src = timeframe_ms(source)
    dst = timeframe_ms(target)
    if dst < src or dst % src != 0:
        raise ValidationFailedError(f"cannot roll {source} bars up to {target}: {target} is not a multiple of {source}")
    return dst // src
