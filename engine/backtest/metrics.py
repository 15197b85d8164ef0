"""One metrics module for every backtest path (fused kernels, grids, the event-driven engine).

Metrics are accumulated in a small float64 array while a run streams its bars (:func:`acc_equity_chunk` per
chunk of the equity curve, :func:`acc_trade` per closed trade, :func:`acc_fill` per fill) and turned into
numbers by :func:`finalize`. The fused kernels call these directly; :func:`compute_metrics` feeds them from
whole arrays. Same code, same numbers.

Definitions (``r_i`` is the return of bar ``i``: equity over the previous bar's equity, the first bar over the
initial cash; ``n`` bars; ``B`` bars per year):

- total_return: final equity / initial cash - 1; cagr: (final / initial) ** (B / n) - 1
- volatility: sample standard deviation of ``r`` times sqrt(B)
- sharpe: (mean(r) - rf_bar) / std(r) * sqrt(B), rf_bar the per-bar risk-free rate
- sortino: (mean(r) - rf_bar) / sqrt(mean(min(r - rf_bar, 0)^2)) * sqrt(B)
- max_drawdown: largest fall from a running peak, as a positive fraction; calmar: cagr / max_drawdown
- max_drawdown_duration: most bars from a peak to the bar that regains it (or to the last bar if never)
- win_rate, profit_factor (gross profit / gross loss), expectancy (mean trade return), n_trades: closed trades;
  a trade's return is its pnl (after both fees) over what its entry cost (notional plus entry fee)
- exposure: fraction of bars closed with a position; turnover: traded notional / mean equity
- benchmark_return: buy and hold over the same bars (last close / first close - 1); excess_return: the
  difference. Undefined ratios (no trades, zero deviation) are NaN, serialised as null.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from engine.backtest._jit import njit
from engine.strategies.base import F64, I8, kernel_array

# accumulator layout
A_INIT = 0
A_PREV = 1
A_N = 2
A_PEAK = 3
A_TROUGH = 4
A_PEAK_IDX = 5
A_MAX_DD = 6
A_MAX_DD_DUR = 7
A_EXPOSED = 8
A_TRADES = 9
A_WINS = 10
A_GROSS_PROFIT = 11
A_GROSS_LOSS = 12
A_SUM_TRADE_RET = 13
A_NOTIONAL = 14
A_SUM_R = 15
A_SUM_R2 = 16
A_SUM_DOWN2 = 17
A_SUM_EQ = 18
ACC_SIZE = 19

# metric vector layout (the order of the Metrics fields)
M_TOTAL_RETURN = 0
M_CAGR = 1
M_VOLATILITY = 2
M_SHARPE = 3
M_SORTINO = 4
M_CALMAR = 5
M_MAX_DD = 6
M_MAX_DD_DUR = 7
M_WIN_RATE = 8
M_PROFIT_FACTOR = 9
M_EXPECTANCY = 10
M_EXPOSURE = 11
M_TURNOVER = 12
M_N_TRADES = 13
M_BENCHMARK = 14
M_EXCESS = 15
M_FINAL_EQUITY = 16
M_N_BARS = 17
N_METRICS = 18


class Metrics(BaseModel):
    """Performance of one run. Fractions are plain (0.1 = 10 %); durations are in bars."""

    model_config = ConfigDict(frozen=True)

    total_return: float = Field(description="final equity / initial cash - 1")
    cagr: float = Field(description="compound annual growth rate")
    volatility: float = Field(description="annualised standard deviation of bar returns")
    sharpe: float = Field(description="annualised Sharpe ratio (excess over the risk-free rate)")
    sortino: float = Field(description="annualised Sortino ratio (downside deviation below the risk-free rate)")
    calmar: float = Field(description="cagr / max_drawdown")
    max_drawdown: float = Field(description="largest peak-to-trough fall of equity, positive fraction")
    max_drawdown_duration: int = Field(description="most bars from a peak to its recovery (or the end)")
    win_rate: float = Field(description="winning closed trades / closed trades")
    profit_factor: float = Field(description="gross profit / gross loss of closed trades")
    expectancy: float = Field(description="mean return per closed trade")
    exposure: float = Field(description="fraction of bars closed holding a position")
    turnover: float = Field(description="traded notional / mean equity")
    n_trades: int = Field(description="closed trades")
    benchmark_return: float = Field(description="buy and hold over the same bars")
    excess_return: float = Field(description="total_return - benchmark_return")
    final_equity: float
    n_bars: int
    bars_per_year: float

    @classmethod
    def from_vector(cls, values: npt.NDArray[np.float64], bars_per_year: float) -> Metrics:
        """Metrics from a kernel's metric vector (see the M_* layout)."""
        fields = [name for name in cls.model_fields if name != "bars_per_year"]
        data: dict[str, float | int] = {}
        for index, name in enumerate(fields):
            value = float(values[index])
            data[name] = int(value) if name in _INT_FIELDS else value
        return cls.model_validate({**data, "bars_per_year": bars_per_year})


