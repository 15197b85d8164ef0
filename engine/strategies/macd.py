"""MACD: long while the MACD line (fast EMA minus slow EMA of the close) is above its signal line, short below.

EMAs as in ``ema_cross`` (seeded with the first value); the signal line is an EMA of the MACD line seeded with
its first value (0). No signal before ``slow + signal - 1`` bars have been seen.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from engine.backtest._jit import njit
from engine.strategies.base import F64, I8, StrategyParams, greater_than

KERNEL_ID = 7


class MacdParams(StrategyParams):
    """Spans in bars; ``slow`` must exceed ``fast``."""

    fast: int = Field(12, ge=2, le=200, description="fast EMA span (bars)")
    slow: int = Field(26, ge=3, le=500, description="slow EMA span (bars)")
    signal: int = Field(9, ge=2, le=200, description="signal-line EMA span (bars)")

    _slow_gt_fast = field_validator("slow")(greater_than("fast"))


@njit()
def state_size(p: F64) -> int:
    return 3


@njit()
def targets_chunk(o: F64, h: F64, lo: F64, c: F64, v: F64, p: F64, st: F64, start: int, end: int, out: I8) -> None:
    warmup = int(p[1]) + int(p[2]) - 2
    alpha_fast = 2.0 / (p[0] + 1.0)
    alpha_slow = 2.0 / (p[1] + 1.0)
    alpha_signal = 2.0 / (p[2] + 1.0)
    ema_fast = st[0]
    ema_slow = st[1]
    signal = st[2]
    for i in range(start, end):
        x = c[i]
        if i == 0:
            ema_fast = x
            ema_slow = x
            signal = 0.0
        else:
            ema_fast = (1.0 - alpha_fast) * ema_fast + alpha_fast * x
            ema_slow = (1.0 - alpha_slow) * ema_slow + alpha_slow * x
            signal = (1.0 - alpha_signal) * signal + alpha_signal * (ema_fast - ema_slow)
        line = ema_fast - ema_slow
        target = 0
        if i >= warmup:
            if line > signal:
                target = 1
            elif line < signal:
                target = -1
        out[i - start] = target
    st[0] = ema_fast
    st[1] = ema_slow
    st[2] = signal
