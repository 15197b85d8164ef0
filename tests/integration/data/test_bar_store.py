"""Bars in the real PostgreSQL: COPY upsert idempotence, merges, reads, Parquet round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.data.frame import frame_from_arrays
from engine.data.parquet import export_parquet, import_parquet
from engine.data.store import BarStore, make_key
from engine.errors import NotFoundError, ValidationFailedError
from engine.store.database import Database

HOUR = 3_600_000


def _bars(n: int, start: int = 1_700_000_000_000 - 1_700_000_000_000 % HOUR, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate(([100.0], close[:-1]))
    return frame_from_arrays(
        ts=start + HOUR * np.arange(n),
        open=open_,
        high=np.maximum(open_, close) * 1.001,
        low=np.minimum(open_, close) * 0.999,
        close=close,
        volume=rng.uniform(1, 10, n),
    )


@pytest.fixture
def store(db: Database) -> BarStore:
    return BarStore(db)


def test_upsert_twice_changes_nothing(store: BarStore, unique: str) -> None:
    key = make_key(f"ex{unique}", "BTC/USDT", "1h")
    bars = _bars(500)
    first = store.upsert_bars(key, bars)
    second = store.upsert_bars(key, bars)
    assert (first.inserted, first.updated) == (500, 0)
    assert (second.inserted, second.updated) == (0, 0)
    pd.testing.assert_frame_equal(store.read_bars(key), bars)


def test_overlapping_upsert_inserts_new_and_updates_only_changed(store: BarStore, unique: str) -> None:
    key = make_key(f"ex{unique}", "ETH/USDT", "1h")
    bars = _bars(300)
    store.upsert_bars(key, bars.iloc[:200].reset_index(drop=True))
    revised = bars.iloc[150:].reset_index(drop=True).copy()
    revised.loc[10, "close"] += 1.0  # one restated bar inside the overlap
    result = store.upsert_bars(key, revised)
    assert (result.inserted, result.updated) == (100, 1)
    stored = store.read_bars(key)
    assert len(stored) == 300
    assert stored["close"].iloc[160] == revised["close"].iloc[10]
    assert stored["ts"].is_monotonic_increasing and stored["ts"].is_unique


def test_read_range_is_half_open_and_validated(store: BarStore, unique: str) -> None:
    key = make_key(f"ex{unique}", "BTC/USDT", "1h")
    bars = _bars(50)
    store.upsert_bars(key, bars)
    start, end = int(bars.ts[10]), int(bars.ts[20])
    part = store.read_bars(key, start, end)
    assert part["ts"].tolist() == bars.ts[10:20].tolist()
    assert store.read_bars(key, int(bars.ts.iloc[-1]) + HOUR).empty
    with pytest.raises(ValidationFailedError, match="empty time range"):
        store.read_bars(key, end, start)
    with pytest.raises(NotFoundError, match="iqts data list"):
        store.read_bars(make_key(f"ex{unique}", "DOGE/USDT", "1h"))


def test_bad_frames_are_refused_and_store_untouched(store: BarStore, unique: str) -> None:
    key = make_key(f"ex{unique}", "BTC/USDT", "1h")
    bars = _bars(20)
    store.upsert_bars(key, bars)
    shuffled = bars.iloc[::-1].reset_index(drop=True)
    with pytest.raises(ValidationFailedError, match="ascending"):
        store.upsert_bars(key, shuffled)
    with pytest.raises(ValidationFailedError):
        make_key("bad exchange!", "BTC/USDT", "1h")
    with pytest.raises(ValidationFailedError):
        make_key("binance", "BTCUSDT", "1h")
    with pytest.raises(ValidationFailedError):
        make_key("binance", "BTC/USDT", "7m")
    pd.testing.assert_frame_equal(store.read_bars(key), bars)


def test_parquet_round_trip_is_exact_and_idempotent(store: BarStore, unique: str, tmp_path: Path) -> None:
    keys = [make_key(f"ex{unique}", s, "1h") for s in ("BTC/USDT", "ETH/USDT")]
    originals = {k: _bars(400, seed=i) for i, k in enumerate(keys)}
    for key, bars in originals.items():
        store.upsert_bars(key, bars)
    path = tmp_path / "lake" / "bars.parquet"
    assert export_parquet(store, path, keys) == 800
    for key in keys:
        store.delete_series(key)
    results = import_parquet(store, path)
    assert {k: r.inserted for k, r in results.items()} == {k: 400 for k in keys}
    for key, bars in originals.items():
        pd.testing.assert_frame_equal(store.read_bars(key), bars)
    again = import_parquet(store, path)
    assert all(r.changed == 0 for r in again.values())


def test_parquet_export_of_a_range(store: BarStore, unique: str, tmp_path: Path) -> None:
    key = make_key(f"ex{unique}", "BTC/USDT", "1h")
    bars = _bars(100)
    store.upsert_bars(key, bars)
    path = tmp_path / "part.parquet"
    assert export_parquet(store, path, [key], int(bars.ts[20]), int(bars.ts[30])) == 10


def test_corrupt_parquet_is_a_clear_error_and_changes_nothing(store: BarStore, unique: str, tmp_path: Path) -> None:
    key = make_key(f"ex{unique}", "BTC/USDT", "1h")
    bars = _bars(100)
    store.upsert_bars(key, bars)
    good = tmp_path / "good.parquet"
    export_parquet(store, good, [key])
    corrupt = tmp_path / "corrupt.parquet"
    data = good.read_bytes()
    corrupt.write_bytes(data[: len(data) // 2] + b"\x00" * 64 + data[len(data) // 2 + 64 :])
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(data[:-20])
    for path in (corrupt, truncated, tmp_path / "missing.parquet"):
        with pytest.raises(ValidationFailedError):
            import_parquet(store, path)
    pd.testing.assert_frame_equal(store.read_bars(key), bars)


def test_trades_are_stored_once(store: BarStore, unique: str) -> None:
    trades = pd.DataFrame(
        {
            "trade_id": ["1", "2", "3"],
            "ts": [1000, 2000, 3000],
            "price": [10.0, 11.0, 12.0],
            "amount": [1.0, 0.5, 0.25],
            "side": ["buy", "sell", "buy"],
        }
    )
    assert store.upsert_trades(f"ex{unique}", "BTC/USDT", trades) == 3
    assert store.upsert_trades(f"ex{unique}", "BTC/USDT", trades) == 0
    back = store.read_trades(f"ex{unique}", "BTC/USDT", 1500, 3500)
    assert back["trade_id"].tolist() == ["2", "3"]
