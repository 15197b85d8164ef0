"""Quality checks: seeded problems are caught, clean data passes, and what the real sample data holds."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from engine.data.frame import frame_from_arrays
from engine.data.quality import (
    Gap,
    QualityConfig,
    QualityReport,
    check_bars,
    find_gaps,
    gap_ranges_for_repair,
    spike_scores,
)
from engine.data.sample import SampleSeries, load_sample_series
from engine.errors import ValidationFailedError

H = 3_600_000
T0 = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp() * 1000)


def clean(n: int = 500, seed: int = 5) -> pd.DataFrame:
    """A sane hourly series: small random-walk moves, consistent OHLC."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.005, n)))
    open_ = np.r_[100.0, close[:-1]]
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.002, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.002, n))
    return frame_from_arrays(
        ts=T0 + H * np.arange(n), open=open_, high=high, low=low, close=close, volume=rng.uniform(1, 10, n)
    )


def report(df: pd.DataFrame, **kw: object) -> QualityReport:
    return check_bars(df, exchange="binance", symbol="BTC/USDT", timeframe="1h", **kw)  # type: ignore[arg-type]


def test_clean_data_passes() -> None:
    r = report(clean())
    assert r.ok and r.problems() == []
    assert (r.rows, r.expected_rows, r.missing_bars, r.spikes, r.bad_rows) == (500, 500, 0, 0, 0)
    assert r.first_ts == T0 and r.last_ts == T0 + 499 * H
    assert r.model_dump(mode="json")["ok"] is True


def test_empty_frame() -> None:
    r = report(clean().iloc[:0])
    assert r.ok and r.rows == 0 and r.first_ts is None and r.expected_rows == 0


def test_gaps_are_found_and_turned_into_repair_ranges() -> None:
    df = clean()
    df = df.drop(index=[10, 11, 12, 100, 103, 104]).reset_index(drop=True)
    r = report(df)
    assert not r.ok
    assert r.gaps == [
        Gap(from_ts=T0 + 10 * H, to_ts=T0 + 12 * H, missing=3),
        Gap(from_ts=T0 + 100 * H, to_ts=T0 + 100 * H, missing=1),
        Gap(from_ts=T0 + 103 * H, to_ts=T0 + 104 * H, missing=2),
    ]
    assert r.missing_bars == 6 and r.expected_rows == 500 and r.rows == 494
    assert gap_ranges_for_repair(r) == [
        (T0 + 10 * H, T0 + 13 * H),
        (T0 + 100 * H, T0 + 101 * H),
        (T0 + 103 * H, T0 + 105 * H),
    ]
    # bars 101 and 102 are present between the last two gaps: merging within 2 bars joins them
    assert gap_ranges_for_repair(r, merge_within_bars=2) == [(T0 + 10 * H, T0 + 13 * H), (T0 + 100 * H, T0 + 105 * H)]
    assert r.problems() == ["6 missing bars in 3 gaps"]
    with pytest.raises(ValidationFailedError):
        gap_ranges_for_repair(r, merge_within_bars=-1)


