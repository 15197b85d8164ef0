"""Bar timeframes: the supported strings, their length in milliseconds, and flooring timestamps to them.

All timestamps are integer milliseconds since the Unix epoch, UTC. A bar's ``ts`` is the open time of
its bucket. Buckets of up to one day are aligned to the epoch (so daily bars open at 00:00 UTC);
weekly buckets open on Monday 00:00 UTC, as on Binance and in ccxt (the epoch itself was a Thursday).
"""

from __future__ import annotations

import re
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


_TIMEFRAME_WORDS: Final[dict[str, str]] = {
    "minutely": "1m", "minute": "1m", "min": "1m",
    "hourly": "1h", "hour": "1h", "hr": "1h",
    "4-hourly": "4h", "4hourly": "4h",
    "daily": "1d", "day": "1d", "d": "1d",
    "weekly": "1w", "week": "1w", "wk": "1w", "w": "1w",
}  # fmt: skip
_TIMEFRAME_UNIT_MS: Final[dict[str, int]] = {
    "m": MINUTE_MS, "min": MINUTE_MS, "mins": MINUTE_MS, "minute": MINUTE_MS, "minutes": MINUTE_MS,
    "h": HOUR_MS, "hr": HOUR_MS, "hrs": HOUR_MS, "hour": HOUR_MS, "hours": HOUR_MS,
    "d": DAY_MS, "day": DAY_MS, "days": DAY_MS,
    "w": WEEK_MS, "wk": WEEK_MS, "week": WEEK_MS, "weeks": WEEK_MS,
}  # fmt: skip
_TIMEFRAME_TEXT: Final = re.compile(r"^(?P<n>\d+)?\s*-?\s*(?P<unit>[a-z]+)$")
_UNIT_FIRST: Final = re.compile(r"^(?P<unit>[mhdw])(?P<n>\d+)$")  # MetaTrader style: H1, M15, D1


def parse_timeframe(text: str, *, field: str = "timeframe") -> Timeframe:
    """A supported timeframe from what people write: ``1h``, ``1H``, ``60m``, ``1 hour``, ``hourly``, ``H1``,
    ``daily``, ``1D``, ``day``, ``24h``, ``weekly``, ``7d`` ...; ValidationFailedError naming the field and the
    supported values otherwise. ``1M`` (ccxt's month) is refused rather than read as a minute."""
    if not isinstance(text, str) or not text.strip():
        raise ValidationFailedError(f"{field}: expected a timeframe, one of {_supported()}")
    raw = " ".join(text.strip().split())
    if raw in TIMEFRAMES:
        return raw  # type: ignore[return-value]
    if re.fullmatch(r"\d*\s*M", raw):
        raise ValidationFailedError(
            f"{field}: {text!r} means months in ccxt, which IQTS does not store; supported: {_supported()}"
        )
    lowered = raw.lower()
    if lowered in _TIMEFRAME_WORDS:
        return _TIMEFRAME_WORDS[lowered]  # type: ignore[return-value]
    ms: int | None = None
    match = _TIMEFRAME_TEXT.match(lowered) or _UNIT_FIRST.match(lowered)
    if match is not None and match["unit"] in _TIMEFRAME_UNIT_MS:
        ms = int(match["n"] or 1) * _TIMEFRAME_UNIT_MS[match["unit"]]
    if ms is None or ms not in _MS_TO_TIMEFRAME:
        raise ValidationFailedError(
            f"{field}: unsupported timeframe {text!r}; supported: {_supported()} "
            "(words like 'hourly', '1 hour', '60m', 'daily' or 'weekly' work too)"
        )
    return _MS_TO_TIMEFRAME[ms]  # type: ignore[return-value]
