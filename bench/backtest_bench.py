"""Backtest speed: IQTS's fused kernels against a plain fused numba loop, vectorbt and backtesting.py.

Run: ``uv run python -m bench.backtest_bench [--json] [--quick]`` (or ``iqts bench backtest [--json]``).

Workload: SMA(10/50) crossover, long only, all-in at the next bar's open, fee 0.1 %, on 1,000,000 one-minute
bars generated from the real hourly BTC returns of the bundled sample with a fixed seed (no real minute history
ships with IQTS; the generator is the market-data benchmark's). Every figure is measured in this run, and each
ratio is against the plain reference loop of ``bench/reference.py`` timed in the same rounds (interleaved, so
that load from other processes hits all of them alike). Targets (issue 4): a single backtest within 2x of the
reference, a 100-combination grid within 1.5x of it per combination with memory under 2x the input, and a
first call in a fresh process under 2 s with a warm numba cache.

``--quick`` uses 200,000 bars and fewer repeats (for CI); the workload column says what was measured.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from bench.data_bench import minute_bars_from_real_hours
from bench.reference import run_reference, run_reference_tuned
from engine.backtest.bars import Bars
from engine.backtest.config import BacktestConfig, KernelOptions
from engine.backtest.vectorized import run_backtest, run_grid
from engine.strategies import get_strategy
from engine.telemetry import configure_logging

# backtesting.py draws a tqdm progress bar; tqdm reads this when it is first imported (lazily, below)
os.environ.setdefault("TQDM_DISABLE", "1")

REPO = Path(__file__).resolve().parent.parent
FAST, SLOW, FEE, CASH, SEED = 10, 50, 0.001, 10_000.0, 7
GRID = {"fast": [5, 10, 15, 20, 25, 30, 35, 40, 45, 50], "slow": [60, 80, 100, 120, 140, 160, 180, 200, 220, 240]}
KB = 1024
MB = KB * KB


class BenchRow(BaseModel):
    engine: str
    workload: str
    median_s: float
    ratio: float | None  # to the plain reference loop (time per run or per combination); lower is faster
    note: str = ""


def _interleaved(fns: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds of each function, timed in alternating rounds after one warm-up call each."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def _minute_bars(rows: int) -> Bars:
    return Bars.from_frame(minute_bars_from_real_hours(rows, seed=SEED), timeframe="1m", symbol="BTC/USD")


def _vectorbt_seconds(bars: Bars, targets: np.ndarray, rounds: int) -> float:
    import vectorbt as vbt

    index = pd.RangeIndex(len(bars))
    close = pd.Series(bars.close, index=index)
    price = pd.Series(bars.open, index=index)
    entries = pd.Series(np.r_[False, targets[:-1] == 1], index=index)
    exits = pd.Series(np.r_[False, targets[:-1] != 1], index=index)

    def run() -> float:
        pf = vbt.Portfolio.from_signals(close, entries, exits, price=price, fees=FEE, init_cash=CASH)
        return float(pf.final_value())

    return _interleaved({"vbt": run}, rounds)["vbt"]


def _backtesting_seconds(bars: Bars, rounds: int) -> float:
    from backtesting import Strategy
    from backtesting.lib import FractionalBacktest

    targets = get_strategy("sma_cross").signals(bars.open, bars.high, bars.low, bars.close, bars.volume)
    targets = np.maximum(targets, 0)

    class SmaTargets(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            """The targets are precomputed by the bench; backtesting.py needs no indicators here."""

        def next(self) -> None:
            target = targets[len(self.data) - 1]
            if target == 1 and not self.position:
                self.buy()
            elif target == 0 and self.position:
                self.position.close()

    data = pd.DataFrame(
        {"Open": bars.open, "High": bars.high, "Low": bars.low, "Close": bars.close, "Volume": bars.volume},
        index=pd.DatetimeIndex(bars.ts),
    )
    backtest = FractionalBacktest(data, SmaTargets, cash=CASH, commission=FEE, fractional_unit=1e-8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            backtest.run()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


_MEMORY_SCRIPT = """
import gc, json, sys
from engine.telemetry import configure_logging
configure_logging(level="WARNING")
from bench.backtest_bench import GRID, _minute_bars
from engine.backtest.config import BacktestConfig
from engine.backtest.vectorized import run_grid

def status():
    values = {}
    for line in open("/proc/self/status"):
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values

bars = _minute_bars(int(sys.argv[1]))
config = BacktestConfig(fee=0.001)
run_grid("sma_cross", bars.slice(0, 5000), GRID, config)  # kernels loaded, thread pool started
gc.collect()
before = status()["VmRSS"]
with open("/proc/self/clear_refs", "w") as reset:
    reset.write("5")  # restart the peak (VmHWM) from here
run_grid("sma_cross", bars, GRID, config)
peak = status()["VmHWM"]
inputs = sum(getattr(bars, c).nbytes for c in ("ts", "open", "high", "low", "close", "volume"))
print(json.dumps({"extra": peak - before, "input": inputs}))
"""

_FIRST_CALL_SCRIPT = """
import json, time
start = time.perf_counter()
import numpy as np
from engine.backtest.bars import Bars
from engine.backtest.vectorized import run_backtest, run_grid
imported = time.perf_counter()
closes = 100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.01, 5000)))  # positive: Bars refuses prices <= 0
bars = Bars.from_arrays(closes, closes + 1, closes - 1, closes, timeframe="1m")
ready = time.perf_counter()
run_backtest("sma_cross", bars, {"fast": 10, "slow": 50})
first = time.perf_counter()
run_grid("sma_cross", bars, {"fast": [5, 10], "slow": [50, 60]})
grid = time.perf_counter()
run_backtest("sma_cross", bars, {"fast": 10, "slow": 50})
second = time.perf_counter()
print(json.dumps({"import": imported - start, "first": first - ready, "grid": grid - first,
                  "second": second - grid}))