def test_find_gaps_handles_disorder_duplicates_and_misaligned_ts() -> None:
    assert find_gaps([3 * H, 0, 0, H], "1h") == [Gap(from_ts=2 * H, to_ts=2 * H, missing=1)]
    # a bar 30 minutes off the grid: one grid slot (1h) lies strictly between 0 and 1.5h
    assert find_gaps([0, H + H // 2], "1h") == [Gap(from_ts=H, to_ts=H, missing=1)]
    assert find_gaps([], "1h") == []


def test_duplicates_exact_and_conflicting() -> None:
    df = clean(50)
    dup_exact = df.iloc[[5]]
    dup_conflict = df.iloc[[9]].assign(close=df["close"].iloc[9] * 1.001)
    seeded = pd.concat(
        [df.iloc[:6], dup_exact, df.iloc[6:10], dup_conflict, dup_conflict, df.iloc[10:]], ignore_index=True
    )
    r = report(seeded)
    assert (r.duplicate_rows, r.duplicate_ts, r.conflicting_duplicate_ts) == (3, 2, 1)
    assert [(e.ts, e.rows, e.identical) for e in r.duplicate_examples] == [
        (T0 + 5 * H, 2, True),
        (T0 + 9 * H, 3, False),
    ]
    assert r.out_of_order_rows == 0 and r.missing_bars == 0 and not r.ok


def test_out_of_order_rows() -> None:
    df = clean(50)
    swapped = df.iloc[[0, 1, 2, 4, 3, *range(5, 50)]].reset_index(drop=True)
    r = report(swapped)
    assert r.out_of_order_rows == 1
    assert [(e.row, e.ts, e.previous_ts) for e in r.out_of_order_examples] == [(4, T0 + 3 * H, T0 + 4 * H)]
    assert r.missing_bars == 0 and r.duplicate_rows == 0  # order does not fake gaps
    moved = pd.concat([df.iloc[1:], df.iloc[:1]], ignore_index=True)  # first row appended at the end
    assert report(moved).out_of_order_rows == 1


def test_bad_ohlc_rows_and_nan() -> None:
    df = clean(60)
    df.loc[3, "high"] = df.loc[3, "low"] - 1  # high below low (and open/close outside)
    df.loc[7, "open"] = df.loc[7, "high"] + 1
    df.loc[11, "close"] = df.loc[11, "low"] - 0.5
    df.loc[13, "volume"] = -2.0
    df.loc[17, "low"] = 0.0  # non-positive price (and close/open are inside [0, high])
    df.loc[19, "close"] = np.nan
    df.loc[23, "volume"] = np.inf
    r = report(df, config=QualityConfig(spike_k=1e6))  # spikes are another test
    assert r.bad_row_counts == {
        "nan": 2,
        "high_below_low": 1,
        "open_outside_range": 2,
        "close_outside_range": 2,
        "nonpositive_price": 1,
        "negative_volume": 1,
    }
    assert r.bad_rows == 7
    examples = {e.row: e.problems for e in r.bad_row_examples}
    assert examples == {
        3: ["high_below_low", "open_outside_range", "close_outside_range"],
        7: ["open_outside_range"],
        11: ["close_outside_range"],
        13: ["negative_volume"],
        17: ["nonpositive_price"],
    }  # max_examples = 5
    nan_example = report(df, config=QualityConfig(max_examples=10, spike_k=1e6)).bad_row_examples[5]
    assert nan_example.row == 19 and nan_example.problems == ["nan"] and nan_example.close is None
    assert not r.ok and "7 bad rows" in r.problems()[0]


def test_a_spike_is_caught_and_ordinary_moves_are_not() -> None:
    df = clean(300)
    df.loc[150, ["high", "close"]] = df.loc[150, "close"] * 1.25  # a bad print, +22 % in log terms
    df.loc[151, "open"] = df.loc[150, "close"]
    df.loc[151, "high"] = max(df.loc[151, "high"], df.loc[151, "open"])
    r = report(df)
    assert r.spikes == 2  # there and back
    assert [e.ts for e in r.spike_examples] == [T0 + 150 * H, T0 + 151 * H]
    assert r.spike_examples[0].log_return == pytest.approx(np.log(df.loc[150, "close"] / df.loc[149, "close"]))
    assert r.spike_examples[0].log_return > 0.2
    assert r.bad_rows == 0 and r.missing_bars == 0
    # the same move on a series that moves like that all the time is not a spike
    wild = clean(300)
    rng = np.random.default_rng(1)
    factor = np.exp(np.cumsum(rng.normal(0, 0.2, 300)))
    for c in ("open", "high", "low", "close"):
        wild[c] = wild[c] * factor
    wild["open"] = np.r_[wild["open"].iloc[0], wild["close"].iloc[:-1]]
    wild["high"] = wild[["open", "high", "close"]].max(axis=1)
    wild["low"] = wild[["open", "low", "close"]].min(axis=1)
    assert report(wild).spikes == 0


def test_flat_stretches_do_not_make_every_tick_a_spike() -> None:
    close = np.r_[np.full(100, 100.0), 100.5, np.full(100, 100.5)]
    _, thr, spike = spike_scores(close)
    assert thr[99] == 0.0  # the MAD of a flat stretch is zero ...
    assert not spike.any()  # ... but a 0.5 % move is below the minimum size
    assert spike_scores(np.r_[np.full(100, 100.0), 120.0, np.full(100, 120.0)])[2].sum() == 1


def test_misaligned_timestamps() -> None:
    df = clean(10)
    df.loc[4, "ts"] = df.loc[4, "ts"] + 60_000
    r = report(df)
    assert r.misaligned_rows == 1 and r.misaligned_examples == [T0 + 4 * H + 60_000]
    assert not r.ok


def test_zero_volume_is_information_only() -> None:
    df = clean(10)
    df.loc[2, "volume"] = 0.0
    r = report(df)
    assert r.zero_volume_rows == 1 and r.ok


def test_report_round_trips_as_json() -> None:
    df = clean(40).drop(index=[5]).reset_index(drop=True)
    r = report(df)
    again = QualityReport.model_validate_json(r.model_dump_json())
    assert again.gaps == r.gaps and again.ok is False


def test_runs_fast_on_a_year_of_minutes() -> None:
    n = 525_600
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.0005, n)))
    df = frame_from_arrays(
        ts=T0 + 60_000 * np.arange(n), open=close, high=close, low=close, close=close, volume=np.ones(n)
    )
    r = check_bars(df, exchange="binance", symbol="BTC/USDT", timeframe="1m")
    assert r.rows == n and r.bad_rows == 0


