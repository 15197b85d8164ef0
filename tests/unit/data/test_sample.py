"""The shipped sample data: row counts and date ranges as documented in sample_data/SOURCES.md."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.data.frame import BAR_COLUMNS, validate_bar_frame
from engine.data.sample import (
    COINBASE_1H_FILE,
    SampleSeries,
    canonicalise,
    load_sample_series,
    parse_coinbase_csv,
    parse_wide_csv,
    sample_file,
)
from engine.errors import NotFoundError, ValidationFailedError

SHIPPED = Path(__file__).resolve().parents[3] / "engine" / "data" / "sample_data"


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture(scope="module")
def series() -> dict[tuple[str, str, str], SampleSeries]:
    return {s.key: s for s in load_sample_series()}


# (exchange, symbol, timeframe): rows, first bar, last bar. From SOURCES.md; the ETH and LTC starts are the
# first non-empty cells of the wide Bitstamp file.
EXPECTED = {
    ("coinbase", "BTC/USD", "1h"): (20_111, ms(2017, 7, 1, 11), ms(2019, 10, 17, 9)),
    ("coinbase", "BTC/USD", "1d"): (1_770, ms(2014, 12, 1), ms(2019, 10, 17)),
    ("bitstamp", "BTC/USD", "1d"): (1_865, ms(2014, 11, 28), ms(2020, 1, 17)),
    ("bitstamp", "ETH/USD", "1d"): (788, ms(2017, 11, 9), ms(2020, 1, 17)),
    ("bitstamp", "LTC/USD", "1d"): (925, ms(2017, 6, 25), ms(2020, 1, 17)),
}


def test_every_series_is_there(series: dict[tuple[str, str, str], SampleSeries]) -> None:
    assert sorted(series) == sorted(EXPECTED)


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_rows_and_real_date_ranges(series: dict[tuple[str, str, str], SampleSeries], key: tuple[str, str, str]) -> None:
    s = series[key]
    rows, first, last = EXPECTED[key]
    assert (s.rows, s.first_ts, s.last_ts) == (rows, first, last)
    validate_bar_frame(s.frame)  # ascending, unique, canonical dtypes
    assert tuple(s.frame.columns) == BAR_COLUMNS
    assert s.exact_duplicates_dropped == 0  # the real files have none


def test_wide_file_drops_cells_before_listing(series: dict[tuple[str, str, str], SampleSeries]) -> None:
    total = 1_865  # data rows in the Bitstamp file
    assert series[("bitstamp", "BTC/USD", "1d")].empty_rows_dropped == 0
    assert series[("bitstamp", "ETH/USD", "1d")].empty_rows_dropped == total - 788
    assert series[("bitstamp", "LTC/USD", "1d")].empty_rows_dropped == total - 925
    for s in series.values():
        assert not s.frame.isna().any().any()


def test_first_and_last_hourly_bars_match_the_file(series: dict[tuple[str, str, str], SampleSeries]) -> None:
    # hand-copied from the last and second lines of Coinbase_BTCUSD_1h.csv (newest first)
    f = series[("coinbase", "BTC/USD", "1h")].frame
    assert f.iloc[0].tolist() == [ms(2017, 7, 1, 11), 2505.56, 2513.38, 2495.12, 2509.17, 114.6]
    assert f.iloc[-1].tolist() == [ms(2019, 10, 17, 9), 8051.0, 8056.83, 8021.23, 8035.88, 61.25]
    # 12-AM is midnight and 12-PM is noon on the 12-hour clock of the file
    day = f[(f["ts"] >= ms(2019, 10, 16)) & (f["ts"] < ms(2019, 10, 17))]
    assert day["ts"].tolist() == [ms(2019, 10, 16, h) for h in range(24)]


def test_volume_is_base_currency() -> None:
    """volume_btc (the loaded column) times a price inside the bar gives the file's USD volume."""
    with sample_file(COINBASE_1H_FILE) as path:
        raw = pd.read_csv(path, skiprows=1)
        loaded = parse_coinbase_csv(path, "1h")
    np.testing.assert_array_equal(loaded["volume"].to_numpy(), raw["volume_btc"].to_numpy())
    traded = raw["volume_btc"] > 0
    vwap = raw.loc[traded, "volume"] / raw.loc[traded, "volume_btc"]
    rounding = 1e-3  # the file rounds volumes to a few decimals
    inside = (vwap >= raw.loc[traded, "low"] * (1 - rounding)) & (vwap <= raw.loc[traded, "high"] * (1 + rounding))
    assert inside.all()


def test_shipped_files_are_verbatim_copies() -> None:
    shared = Path("/work/shared/data")
    if not shared.is_dir():
        pytest.skip("the shared data folder is not present on this machine")
    for name in ("Coinbase_BTCUSD_1h.csv", "Coinbase_BTCUSD_d.csv", "Bitstamp_BTC-ETH-LTC-USD_d.csv", "SOURCES.md"):
        assert (SHIPPED / name).read_bytes() == (shared / name).read_bytes()


