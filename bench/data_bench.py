"""Market-data storage benchmark: upsert of 1M 1-minute bars and read of a year of them, vs bare COPY.

The minute bars are generated from the real hourly BTC returns (bundled sample) with a fixed seed, since no
real minute history ships with IQTS. Run: ``python -m bench.data_bench [--json] [--rows N]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from collections.abc import Callable

import numpy as np
import pandas as pd
from pydantic import BaseModel

from engine.data.frame import frame_from_arrays
from engine.data.pgcopy import encode_bars
from engine.data.sample import load_sample_series
from engine.data.store import BarStore, make_key
from engine.settings import load_settings
from engine.store.database import Database, connect
from engine.store.migrate import upgrade

MINUTE = 60_000
YEAR_OF_MINUTES = 525_600


class BenchRow(BaseModel):
    engine: str
    workload: str
    median_s: float
    rows_per_s: float
    ratio: float  # to the reference of its workload (bare COPY); lower is better for time


def minute_bars_from_real_hours(rows: int, seed: int = 7) -> pd.DataFrame:
    """Minute bars whose returns are drawn (seeded) from the real hourly BTC returns, scaled to a minute."""
    hourly = next(s for s in load_sample_series() if s.timeframe == "1h").frame["close"].to_numpy()
    returns = np.diff(np.log(hourly)) / np.sqrt(60.0)
    rng = np.random.default_rng(seed)
    close = 10_000 * np.exp(np.cumsum(rng.choice(returns, size=rows)))
    open_ = np.concatenate(([10_000.0], close[:-1]))
    wick = np.abs(rng.normal(0, 0.0005, rows))
    start = 1_514_764_800_000  # 2018-01-01 UTC
    return frame_from_arrays(
        ts=start + MINUTE * np.arange(rows, dtype=np.int64),
        open=open_,
        high=np.maximum(open_, close) * (1 + wick),
        low=np.minimum(open_, close) * (1 - wick),
        close=close,
        volume=rng.gamma(2.0, 5.0, rows),
    )


def _median(fn: Callable[[], object], repeats: int) -> float:
    return _median_with_setup(fn, lambda: None, repeats)


def _median_with_setup(fn: Callable[[], object], setup: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        setup()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def run_data_bench(rows: int = 1_000_000, repeats: int = 3, db: Database | None = None) -> list[BenchRow]:
    own = db is None
    database = db or connect(load_settings(db_name="iqts_bench"))
    upgrade(database)
    store = BarStore(database)
    frame = minute_bars_from_real_hours(rows)
    ts = frame["ts"].to_numpy()
    values = {c: frame[c].to_numpy() for c in ("open", "high", "low", "close", "volume")}
    bare_table = f"bench_bare_{uuid.uuid4().hex[:8]}"
    try:
        with database.connection() as conn:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {bare_table} (LIKE bars INCLUDING ALL)")

        def bare_copy() -> None:
            with database.connection() as conn:
                conn.execute(f"TRUNCATE {bare_table}")
                with conn.cursor().copy(
                    f"COPY {bare_table} (series_id, ts, open, high, low, close, volume) FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    copy.write(encode_bars(1, ts, values))

        write_key = make_key("bench", "BTC/USDT", "1m")

        def fresh_upsert() -> None:
            store.upsert_bars(write_key, frame)

        def repeat_upsert() -> None:  # every row conflicts: the idempotent merge path
            store.upsert_bars(write_key, frame)

        bare = _median(bare_copy, repeats)
        fresh = _median_with_setup(fresh_upsert, lambda: store.delete_series(write_key), repeats)
        merge = _median(repeat_upsert, repeats)
        year = min(rows, YEAR_OF_MINUTES)
        start, end = int(ts[0]), int(ts[0]) + year * MINUTE

        def bare_read() -> None:
            with (
                database.connection() as conn,
                conn.cursor().copy(
                    f"COPY (SELECT ts, open, high, low, close, volume FROM bars WHERE series_id = "
                    f"(SELECT id FROM market_series WHERE exchange = 'bench') AND ts >= {start} AND ts < {end} "
                    "ORDER BY ts) TO STDOUT (FORMAT BINARY)"
                ) as copy,
            ):
                for _chunk in copy:
                    continue  # drain the stream: the bench times the transfer, not a use of it

        read_ref = _median(bare_read, repeats)
        read = _median(lambda: store.read_bars(write_key, start, end), repeats)
        return [
            BenchRow(
                engine="bare COPY (binary)",
                workload=f"write {rows:,} 1m bars",
                median_s=bare,
                rows_per_s=rows / bare,
                ratio=1.0,
            ),
            BenchRow(
                engine="BarStore.upsert (new range)",
                workload=f"write {rows:,} 1m bars",
                median_s=fresh,
                rows_per_s=rows / fresh,
                ratio=fresh / bare,
            ),
            BenchRow(
                engine="BarStore.upsert (all overlap)",
                workload=f"write {rows:,} 1m bars",
                median_s=merge,
                rows_per_s=rows / merge,
                ratio=merge / bare,
            ),
            BenchRow(
                engine="bare COPY TO (binary, discard)",
                workload=f"read {year:,} 1m bars",
                median_s=read_ref,
                rows_per_s=year / read_ref,
                ratio=1.0,
            ),
            BenchRow(
                engine="BarStore.read_bars -> numpy",
                workload=f"read {year:,} 1m bars",
                median_s=read,
                rows_per_s=year / read,
                ratio=read / read_ref,
            ),
        ]
    finally:
        with database.connection() as conn:
            conn.execute(f"DROP TABLE IF EXISTS {bare_table}")
        store.delete_series(make_key("bench", "BTC/USDT", "1m"))
        if own:
            database.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    rows = run_data_bench(args.rows)
    if args.json:
        print(json.dumps([r.model_dump() for r in rows], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "engine",
        "workload",
        "median s",
        "rows/s",
        "ratio",
        title="market data storage (minute bars generated from real hourly BTC returns, seed 7)",
    )
    for r in rows:
        table.add_row(r.engine, r.workload, f"{r.median_s:.3f}", f"{r.rows_per_s:,.0f}", f"{r.ratio:.2f}x")
    Console().print(table)


if __name__ == "__main__":
    main()