# --- the real sample data ---------------------------------------------------------------------------

# Stated explicitly so that the facts below do not move if the defaults are tuned.
SPIKES = QualityConfig(spike_window=51, spike_k=10.0, spike_min_abs_log_return=0.05)


@pytest.fixture(scope="module")
def real() -> dict[tuple[str, str, str], tuple[SampleSeries, QualityReport]]:
    out = {}
    for s in load_sample_series():
        out[s.key] = (
            s,
            check_bars(s.frame, exchange=s.exchange, symbol=s.symbol, timeframe=s.timeframe, config=SPIKES),
        )
    return out


def test_real_data_structure_is_clean(real: dict[tuple[str, str, str], tuple[SampleSeries, QualityReport]]) -> None:
    for _, r in real.values():
        assert r.duplicate_rows == 0
        assert r.out_of_order_rows == 0
        assert r.misaligned_rows == 0
        assert r.bad_rows == 0  # no NaN, no OHLC violation, no negative volume in any file


def test_real_hourly_is_complete(real: dict[tuple[str, str, str], tuple[SampleSeries, QualityReport]]) -> None:
    _, r = real[("coinbase", "BTC/USD", "1h")]
    assert r.missing_bars == 0 and r.rows == r.expected_rows == 20_111
    assert r.zero_volume_rows == 28  # flat placeholder hours, e.g. 2018-08-10 01:00-15:00
    assert r.spikes == 18
    assert r.spike_examples[0].ts == ms(2018, 4, 12, 11)  # the real +11 % short squeeze of 12 April 2018
    assert r.problems() == ["18 spikes"]


def test_real_daily_series_share_one_gap(real: dict[tuple[str, str, str], tuple[SampleSeries, QualityReport]]) -> None:
    """Every daily file lacks 2019-03-20 .. 2019-03-31 (12 days); the hourly file has those days."""
    gap = [Gap(from_ts=ms(2019, 3, 20), to_ts=ms(2019, 3, 31), missing=12)]
    for key in [k for k in real if k[2] == "1d"]:
        _, r = real[key]
        assert r.gaps == gap, key
        assert gap_ranges_for_repair(r) == [(ms(2019, 3, 20), ms(2019, 4, 1))]
    assert real[("coinbase", "BTC/USD", "1d")][1].zero_volume_rows == 38


def test_real_daily_spikes(real: dict[tuple[str, str, str], tuple[SampleSeries, QualityReport]]) -> None:
    coinbase = real[("coinbase", "BTC/USD", "1d")][1]
    assert coinbase.spikes == 8
    # before Coinbase Exchange opened to the public (26 Jan 2015) a handful of BTC traded a day:
    # 2015-01-14 closed at 120 after 260 (Bitstamp closed at 162 after 221 that day)
    crash = next(e for e in coinbase.spike_examples if e.ts == ms(2015, 1, 14))
    assert crash.log_return == pytest.approx(np.log(120 / 260))
    bitstamp = real[("bitstamp", "BTC/USD", "1d")][1]
    assert [e.ts for e in bitstamp.spike_examples] == [
        ms(2016, 8, 2),
        ms(2019, 4, 2),
    ]  # Bitfinex hack; April 2019 rally
    assert real[("bitstamp", "ETH/USD", "1d")][1].spikes == 0
    assert real[("bitstamp", "LTC/USD", "1d")][1].spikes == 0
