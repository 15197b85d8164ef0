"""Dispatch from a strategy's kernel id to its streaming target kernel, for the fused backtest kernels.

Every target kernel has the signature ``(open, high, low, close, volume, params, state, start, end, out)``: it
computes the targets of bars ``start..end-1`` into ``out[0..end-start-1]`` and keeps whatever it needs to carry
on (running sums, EMAs, deques, its own position state) in the float64 ``state`` array, whose length it
declares with ``state_size(params)``. Bars are always fed in order, in chunks of any size, so the backtest can
fuse targets, fills and metrics per chunk without materialising a target array per parameter combination.

Adding a strategy: a module with its params model, ``state_size`` and ``targets_chunk``; a branch below; a
``StrategySpec`` in :mod:`engine.strategies.registry`.
"""

from __future__ import annotations

import numpy as np

from engine.backtest._jit import njit
from engine.strategies import bollinger, buy_and_hold, donchian_breakout, ema_cross, macd, rsi_reversion, sma_cross
from engine.strategies.base import EXTERNAL_TARGETS_KERNEL, F64, I8


@njit()
def new_state(kernel_id: int, p: F64) -> F64:
    """A zeroed state array of the size the strategy asks for."""
    if kernel_id == sma_cross.KERNEL_ID:
        size = sma_cross.state_size(p)
    elif kernel_id == ema_cross.KERNEL_ID:
        size = ema_cross.state_size(p)
    elif kernel_id == rsi_reversion.KERNEL_ID:
        size = rsi_reversion.state_size(p)
    elif kernel_id in (bollinger.BREAKOUT_KERNEL_ID, bollinger.REVERSION_KERNEL_ID):
        size = bollinger.state_size(p)
    elif kernel_id == donchian_breakout.KERNEL_ID:
        size = donchian_breakout.state_size(p)
    elif kernel_id == macd.KERNEL_ID:
        size = macd.state_size(p)
    elif kernel_id == buy_and_hold.KERNEL_ID:
        size = buy_and_hold.state_size(p)
    else:
        size = 0
    return np.zeros(max(size, 1), dtype=np.float64)


@njit()
def targets_chunk(
    kernel_id: int,
    o: F64,
    h: F64,
    lo: F64,
    c: F64,
    v: F64,
    external: I8,
    p: F64,
    st: F64,
    start: int,
    end: int,
    out: I8,
) -> None:
    """Targets of bars ``start..end-1`` into ``out``; kernel 0 copies them from ``external``."""
    if kernel_id == sma_cross.KERNEL_ID:
        sma_cross.targets_chunk(o, h, lo, c, v, p, st, start, end, out)
    elif kernel_id == ema_cross.KERNEL_ID:
        ema_cross.targets_chunk(o, h, lo, c, v, p, st, start, end, out)
    elif kernel_id == rsi_reversion.KERNEL_ID:
        rsi_reversion.targets_chunk(o, h, lo, c, v, p, st, start, end, out)
    elif kernel_id == bollinger.BREAKOUT_KERNEL_ID:
        bollinger.breakout_chunk(o, h, lo, c, v, p, st, start, end, out)
    elif kernel_id == bollinger.REVERSION_KERNEL_ID:
        bollinger.reversion_chunk(o, h, lo, c, v, p, st, start, end, out)
    elif kernel_id == donchian_breakout.KERNEL_ID:
        donchian_breakout.targets_chunk(o, h, lo, c, v, p, st, start, end, out)
    elif kernel_id == macd.KERNEL_ID:
        macd.targets_chunk(o, h, lo, c, v, p, st, start, end, out)
    elif kernel_id == buy_and_hold.KERNEL_ID:
        buy_and_hold.targets_chunk(o, h, lo, c, v, p, st, start, end, out)
    elif kernel_id == EXTERNAL_TARGETS_KERNEL:
        for i in range(start, end):
            out[i - start] = external[i]
    else:
        raise ValueError("unknown strategy kernel id")


@njit()
def targets_full(kernel_id: int, o: F64, h: F64, lo: F64, c: F64, v: F64, p: F64) -> I8:
    """The targets of every bar, computed in one chunk."""
    n = len(c)
    out = np.zeros(n, dtype=np.int8)
    targets_chunk(kernel_id, o, h, lo, c, v, np.zeros(0, dtype=np.int8), p, new_state(kernel_id, p), 0, n, out)
    return out
