"""The plain fused numba loops every backtest figure is measured against.

SMA(fast/slow) crossover, long only, all-in at the next bar's open with a fee, equity marked at every close:
nothing else (no trade list, no metrics, no stops, no checks). Two variants:

- ``reference_sma_cross`` is the loop as one would plainly write it: moving averages as sums divided by their
  window, compared;
- ``reference_sma_cross_tuned`` compares the cross-multiplied sums instead (no division per bar) and adds
  the new close and drops the old one in one step, the two tricks the engine's kernel uses. It is the
  stricter yardstick.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from engine.backtest._jit import njit

F64 = npt.NDArray[np.float64]


@njit()
def reference_sma_cross(o: F64, c: F64, fast: int, slow: int, fee: float, initial_cash: float, equity: F64) -> float:
    n = len(c)
    sum_fast = 0.0
    sum_slow = 0.0
    cash = initial_cash
    units = 0.0
    want = 0
    for i in range(n):
        # fill at this bar's open what the previous close decided
        if want == 1 and units == 0.0:
            units = cash / (o[i] * (1.0 + fee))
            cash -= units * o[i] * (1.0 + fee)
        elif want == 0 and units > 0.0:
            cash += units * o[i] * (1.0 - fee)
            units = 0.0
        x = c[i]
        sum_fast += x
        sum_slow += x
        if i >= fast:
            sum_fast -= c[i - fast]
        if i >= slow:
            sum_slow -= c[i - slow]
        want = 1 if i >= slow - 1 and sum_fast / fast > sum_slow / slow else 0
        equity[i] = cash + units * x
    return float(equity[n - 1])


@njit()
def reference_sma_cross_tuned(
    o: F64, c: F64, fast: int, slow: int, fee: float, initial_cash: float, equity: F64
) -> float:
    n = len(c)
    sum_fast = 0.0
    sum_slow = 0.0
    cash = initial_cash
    units = 0.0
    want = 0
    for i in range(n):
        if want == 1 and units == 0.0:
            units = cash / (o[i] * (1.0 + fee))
            cash -= units * o[i] * (1.0 + fee)
        elif want == 0 and units > 0.0:
            cash += units * o[i] * (1.0 - fee)
            units = 0.0
        x = c[i]
        sum_fast += x - c[i - fast] if i >= fast else x
        sum_slow += x - c[i - slow] if i >= slow else x
        want = 1 if i >= slow - 1 and sum_fast * slow > sum_slow * fast else 0
        equity[i] = cash + units * x
    return float(equity[n - 1])


def run_reference(o: np.ndarray, c: np.ndarray, fast: int, slow: int, fee: float, initial_cash: float) -> float:
    """The plain loop, allocating its equity curve as a backtest would."""
    equity = np.empty(len(c))
    return float(reference_sma_cross(o, c, fast, slow, fee, initial_cash, equity))


def run_reference_tuned(o: np.ndarray, c: np.ndarray, fast: int, slow: int, fee: float, initial_cash: float) -> float:
    """The tuned loop, allocating its equity curve as a backtest would."""
    equity = np.empty(len(c))
    return float(reference_sma_cross_tuned(o, c, fast, slow, fee, initial_cash, equity))
