from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.data.frame import (
    BAR_COLUMNS,
    bars_to_frame,
    empty_bar_frame,
    frame_from_arrays,
    frame_to_bars,
    from_arrays,
    to_arrays,
    validate_bar_frame,
)
from engine.data.models import Bar
from engine.errors import ValidationFailedError


def small() -> pd.DataFrame:
    return frame_from_arrays(
        ts=[0, 60_000, 120_000],
        open=[1, 2, 3],
        high=[2, 3, 4],
        low=[0.5, 1.5, 2.5],
        close=[2, 3, 3.5],
        volume=[1, 0, 2],
    )


def test_canonical_frame_layout() -> None:
    df = validate_bar_frame(small())
    assert tuple(df.columns) == BAR_COLUMNS == ("ts", "open", "high", "low", "close", "volume")
    assert df["ts"].dtype == np.int64
    assert all(df[c].dtype == np.float64 for c in BAR_COLUMNS[1:])
    assert validate_bar_frame(empty_bar_frame()).empty
    assert validate_bar_frame(df.iloc[1:]) is not None  # a slice is still a bar frame


def test_validate_rejects_structure_problems() -> None:
    df = small()
    with pytest.raises(ValidationFailedError, match="missing column"):
        validate_bar_frame(df.drop(columns="volume"))
    with pytest.raises(ValidationFailedError, match="'ts' must be int64"):
        validate_bar_frame(df.assign(ts=df["ts"].astype("float64")))
    with pytest.raises(ValidationFailedError, match="must be float64"):
        validate_bar_frame(df.assign(volume=df["volume"].astype("int64")))
    with pytest.raises(ValidationFailedError, match="exactly"):
        validate_bar_frame(df[["ts", "close", "open", "high", "low", "volume"]])
    with pytest.raises(ValidationFailedError, match="duplicate ts 60000 at row 2"):
        validate_bar_frame(df.assign(ts=np.array([0, 60_000, 60_000], dtype=np.int64)))
    with pytest.raises(ValidationFailedError, match="out-of-order ts 0 at row 1"):
        validate_bar_frame(df.assign(ts=np.array([60_000, 0, 120_000], dtype=np.int64)))
    with pytest.raises(ValidationFailedError, match="DataFrame"):
        validate_bar_frame([1, 2])


def test_arrays_round_trip() -> None:
    df = small()
    a = to_arrays(df)
    assert len(a) == 3 and a.ts.dtype == np.int64 and a.close.tolist() == [2, 3, 3.5]
    pd.testing.assert_frame_equal(from_arrays(a), df)


def test_bars_round_trip() -> None:
    df = small()
    bars = frame_to_bars(df, exchange="binance", symbol="BTC/USDT", timeframe="1m")
    assert bars[1] == Bar(
        exchange="binance", symbol="BTC/USDT", timeframe="1m", ts=60_000, open=2, high=3, low=1.5, close=3, volume=0
    )
    pd.testing.assert_frame_equal(bars_to_frame(bars), df)
    other = bars[0].model_copy(update={"symbol": "ETH/USDT"})
    with pytest.raises(ValidationFailedError, match="several series"):
        bars_to_frame([other, bars[1]])