_INT_FIELDS = frozenset({"max_drawdown_duration", "n_trades", "n_bars"})
METRIC_NAMES: tuple[str, ...] = tuple(name for name in Metrics.model_fields if name != "bars_per_year")
"""Metric names in kernel vector order (grids return one column per name)."""


def per_bar_rate(annual_rate: float, bars_per_year: float) -> float:
    """The per-bar rate that compounds to ``annual_rate`` over ``bars_per_year`` bars."""
    return float((1.0 + annual_rate) ** (1.0 / bars_per_year) - 1.0)


@njit()
def new_acc(initial_cash: float) -> F64:
    acc = np.zeros(ACC_SIZE, dtype=np.float64)
    acc[A_INIT] = initial_cash
    acc[A_PREV] = initial_cash
    acc[A_PEAK] = initial_cash
    acc[A_TROUGH] = initial_cash
    acc[A_PEAK_IDX] = -1.0
    return acc


@njit()
def acc_equity_chunk(
    acc: F64, equity: F64, position: I8, start: int, end: int, offset: int, mar: float, scratch: F64
) -> None:
    """Fold bars ``start..end-1`` of an equity curve (stored at ``index - offset``) into ``acc``.

    ``scratch`` (at least ``end - start`` long) receives the bar returns: computing them in a loop of their own
    lets the divisions vectorise, which a per-bar division inside the fill loop cannot (scalar division
    throughput alone would cost more than the rest of the fill loop).
    """
    count = end - start
    if count <= 0:
        return
    eq = equity[start - offset : end - offset]
    ps = position[start - offset : end - offset]
    r = scratch[:count]
    prev = acc[A_PREV]
    r[0] = eq[0] / prev - 1.0 if prev > 0.0 else 0.0
    for k in range(1, count):
        before = eq[k - 1]
        r[k] = eq[k] / before - 1.0 if before > 0.0 else 0.0
    sum_r = acc[A_SUM_R]
    sum_r2 = acc[A_SUM_R2]
    sum_down2 = acc[A_SUM_DOWN2]
    sum_eq = acc[A_SUM_EQ]
    peak = acc[A_PEAK]
    trough = acc[A_TROUGH]
    peak_idx = acc[A_PEAK_IDX]
    max_dd = acc[A_MAX_DD]
    max_dur = acc[A_MAX_DD_DUR]
    exposed = 0
    for k in range(count):
        x = r[k]
        e = eq[k]
        d = min(x - mar, 0.0)  # branch-free: half the bars fall, a branch would mispredict
        sum_r += x
        sum_r2 += x * x
        sum_down2 += d * d
        sum_eq += e
        exposed += ps[k] != 0
        # drawdown: the running peak, the lowest equity since it, the longest stretch from a peak to recovery
        if e >= peak:
            if trough < peak:
                max_dd = max(max_dd, 1.0 - trough / peak)
                max_dur = max(max_dur, start + k - peak_idx)
            peak = e
            trough = e
            peak_idx = float(start + k)
        elif e < trough:
            trough = e
    acc[A_SUM_R] = sum_r
    acc[A_SUM_R2] = sum_r2
    acc[A_SUM_DOWN2] = sum_down2
    acc[A_SUM_EQ] = sum_eq
    acc[A_PEAK] = peak
    acc[A_TROUGH] = trough
    acc[A_PEAK_IDX] = peak_idx
    acc[A_MAX_DD] = max_dd
    acc[A_MAX_DD_DUR] = max_dur
    acc[A_EXPOSED] += exposed
    acc[A_PREV] = eq[count - 1]
    acc[A_N] += count


TradeStats = tuple[float, float, float, float, float, float]
"""Closed-trade and fill accumulators carried in registers through a fill loop: trades, wins, gross profit,
gross loss, sum of trade returns, traded notional."""


@njit(inline=True)
def load_trade_stats(acc: F64) -> TradeStats:
    return (acc[A_TRADES], acc[A_WINS], acc[A_GROSS_PROFIT], acc[A_GROSS_LOSS], acc[A_SUM_TRADE_RET], acc[A_NOTIONAL])


@njit(inline=True)
def store_trade_stats(acc: F64, stats: TradeStats) -> None:
    acc[A_TRADES] = stats[0]
    acc[A_WINS] = stats[1]
    acc[A_GROSS_PROFIT] = stats[2]
    acc[A_GROSS_LOSS] = stats[3]
    acc[A_SUM_TRADE_RET] = stats[4]
    acc[A_NOTIONAL] = stats[5]


@njit(inline=True)
def trade_step(stats: TradeStats, pnl: float, ret: float, notional: float) -> TradeStats:
    """Fold one closed trade (and its closing fill's notional) into the stats."""
    trades, wins, gross_profit, gross_loss, sum_ret, traded = stats
    won = pnl > 0.0
    return (
        trades + 1.0,
        wins + won,
        gross_profit + max(pnl, 0.0),
        gross_loss + max(-pnl, 0.0),
        sum_ret + ret,
        traded + notional,
    )


