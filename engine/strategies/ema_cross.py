"""EMA crossover: long while the fast exponential moving average is above the slow one, short while below.

EMAs use ``alpha = 2 / (span + 1)``, seeded with the first close (pandas ``ewm(span, adjust=False)``); no signal
before ``slow`` bars have been seen.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from engine.backtest._jit import njit
from engine.strategies.base import F64, I8, StrategyParams, greater_than

KERNEL_ID = 2


class EmaCrossParams(StrategyParams):
    """Spans in bars; ``slow`` must exceed ``fast``."""

    fast: int = Field(12, ge=2, le=400, description="fast EMA span (bars)")
    slow: int = Field(26, ge=3, le=1000, description="slow EMA span (bars)")

    _slow_gt_fast = field_validator("slow")(greater_than("fast"))


@njit()
def state_size(p: F64) -> int:
    return 2


@njit()
def targets_chunk(o: F64, h: F64, lo: F64, c: F64, v: F64, p: F64, st: F64, start: int, end: int, out: I8) -> None:
    slow = int(p[1])
    alpha_fast = 2.0 / (p[0] + 1.0)
    alpha_slow = 2.0 / (p[1] + 1.0)
    ema_fast = st[0]
    ema_slow = st[1]
    for i in range(start, end):
        x = c[i]
        if i == 0:
            ema_fast = x
            ema_slow = x
        else:
            ema_fast = (1.0 - alpha_fast) * ema_fast + alpha_fast * x
            ema_slow = (1.0 - alpha_slow) * ema_slow + alpha_slow * x
        target = 0
        if i >= slow - 1:
            if ema_fast > ema_slow:
                target = 1
            elif ema_fast < ema_slow:
                target = -1
        out[i - start] = target
    st[0] = ema_fast
    st[1] = ema_slow
