"""Donchian channel breakout (turtle style).

Long on a close above the highest high of the previous ``window`` bars, short on a close below their lowest
low. A long is closed on a close below the lowest low of the previous ``exit_window`` bars (a short on a close
above their highest high), or reversed on an opposite breakout. Channels exclude the current bar; rolling
extremes use monotonic deques (O(1) amortised per bar), kept in the state array as ring buffers.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from engine.backtest._jit import njit
from engine.strategies.base import F64, I8, StrategyParams, not_greater_than

KERNEL_ID = 6

_HEADER = 2  # head, count


class DonchianParams(StrategyParams):
    """Entry and exit channel lengths in bars; ``exit_window`` must not exceed ``window``."""

    window: int = Field(20, ge=2, le=500, description="entry channel (bars)")
    exit_window: int = Field(10, ge=1, le=500, description="exit channel (bars)")

    _exit_le_window = field_validator("exit_window")(not_greater_than("window"))


@njit()
def state_size(p: F64) -> int:
    window = int(p[0])
    exit_window = int(p[1])
    return 1 + 2 * (_HEADER + window + 1) + 2 * (_HEADER + exit_window + 1)


@njit()
def _push(st: F64, base: int, cap: int, values: F64, j: int, is_max: bool) -> None:
    head = int(st[base])
    count = int(st[base + 1])
    x = values[j]
    while count > 0:
        back = values[int(st[base + _HEADER + (head + count - 1) % cap])]
        if (is_max and back <= x) or (not is_max and back >= x):
            count -= 1
        else:
            break
    st[base + _HEADER + (head + count) % cap] = j
    st[base + 1] = count + 1


@njit()
def _front(st: F64, base: int, cap: int, oldest: int) -> int:
    head = int(st[base])
    count = int(st[base + 1])
    while count > 0 and st[base + _HEADER + head] < oldest:
        head = (head + 1) % cap
        count -= 1
    st[base] = head
    st[base + 1] = count
    return int(st[base + _HEADER + head])


@njit()
def targets_chunk(o: F64, h: F64, lo: F64, c: F64, v: F64, p: F64, st: F64, start: int, end: int, out: I8) -> None:
    window = int(p[0])
    exit_window = int(p[1])
    cap_w = window + 1
    cap_e = exit_window + 1
    hi_w = 1
    lo_w = hi_w + _HEADER + cap_w
    hi_e = lo_w + _HEADER + cap_w
    lo_e = hi_e + _HEADER + cap_e
    pos = int(st[0])
    exit_upper = 0.0
    exit_lower = 0.0
    for i in range(start, end):
        if i >= 1:
            _push(st, hi_w, cap_w, h, i - 1, True)
            _push(st, lo_w, cap_w, lo, i - 1, False)
            _push(st, hi_e, cap_e, h, i - 1, True)
            _push(st, lo_e, cap_e, lo, i - 1, False)
        if i >= exit_window:
            exit_upper = h[_front(st, hi_e, cap_e, i - exit_window)]
            exit_lower = lo[_front(st, lo_e, cap_e, i - exit_window)]
        if i >= window:
            x = c[i]
            upper = h[_front(st, hi_w, cap_w, i - window)]
            lower = lo[_front(st, lo_w, cap_w, i - window)]
            if pos == 0:
                if x > upper:
                    pos = 1
                elif x < lower:
                    pos = -1
            elif pos == 1:
                if x < lower:
                    pos = -1
                elif x < exit_lower:
                    pos = 0
            elif x > upper:
                pos = 1
            elif x > exit_upper:
                pos = 0
        out[i - start] = pos
    st[0] = pos