"""


def _subprocess_json(script: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run_backtest_bench(quick: bool = False) -> list[BenchRow]:
    """Measure every engine on the same bars in one run; each row's ratio is against the plain reference."""
    import structlog

    if not structlog.is_configured():
        configure_logging(level="WARNING")  # library debug lines to stderr, never into JSON on stdout
    n = 200_000 if quick else 1_000_000
    rounds = 5 if quick else 15
    subset = 20_000 if quick else 100_000
    bars = _minute_bars(n)
    label = f"SMA({FAST}/{SLOW}), {n:,} 1m bars"
    config = BacktestConfig(fee=FEE, slippage=0.0, initial_cash=CASH)
    params = {"fast": FAST, "slow": SLOW}

    ours = run_backtest("sma_cross", bars, params, config)
    reference_equity = run_reference(bars.open, bars.close, FAST, SLOW, FEE, CASH)
    agree = abs(ours.final_equity / reference_equity - 1) < 1e-9
    single = _interleaved(
        {
            "plain": lambda: run_reference(bars.open, bars.close, FAST, SLOW, FEE, CASH),
            "tuned": lambda: run_reference_tuned(bars.open, bars.close, FAST, SLOW, FEE, CASH),
            "iqts": lambda: run_backtest("sma_cross", bars, params, config),
        },
        rounds,
    )
    ref = single["plain"]
    trades = ours.metrics.n_trades

    grid_rounds = 2 if quick else 3
    grid = _interleaved({"parallel": lambda: run_grid("sma_cross", bars, GRID, config)}, grid_rounds)["parallel"]
    serial_options = KernelOptions(parallel=False)
    serial = _interleaved({"serial": lambda: run_grid("sma_cross", bars, GRID, config, options=serial_options)}, 1)[
        "serial"
    ]
    memory = _subprocess_json(_MEMORY_SCRIPT, str(n))
    first = _subprocess_json(_FIRST_CALL_SCRIPT)

    targets = get_strategy("sma_cross").signals(bars.open, bars.high, bars.low, bars.close, bars.volume, params)
    vbt_s = _vectorbt_seconds(bars, targets, 2 if quick else 5)
    bt_s = _backtesting_seconds(bars.slice(0, subset), 1 if quick else 3) * (n / subset)

    from engine.backtest._jit import num_threads

    threads = num_threads()
    return [
        BenchRow(
            engine="reference: plain fused numba loop",
            workload=label,
            median_s=ref,
            ratio=1.0,
            note="bench/reference.py: means as sums / window; equity curve only",
        ),
        BenchRow(
            engine="reference: tuned fused numba loop",
            workload=label,
            median_s=single["tuned"],
            ratio=single["tuned"] / ref,
            note="cross-multiplied sums, no division per bar",
        ),
        BenchRow(
            engine="iqts run_backtest",
            workload=label,
            median_s=single["iqts"],
            ratio=single["iqts"] / ref,
            note=f"equity, positions, {trades:,} trades, fills, metrics; "
            f"{single['iqts'] / single['tuned']:.2f}x the tuned loop; "
            f"final equity {'equals' if agree else 'DIFFERS FROM'} the reference's",
        ),
        BenchRow(
            engine="vectorbt Portfolio.from_signals",
            workload=label,
            median_s=vbt_s,
            ratio=vbt_s / ref,
            note="signals precomputed; JIT warm-up excluded",
        ),
        BenchRow(
            engine="backtesting.py FractionalBacktest",
            workload=label,
            median_s=bt_s,
            ratio=bt_s / ref,
            note=f"measured on {subset:,} bars, extrapolated per bar",
        ),
        BenchRow(
            engine="iqts run_grid",
            workload=f"100 combinations x {n:,} 1m bars",
            median_s=grid,
            ratio=grid / (100 * ref),
            note=f"whole grid; {threads} numba threads",
        ),
        BenchRow(
            engine="iqts run_grid, per combination",
            workload=label,
            median_s=grid / 100,
            ratio=grid / 100 / ref,
            note=f"{threads} threads; peak extra memory {memory['extra'] / KB:,.0f} kB = "
            f"{memory['extra'] / memory['input']:.3f}x the input ({memory['input'] / MB:.0f} MB)",
        ),
        BenchRow(
            engine="iqts run_grid, per combination, 1 thread",
            workload=label,
            median_s=serial / 100,
            ratio=serial / 100 / ref,
            note="same kernel on the calling thread only",
        ),
        BenchRow(
            engine="iqts first call, fresh process",
            workload="run_backtest, 5,000 bars, warm numba cache",
            median_s=first["first"],
            ratio=None,
            note=f"import {first['import']:.2f} s; first grid call {first['grid']:.2f} s; "
            f"second call {first['second'] * 1e3:.1f} ms",
        ),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--quick", action="store_true", help="200,000 bars and fewer repeats")
    args = parser.parse_args(argv)
    rows = run_backtest_bench(quick=args.quick)
    if args.json:
        print(json.dumps([r.model_dump() for r in rows], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "engine",
        "workload",
        "median s",
        "ratio",
        "note",
        title="backtests (minute bars generated from real hourly BTC returns, seed 7)",
    )
    for r in rows:
        ratio = "" if r.ratio is None else f"{r.ratio:,.2f}x"
        table.add_row(r.engine, r.workload, f"{r.median_s:.4g}", ratio, r.note)
    Console().print(table)


if __name__ == "__main__":
    main()
