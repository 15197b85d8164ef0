"""The one place engine code imports numba from: the cache dir is set first, and the decorator is typed.

``njit`` keeps the decorated function's signature for type checkers (numba ships no stubs), so kernels need
no ``type: ignore``; every kernel is compiled with ``cache=True`` into ``NUMBA_CACHE_DIR``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from engine.backtest._numba_cache import ensure_numba_cache_dir

ensure_numba_cache_dir()

import numba  # noqa: E402

F = TypeVar("F", bound=Callable[..., Any])

prange: Any = numba.prange


def njit(*, parallel: bool = False, inline: bool = False) -> Callable[[F], F]:
    """``numba.njit(cache=True)``, typed as the identity.

    ``parallel=True`` enables ``prange``; ``inline=True`` inlines the function into its callers at numba's IR
    level (small per-bar helpers, so that their state stays in registers). Strict IEEE arithmetic (no
    fastmath): results are reproducible to the bit and equal between single runs and grids.
    """
    decorator = numba.njit(
        cache=True,
        parallel=parallel,
        nogil=True,
        inline="always" if inline else "never",
        # IEEE division (x / 0 -> inf/nan) instead of Python's ZeroDivisionError: no check and branch before
        # every division in the bar loops. Kernels guard the divisions whose result matters.
        error_model="numpy",
    )
    return cast(Callable[[F], F], decorator)


def num_threads() -> int:
    """Threads numba's parallel kernels use (``NUMBA_NUM_THREADS``, default: the CPU count)."""
    return int(numba.get_num_threads())


@contextmanager
def one_item_per_task() -> Iterator[None]:
    """``prange`` loops started inside hand out one iteration at a time (numba's default splits the range into
    one static block per thread: one descheduled thread then holds up the whole loop). For loops whose
    iterations are whole backtests, the scheduling overhead is nothing."""
    previous = numba.set_parallel_chunksize(1)
    try:
        yield
    finally:
        numba.set_parallel_chunksize(previous)
