"""Bollinger bands (mean +- k population standard deviations of the close over ``window`` bars), two ways.

- ``bollinger_breakout``: long on a close above the upper band, short below the lower band; a position is
  closed when the close crosses back over the middle band (or reversed at the opposite band).
- ``bollinger_reversion``: long on a close below the lower band, short above the upper band; closed when the
  close reaches the middle band (or reversed at the opposite band).

The rolling mean and variance are updated in O(1) per bar (Welford's update, adding and removing a bar).
"""

from __future__ import annotations

import math

from pydantic import Field

from engine.backtest._jit import njit
from engine.strategies.base import F64, I8, StrategyParams

BREAKOUT_KERNEL_ID = 4
REVERSION_KERNEL_ID = 5


class BollingerParams(StrategyParams):
    """Band window in bars and width in standard deviations."""

    window: int = Field(20, ge=5, le=500, description="band window (bars)")
    k: float = Field(2.0, ge=0.5, le=4.0, description="band half-width in standard deviations")


@njit()
def state_size(p: F64) -> int:
    return 3


@njit()
def _bands_chunk(c: F64, p: F64, st: F64, start: int, end: int, reversion: bool, out: I8) -> None:
    window = int(p[0])
    k = p[1]
    mean = st[0]
    m2 = st[1]
    pos = int(st[2])
    for i in range(start, end):
        x = c[i]
        if i < window:
            d = x - mean
            mean += d / (i + 1)
            m2 += d * (x - mean)
        else:
            x_old = c[i - window]
            mean_old = mean
            mean = mean_old + (x - x_old) / window
            m2 += (x - x_old) * (x - mean + x_old - mean_old)
        if i >= window - 1:
            var = m2 / window
            sd = math.sqrt(var) if var > 0.0 else 0.0
            up = mean + k * sd
            dn = mean - k * sd
            if reversion:
                if pos == 0:
                    if x < dn:
                        pos = 1
                    elif x > up:
                        pos = -1
                elif pos == 1:
                    if x > up:
                        pos = -1
                    elif x >= mean:
                        pos = 0
                elif x < dn:
                    pos = 1
                elif x <= mean:
                    pos = 0
            elif pos == 0:
                if x > up:
                    pos = 1
                elif x < dn:
                    pos = -1
            elif pos == 1:
                if x < dn:
                    pos = -1
                elif x < mean:
                    pos = 0
            elif x > up:
                pos = 1
            elif x > mean:
                pos = 0
        out[i - start] = pos
    st[0] = mean
    st[1] = m2
    st[2] = pos


@njit()
def breakout_chunk(o: F64, h: F64, lo: F64, c: F64, v: F64, p: F64, st: F64, start: int, end: int, out: I8) -> None:
    _bands_chunk(c, p, st, start, end, False, out)


@njit()
def reversion_chunk(o: F64, h: F64, lo: F64, c: F64, v: F64, p: F64, st: F64, start: int, end: int, out: I8) -> None:
    _bands_chunk(c, p, st, start, end, True, out)
