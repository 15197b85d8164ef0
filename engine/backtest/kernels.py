"""Fused numba kernels of the vectorised path: targets -> fills -> equity -> metrics, chunk by chunk.

One run streams its bars in chunks. Per chunk, three tight loops run over data that stays in cache: the
strategy's target kernel (running windows, no per-run indicator arrays), the fill simulation below, and the
metrics accumulator. A single run records the equity curve, positions, trades and fills; a grid run
(:func:`grid_kernel`) evaluates many parameter sets in parallel through the very same :func:`run_one`, keeping
only per-combination metrics, so its numbers are identical to single runs and its memory is a few chunk
buffers per thread.

Conventions (see :class:`engine.backtest.config.BacktestConfig`): all-in sizing (``units = equity / (price *
(1 + fee))``, rounded down to ``lot``), fees on traded notional per fill, adverse slippage per market fill
(a take-profit is a limit order: it fills at its level, or at a better open it gapped to, with no slippage;
the event-driven path books it the same way), stops relative to the entry fill price. Equity is marked at every
close: ``cash + units * close``. A short whose equity reaches zero is liquidated at that close and the run stops
trading (equity stays 0); the last trade's P&L is then what the account lost (down to zero), so the trades'
P&L always sums to the equity's change.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from engine.backtest import metrics
from engine.backtest._jit import njit, prange
from engine.strategies import kernels as strategy_kernels
from engine.strategies.base import F64, I8

F64_2D = npt.NDArray[np.float64]

# simulation state layout
S_CASH = 0
S_UNITS = 1
S_POS = 2
S_ENTRY_PX = 3
S_ENTRY_IDX = 4
S_ENTRY_COST = 5
S_ENTRY_FEE = 6
S_EXTREME = 7
S_PENDING = 8
S_BLOCKED = 9
S_N_TRADES = 10
S_N_FILLS = 11
S_BUST = 12
SIM_SIZE = 13

# trade record columns
T_ENTRY_IDX = 0
T_EXIT_IDX = 1
T_SIDE = 2
T_QTY = 3
T_ENTRY_PX = 4
T_EXIT_PX = 5
T_PNL = 6
T_RETURN = 7
T_FEES = 8
T_REASON = 9
T_OPEN = 10
N_TRADE_COLS = 11

# fill record columns
F_IDX = 0
F_QTY = 1
F_PX = 2
F_FEE = 3
F_REASON = 4
N_FILL_COLS = 5

# why a position was closed (or a fill happened)
R_SIGNAL = 0
R_STOP_LOSS = 1
R_TAKE_PROFIT = 2
R_TRAILING_STOP = 3
R_LIQUIDATION = 4
R_END_OF_DATA = 5
REASONS = ("signal", "stop_loss", "take_profit", "trailing_stop", "liquidation", "end_of_data")

_INITIAL_RECORDS = 256
# records one bar can add at most: a signal close and open, a stop exit, a liquidation
_MAX_FILLS_PER_BAR = 4
_MAX_TRADES_PER_BAR = 3


@njit()
def _ensure(buf: F64_2D, used: int, needed: int) -> F64_2D:
    """``buf`` itself if it has ``needed`` rows, else a copy with at least twice as many (first ``used`` kept).

    Called between calls of the bar loop, never inside it: an array variable reassigned in a numba loop costs
    reference-count traffic on every iteration."""
    if needed <= buf.shape[0]:
        return buf
    bigger = np.empty((max(needed, 2 * buf.shape[0]), buf.shape[1]), dtype=np.float64)
    bigger[:used] = buf[:used]
    return bigger


@njit(inline=True)
def stop_hit(
    side: int, entry: float, extreme: float, o: float, h: float, lo: float, sl: float, tp: float, ts: float
) -> tuple[float, int]:
    """The price at which a stop, trailing stop or take-profit closes a ``side`` position in this bar, and
    why; ``(-1, -1)`` if none does. A gap through a level fills at the open; the stop side is checked first."""
    if side > 0:
        stop = -np.inf
        why = R_STOP_LOSS
        if not math.isnan(sl):
            stop = entry * (1.0 - sl)
        if not math.isnan(ts) and extreme * (1.0 - ts) > stop:
            stop = extreme * (1.0 - ts)
            why = R_TRAILING_STOP
        take = entry * (1.0 + tp) if not math.isnan(tp) else np.inf
        if o <= stop:
            return o, why
        if o >= take:
            return o, R_TAKE_PROFIT
        if lo <= stop:
            return stop, why
        if h >= take:
            return take, R_TAKE_PROFIT
    else:
        stop = np.inf
        why = R_STOP_LOSS
        if not math.isnan(sl):
            stop = entry * (1.0 + sl)
        if not math.isnan(ts) and extreme * (1.0 + ts) < stop:
            stop = extreme * (1.0 + ts)
            why = R_TRAILING_STOP
        take = entry * (1.0 - tp) if not math.isnan(tp) else -np.inf
        if o >= stop:
            return o, why
        if o <= take:
            return o, R_TAKE_PROFIT
        if h >= stop:
            return stop, why
        if lo <= take:
            return take, R_TAKE_PROFIT
    return -1.0, -1


@njit(inline=True)
def _target(targets: I8, k: int, low_dir: int, high_dir: int) -> int:
    return min(max(int(targets[k]), low_dir), high_dir)


# the steps of a bar that can fill, in order
_PHASE_OPEN = 0  # next_open fills: the target decided at the previous close
_PHASE_STOPS = 1  # stop-loss / take-profit / trailing stop, intrabar
_PHASE_CLOSE = 2  # close fills: the target decided at this close
_PHASE_LIQUIDATION = 3  # out of money at this close
_N_PHASES = 4


@njit()
def sim_chunk(
    o: F64,
    h: F64,
    lo: F64,
    c: F64,
    targets: I8,
    targets_start: int,
    start: int,
    end: int,
    ss: F64,
    acc: F64,
    fee: float,
    slip: float,
    fill_close: bool,
    low_dir: int,
    high_dir: int,
    sl: float,
    tp: float,
    ts: float,
    lot: float,
    record: bool,
    equity: F64,
    position: I8,
    offset: int,
    tr: F64_2D,
    fl: F64_2D,
) -> int:
    """Simulate bars ``start..end-1`` given their targets (bar ``i``'s at ``targets[i - targets_start]``):
    fills, then equity and position at ``index - offset``; trades and fills (when recording) into ``tr`` and
    ``fl``. Returns the bar it stopped before: ``end``, or earlier when a record buffer is nearly full (the
    caller grows it and calls again from there). Per-bar metrics are folded in by a separate, vectorisable
    pass.

    Most bars change nothing: while no stop is armed and the target equals the position, a run of bars is
    found by scanning the targets and marked to market in one vectorisable loop. The bars where something may
    happen go through the phases of a bar (``_PHASE_*``), and every fill, whatever caused it, goes through the
    one close block and the one open block below. All state lives in local scalars while the chunk runs (no
    helper takes an array: each array argument would cost reference-count traffic on every fill).
    """
    has_stops = not (math.isnan(sl) and math.isnan(tp) and math.isnan(ts))
    count = end - start
    # chunk views indexed from 0: indices numba can prove non-negative skip the wraparound check
    oc = o[start:end]
    hc = h[start:end]
    lc = lo[start:end]
    cc = c[start:end]
    tg = targets[start - targets_start : end - targets_start]
    eq = equity[start - offset : end - offset]
    ps = position[start - offset : end - offset]
    cash = ss[S_CASH]
    units = ss[S_UNITS]
    pos = int(ss[S_POS])
    entry_px = ss[S_ENTRY_PX]
    entry_idx = ss[S_ENTRY_IDX]
    entry_cost = ss[S_ENTRY_COST]
    entry_fee = ss[S_ENTRY_FEE]
    extreme = ss[S_EXTREME]
    pending = int(ss[S_PENDING])
    blocked = int(ss[S_BLOCKED])
    n_trades = int(ss[S_N_TRADES])
    n_fills = int(ss[S_N_FILLS])
    stats = metrics.load_trade_stats(acc)
    live = 0 if ss[S_BUST] != 0.0 else count
    done = count
    k = 0
    while k < live:
        if blocked == 0 and not (has_stops and pos != 0):
            # the common bars, in a tight loop of their own: no fill, no armed stop, marked to market
            if fill_close:
                while k < live:
                    e = cash + units * cc[k]
                    if _target(tg, k, low_dir, high_dir) != pos or e <= 0.0:
                        break
                    eq[k] = e
                    ps[k] = pos
                    k += 1
            else:
                while k < live and pending == pos:
                    e = cash + units * cc[k]
                    if e <= 0.0:
                        break
                    eq[k] = e
                    ps[k] = pos
                    pending = _target(tg, k, low_dir, high_dir)
                    k += 1
            if k >= live:
                break
        # a bar where something may happen: the phases below
        target = _target(tg, k, low_dir, high_dir)
        if record and (n_trades + _MAX_TRADES_PER_BAR > tr.shape[0] or n_fills + _MAX_FILLS_PER_BAR > fl.shape[0]):
            done = k
            live = k
            break
        i = start + k
        for phase in range(_N_PHASES):
            close_at = -1.0  # price to close the position at (before slippage); prices are positive
            reason = R_SIGNAL
            side = 0  # side to open afterwards, at open_at
            open_at = 0.0
            if phase == _PHASE_OPEN:
                if fill_close or pending == pos:
                    continue
                side = pending
                open_at = oc[k]
                if pos != 0:
                    close_at = open_at
            elif phase == _PHASE_STOPS:
                if not has_stops or pos == 0:
                    continue
                close_at, reason = stop_hit(pos, entry_px, extreme, oc[k], hc[k], lc[k], sl, tp, ts)
                if reason < 0:
                    extreme = max(extreme, hc[k]) if pos > 0 else min(extreme, lc[k])
                    continue
                blocked = pos
            elif phase == _PHASE_CLOSE:
                if not fill_close:
                    continue
                if blocked != 0:
                    if target == blocked:
                        target = 0
                    else:
                        blocked = 0
                if target == pos:
                    continue
                side = target
                open_at = cc[k]
                if pos != 0:
                    close_at = open_at
            else:
                if pos == 0 or cash + units * cc[k] > 0.0:
                    continue
                close_at = cc[k]
                reason = R_LIQUIDATION
            if close_at > 0.0:
                if reason == R_TAKE_PROFIT:
                    px = close_at  # a take-profit is a resting limit: filled at its level (or a better open)
                else:
                    px = close_at * (1.0 - slip) if units > 0.0 else close_at * (1.0 + slip)
                notional = abs(units) * px
                fee_paid = notional * fee
                cash += units * px - fee_paid
                pnl = units * (px - entry_px) - entry_fee - fee_paid
                if cash < 0.0:
                    # out of money: equity is floored at zero below, so the trade loses what was there, not more
                    pnl -= cash
                ret = pnl / entry_cost
                stats = metrics.trade_step(stats, pnl, ret, notional)
                if record:
                    tr[n_trades, T_ENTRY_IDX] = entry_idx
                    tr[n_trades, T_EXIT_IDX] = i
                    tr[n_trades, T_SIDE] = pos
                    tr[n_trades, T_QTY] = abs(units)
                    tr[n_trades, T_ENTRY_PX] = entry_px
                    tr[n_trades, T_EXIT_PX] = px
                    tr[n_trades, T_PNL] = pnl
                    tr[n_trades, T_RETURN] = ret
                    tr[n_trades, T_FEES] = entry_fee + fee_paid
                    tr[n_trades, T_REASON] = reason
                    tr[n_trades, T_OPEN] = 0.0
                    n_trades += 1
                    fl[n_fills, F_IDX] = i
                    fl[n_fills, F_QTY] = -units
                    fl[n_fills, F_PX] = px
                    fl[n_fills, F_FEE] = fee_paid
                    fl[n_fills, F_REASON] = reason
                    n_fills += 1
                units = 0.0
                pos = 0
            if side != 0 and pos == 0 and cash > 0.0:
                px = open_at * (1.0 + slip) if side > 0 else open_at * (1.0 - slip)
                qty = cash / (px * (1.0 + fee))
                if lot > 0.0:
                    qty = math.floor(qty / lot) * lot
                if qty > 0.0:
                    notional = qty * px
                    fee_paid = notional * fee
                    cash -= side * notional + fee_paid
                    units = side * qty
                    pos = side
                    entry_px = px
                    entry_idx = float(i)
                    entry_cost = notional + fee_paid
                    entry_fee = fee_paid
                    extreme = px
                    stats = metrics.fill_step(stats, notional)
                    if record:
                        fl[n_fills, F_IDX] = i
                        fl[n_fills, F_QTY] = units
                        fl[n_fills, F_PX] = px
                        fl[n_fills, F_FEE] = fee_paid
                        fl[n_fills, F_REASON] = R_SIGNAL
                        n_fills += 1
        e = cash + units * cc[k]
        if e <= 0.0:
            # out of money (liquidated above if a position was open): stop trading, equity stays at zero
            cash = 0.0
            ss[S_BUST] = 1.0
            live = k
            break
        eq[k] = e
        ps[k] = pos
        if not fill_close:
            if blocked != 0:
                if target == blocked:
                    target = 0
                else:
                    blocked = 0
            pending = target
        k += 1
    if done == count:
        for m in range(live, count):
            eq[m] = 0.0
            ps[m] = 0
    metrics.store_trade_stats(acc, stats)
    ss[S_CASH] = cash
    ss[S_UNITS] = units
    ss[S_POS] = pos
    ss[S_ENTRY_PX] = entry_px
    ss[S_ENTRY_IDX] = entry_idx
    ss[S_ENTRY_COST] = entry_cost
    ss[S_ENTRY_FEE] = entry_fee
    ss[S_EXTREME] = extreme
    ss[S_PENDING] = pending
    ss[S_BLOCKED] = blocked
    ss[S_N_TRADES] = n_trades
    ss[S_N_FILLS] = n_fills
    return start + done


@njit()
def run_one(
    kernel_id: int,
    o: F64,
    h: F64,
    lo: F64,
    c: F64,
    v: F64,
    external: I8,
    p: F64,
    sl: float,
    tp: float,
    ts: float,
    initial_cash: float,
    fee: float,
    slip: float,
    fill_close: bool,
    low_dir: int,
    high_dir: int,
    lot: float,
    rf_bar: float,
    bars_per_year: float,
    benchmark_return: float,
    chunk: int,
    record: bool,
    equity: F64,
    position: I8,
) -> tuple[F64, F64_2D, F64_2D]:
    """One backtest. With ``record`` it fills ``equity``/``position`` (length n) and returns the trade and fill
    records; without, it only needs chunk-sized buffers. Returns (metric vector, trades, fills)."""
    n = len(c)
    chunk = max(1, min(chunk, n))
    state = strategy_kernels.new_state(kernel_id, p)
    ss = np.zeros(SIM_SIZE, dtype=np.float64)
    ss[S_CASH] = initial_cash
    acc = metrics.new_acc(initial_cash)
    targets = np.empty(chunk, dtype=np.int8)
    scratch = np.empty(chunk, dtype=np.float64)
    if record:
        tr = np.empty((_INITIAL_RECORDS, N_TRADE_COLS), dtype=np.float64)
        fl = np.empty((_INITIAL_RECORDS, N_FILL_COLS), dtype=np.float64)
        eq_buf = equity
        pos_buf = position
    else:
        tr = np.empty((1, N_TRADE_COLS), dtype=np.float64)
        fl = np.empty((1, N_FILL_COLS), dtype=np.float64)
        eq_buf = np.empty(chunk, dtype=np.float64)
        pos_buf = np.empty(chunk, dtype=np.int8)
    for start in range(0, n, chunk):
        end = min(start + chunk, n)
        offset = 0 if record else start
        strategy_kernels.targets_chunk(kernel_id, o, h, lo, c, v, external, p, state, start, end, targets)
        at = start
        while at < end:
            at = sim_chunk(
                o,
                h,
                lo,
                c,
                targets,
                start,
                at,
                end,
                ss,
                acc,
                fee,
                slip,
                fill_close,
                low_dir,
                high_dir,
                sl,
                tp,
                ts,
                lot,
                record,
                eq_buf,
                pos_buf,
                offset,
                tr,
                fl,
            )
            if at < end:
                tr = _ensure(tr, int(ss[S_N_TRADES]), 2 * tr.shape[0])
                fl = _ensure(fl, int(ss[S_N_FILLS]), 2 * fl.shape[0])
        metrics.acc_equity_chunk(acc, eq_buf, pos_buf, start, end, offset, rf_bar, scratch)
    n_trades = int(ss[S_N_TRADES])
    if record and ss[S_POS] != 0.0:
        # the position still open at the end, marked at the last close (no exit fee, not a closed trade)
        units = ss[S_UNITS]
        tr = _ensure(tr, n_trades, n_trades + 1)
        tr[n_trades, T_ENTRY_IDX] = ss[S_ENTRY_IDX]
        tr[n_trades, T_EXIT_IDX] = n - 1
        tr[n_trades, T_SIDE] = ss[S_POS]
        tr[n_trades, T_QTY] = abs(units)
        tr[n_trades, T_ENTRY_PX] = ss[S_ENTRY_PX]
        tr[n_trades, T_EXIT_PX] = c[n - 1]
        tr[n_trades, T_PNL] = units * (c[n - 1] - ss[S_ENTRY_PX]) - ss[S_ENTRY_FEE]
        tr[n_trades, T_RETURN] = tr[n_trades, T_PNL] / ss[S_ENTRY_COST]
        tr[n_trades, T_FEES] = ss[S_ENTRY_FEE]
        tr[n_trades, T_REASON] = R_END_OF_DATA
        tr[n_trades, T_OPEN] = 1.0
        n_trades += 1
    values = metrics.finalize(acc, bars_per_year, rf_bar, benchmark_return)
    return values, tr[:n_trades], fl[: int(ss[S_N_FILLS])]


@njit(parallel=True)
def grid_kernel(
    kernel_id: int,
    o: F64,
    h: F64,
    lo: F64,
    c: F64,
    v: F64,
    external: I8,
    params: F64_2D,
    stops: F64_2D,
    initial_cash: float,
    fee: float,
    slip: float,
    fill_close: bool,
    low_dir: int,
    high_dir: int,
    lot: float,
    rf_bar: float,
    bars_per_year: float,
    benchmark_return: float,
    chunk: int,
) -> F64_2D:
    """Metric vectors of every parameter row (``stops`` rows: stop_loss, take_profit, trailing_stop; NaN =
    none), combinations spread over numba's threads."""
    m = params.shape[0]
    out = np.empty((m, metrics.N_METRICS), dtype=np.float64)
    no_equity = np.empty(0, dtype=np.float64)
    no_position = np.empty(0, dtype=np.int8)
    for j in prange(m):
        values, _, _ = run_one(
            kernel_id,
            o,
            h,
            lo,
            c,
            v,
            external,
            params[j],
            stops[j, 0],
            stops[j, 1],
            stops[j, 2],
            initial_cash,
            fee,
            slip,
            fill_close,
            low_dir,
            high_dir,
            lot,
            rf_bar,
            bars_per_year,
            benchmark_return,
            chunk,
            False,
            no_equity,
            no_position,
        )
        out[j] = values
    return out


@njit()
def grid_kernel_serial(
    kernel_id: int,
    o: F64,
    h: F64,
    lo: F64,
    c: F64,
    v: F64,
    external: I8,
    params: F64_2D,
    stops: F64_2D,
    initial_cash: float,
    fee: float,
    slip: float,
    fill_close: bool,
    low_dir: int,
    high_dir: int,
    lot: float,
    rf_bar: float,
    bars_per_year: float,
    benchmark_return: float,
    chunk: int,
) -> F64_2D:
    """:func:`grid_kernel` on the calling thread only."""
    m = params.shape[0]
    out = np.empty((m, metrics.N_METRICS), dtype=np.float64)
    no_equity = np.empty(0, dtype=np.float64)
    no_position = np.empty(0, dtype=np.int8)
    for j in range(m):
        values, _, _ = run_one(
            kernel_id,
            o,
            h,
            lo,
            c,
            v,
            external,
            params[j],
            stops[j, 0],
            stops[j, 1],
            stops[j, 2],
            initial_cash,
            fee,
            slip,
            fill_close,
            low_dir,
            high_dir,
            lot,
            rf_bar,
            bars_per_year,
            benchmark_return,
            chunk,
            False,
            no_equity,
            no_position,
        )
        out[j] = values
    return out
