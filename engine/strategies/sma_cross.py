"""SMA crossover: long while the fast simple moving average is above the slow one, short while below."""

from __future__ import annotations

from pydantic import Field, field_validator

from engine.backtest._jit import njit
from engine.strategies.base import F64, I8, StrategyParams, greater_than

KERNEL_ID = 1


class SmaCrossParams(StrategyParams):
    """Window lengths in bars; ``slow`` must exceed ``fast``."""

    fast: int = Field(10, ge=2, le=400, description="fast SMA window (bars)")
    slow: int = Field(50, ge=3, le=1000, description="slow SMA window (bars)")

    _slow_gt_fast = field_validator("slow")(greater_than("fast"))


@njit()
def state_size(p: F64) -> int:
    return 2


@njit()
def targets_chunk(o: F64, h: F64, lo: F64, c: F64, v: F64, p: F64, st: F64, start: int, end: int, out: I8) -> None:
    """Bars ``start..end-1`` into ``out[0..end-start-1]``; ``st`` carries the two running window sums.

    Each sum adds the new close and drops the oldest in one step (one dependent addition per bar), and the
    means are compared cross-multiplied (``fast_sum * slow`` vs ``slow_sum * fast``: no division per bar).
    The steady-state loop runs over aligned views, so that no index needs a negative-index check.
    """
    fast = int(p[0])
    slow = int(p[1])
    sum_fast = st[0]
    sum_slow = st[1]
    res = out[: end - start]
    i = start
    while i < end and i < slow:  # warm-up: the slow window is still filling
        x = c[i]
        sum_fast += x - c[i - fast] if i >= fast else x
        sum_slow += x
        target = 0
        if i == slow - 1:
            lhs = sum_fast * slow
            rhs = sum_slow * fast
            target = 1 if lhs > rhs else (-1 if lhs < rhs else 0)
        res[i - start] = target
        i += 1
    if i < end:
        now = c[i:end]
        leaving_fast = c[i - fast : end - fast]
        leaving_slow = c[i - slow : end - slow]
        steady = res[i - start :]
        for k in range(end - i):
            sum_fast += now[k] - leaving_fast[k]
            sum_slow += now[k] - leaving_slow[k]
            lhs = sum_fast * slow
            rhs = sum_slow * fast
            steady[k] = 1 if lhs > rhs else (-1 if lhs < rhs else 0)
    st[0] = sum_fast
    st[1] = sum_slow
