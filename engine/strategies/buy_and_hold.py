"""Buy and hold: long from the first bar to the last; the benchmark every other strategy is measured against."""

from __future__ import annotations

from engine.backtest._jit import njit
from engine.strategies.base import F64, I8, StrategyParams

KERNEL_ID = 8


class BuyAndHoldParams(StrategyParams):
    """No parameters."""


@njit()
def state_size(p: F64) -> int:
    return 0


@njit()
def targets_chunk(o: F64, h: F64, lo: F64, c: F64, v: F64, p: F64, st: F64, start: int, end: int, out: I8) -> None:
    for i in range(start, end):
        out[i - start] = 1