def test_unknown_sample_file() -> None:
    with pytest.raises(NotFoundError, match="not shipped"), sample_file("nope.csv"):
        pass


# --- the loader's rules, on small files written here --------------------------------------------

HEADER = "date,symbol,open,high,low,close,volume_btc,volume\n"


def write(tmp_path: Path, body: str, name: str = "c.csv") -> Path:
    p = tmp_path / name
    p.write_text(body)
    return p


def test_newest_first_file_comes_out_ascending(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "banner,https://example\n" + HEADER + "2020-01-02 01-PM,BTCUSD,3,4,2,3.5,1,3\n"
        "2020-01-02 12-PM,BTCUSD,2,3,1,3,2,5\n2020-01-02 12-AM,BTCUSD,1,2,1,2,3,4\n",
    )
    s = canonicalise(parse_coinbase_csv(p, "1h"), exchange="coinbase", symbol="BTC/USD", timeframe="1h", source=p.name)
    assert s.frame["ts"].tolist() == [ms(2020, 1, 2, 0), ms(2020, 1, 2, 12), ms(2020, 1, 2, 13)]
    assert s.frame["close"].tolist() == [2.0, 3.0, 3.5]


def test_exact_duplicate_rows_collapse_and_are_counted(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "banner\n" + HEADER + "2020-01-03,BTCUSD,2,3,1,2,1,2\n2020-01-02,BTCUSD,1,2,1,2,1,2\n"
        "2020-01-02,BTCUSD,1,2,1,2,1,2\n",
    )
    s = canonicalise(parse_coinbase_csv(p, "1d"), exchange="coinbase", symbol="BTC/USD", timeframe="1d", source=p.name)
    assert s.rows == 2 and s.exact_duplicates_dropped == 1


def test_conflicting_duplicates_are_refused(tmp_path: Path) -> None:
    p = write(tmp_path, "banner\n" + HEADER + "2020-01-02,BTCUSD,1,2,1,2,1,2\n2020-01-02,BTCUSD,1,2,1,1.5,1,2\n")
    with pytest.raises(ValidationFailedError, match=r"2 rows share a timestamp but differ.*2020-01-02T00:00:00\+00:00"):
        canonicalise(parse_coinbase_csv(p, "1d"), exchange="coinbase", symbol="BTC/USD", timeframe="1d", source=p.name)


def test_bad_values_are_kept_for_the_quality_report(tmp_path: Path) -> None:
    p = write(tmp_path, "banner\n" + HEADER + "2020-01-02,BTCUSD,1,0.5,1,2,-1,2\n")
    s = canonicalise(parse_coinbase_csv(p, "1d"), exchange="coinbase", symbol="BTC/USD", timeframe="1d", source=p.name)
    assert s.frame.iloc[0].tolist() == [ms(2020, 1, 2), 1.0, 0.5, 1.0, 2.0, -1.0]


def test_layout_errors_are_clear(tmp_path: Path) -> None:
    wrong_header = write(tmp_path, "banner\ndate,open,high,low,close\n2020-01-02,1,1,1,1\n")
    with pytest.raises(ValidationFailedError, match="unexpected header"):
        parse_coinbase_csv(wrong_header, "1d")
    wrong_date = write(tmp_path, "banner\n" + HEADER + "02/01/2020,BTCUSD,1,1,1,1,1,1\n", "d.csv")
    with pytest.raises(ValidationFailedError, match="does not match the format"):
        parse_coinbase_csv(wrong_date, "1d")
    with pytest.raises(ValidationFailedError, match="no Coinbase sample layout for timeframe '5m'"):
        parse_coinbase_csv(wrong_date, "5m")


def test_wide_layout(tmp_path: Path) -> None:
    fields = ("open", "high", "low", "close", "volume")
    header = "," + ",".join(f"{c}:{f}" for c in ("AAA", "BBB") for f in fields) + "\n"
    p = write(
        tmp_path,
        header + "2020-01-01,1,2,1,2,5,,,,,\n"  # BBB not listed yet
        "2020-01-02,2,3,2,3,5,10,11,9,10,7\n"
        "2020-01-03,3,4,3,4,5,,,,,\n"  # BBB silent for a day: dropped (a gap)
        "2020-01-04,4,5,4,5,5,10,11,9,,7\n",  # a missing close: kept as NaN
        "w.csv",
    )
    per_coin = parse_wide_csv(p)
    assert list(per_coin) == ["AAA", "BBB"]
    b = canonicalise(per_coin["BBB"], exchange="bitstamp", symbol="BBB/USD", timeframe="1d", source=p.name)
    assert b.frame["ts"].tolist() == [ms(2020, 1, 2), ms(2020, 1, 4)]
    assert b.empty_rows_dropped == 2
    assert np.isnan(b.frame["close"].iloc[1])
    bad = write(tmp_path, ",AAA:open,AAA:mid\n2020-01-01,1,2\n", "bad.csv")
    with pytest.raises(ValidationFailedError, match="unexpected column 'AAA:mid'"):
        parse_wide_csv(bad)