@njit(inline=True)
def fill_step(stats: TradeStats, notional: float) -> TradeStats:
    """Fold one opening fill's notional into the stats."""
    return (stats[0], stats[1], stats[2], stats[3], stats[4], stats[5] + notional)


@njit()
def finalize(acc: F64, bars_per_year: float, rf_bar: float, benchmark_return: float) -> F64:
    """The metric vector (M_* layout) of a finished run."""
    out = np.full(N_METRICS, np.nan)
    n = acc[A_N]
    init = acc[A_INIT]
    final = acc[A_PREV]
    out[M_N_BARS] = n
    out[M_FINAL_EQUITY] = final
    growth = final / init
    out[M_TOTAL_RETURN] = growth - 1.0
    if n > 0:
        out[M_CAGR] = growth ** (bars_per_year / n) - 1.0 if growth > 0.0 else -1.0
    max_dd = acc[A_MAX_DD]
    max_dur = acc[A_MAX_DD_DUR]
    if acc[A_TROUGH] < acc[A_PEAK]:
        dd = 1.0 - acc[A_TROUGH] / acc[A_PEAK]
        max_dd = max(max_dd, dd)
        max_dur = max(max_dur, n - 1.0 - acc[A_PEAK_IDX])
    out[M_MAX_DD] = max_dd
    out[M_MAX_DD_DUR] = max_dur
    if n > 1:
        mean = acc[A_SUM_R] / n
        var = (acc[A_SUM_R2] - n * mean * mean) / (n - 1.0)
        sd = math.sqrt(var) if var > 0.0 else 0.0
        ann = math.sqrt(bars_per_year)
        out[M_VOLATILITY] = sd * ann
        if sd > 0.0:
            out[M_SHARPE] = (mean - rf_bar) / sd * ann
        down = math.sqrt(acc[A_SUM_DOWN2] / n)
        if down > 0.0:
            out[M_SORTINO] = (mean - rf_bar) / down * ann
    if max_dd > 0.0:
        out[M_CALMAR] = out[M_CAGR] / max_dd
    trades = acc[A_TRADES]
    out[M_N_TRADES] = trades
    if trades > 0:
        out[M_WIN_RATE] = acc[A_WINS] / trades
        out[M_EXPECTANCY] = acc[A_SUM_TRADE_RET] / trades
        if acc[A_GROSS_LOSS] > 0.0:
            out[M_PROFIT_FACTOR] = acc[A_GROSS_PROFIT] / acc[A_GROSS_LOSS]
        elif acc[A_GROSS_PROFIT] > 0.0:
            out[M_PROFIT_FACTOR] = np.inf
    if n > 0:
        out[M_EXPOSURE] = acc[A_EXPOSED] / n
        mean_equity = acc[A_SUM_EQ] / n
        if mean_equity > 0.0:
            out[M_TURNOVER] = acc[A_NOTIONAL] / mean_equity
    out[M_BENCHMARK] = benchmark_return
    out[M_EXCESS] = out[M_TOTAL_RETURN] - benchmark_return
    return out


@njit()
def metrics_vector(
    equity: F64,
    position: I8,
    trade_pnl: F64,
    trade_return: F64,
    fill_notional: F64,
    initial_cash: float,
    bars_per_year: float,
    rf_bar: float,
    benchmark_return: float,
) -> F64:
    """The metric vector of a run given as whole arrays (the event-driven path, tests)."""
    acc = new_acc(initial_cash)
    acc_equity_chunk(acc, equity, position, 0, len(equity), 0, rf_bar, np.empty(len(equity), dtype=np.float64))
    stats = load_trade_stats(acc)
    for k in range(len(trade_pnl)):
        stats = trade_step(stats, trade_pnl[k], trade_return[k], 0.0)
    for k in range(len(fill_notional)):
        stats = fill_step(stats, fill_notional[k])
    store_trade_stats(acc, stats)
    return finalize(acc, bars_per_year, rf_bar, benchmark_return)


def compute_metrics(
    equity: npt.ArrayLike,
    *,
    initial_cash: float,
    bars_per_year: float,
    benchmark_return: float,
    position: npt.ArrayLike | None = None,
    trade_pnl: npt.ArrayLike = (),
    trade_return: npt.ArrayLike = (),
    fill_notional: npt.ArrayLike = (),
    risk_free_rate: float = 0.0,
) -> Metrics:
    """Metrics of any equity curve (one value per bar close) with its closed trades and fills."""
    eq = kernel_array(equity)
    pos = (
        np.zeros(len(eq), dtype=np.int8)
        if position is None
        else np.ascontiguousarray(np.sign(np.asarray(position)), dtype=np.int8)
    )
    values = metrics_vector(
        eq,
        pos,
        kernel_array(trade_pnl),
        kernel_array(trade_return),
        kernel_array(fill_notional),
        float(initial_cash),
        float(bars_per_year),
        per_bar_rate(risk_free_rate, bars_per_year),
        float(benchmark_return),
    )
    return Metrics.from_vector(values, bars_per_year)
