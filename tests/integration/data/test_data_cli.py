"""`iqts data` as a user runs it (argv through ``ui.cli.main.main``, settings from the environment), on the real
database; in process (``tests.support.cli``), which spares each command the app's import."""

from __future__ import annotations

import json
from pathlib import Path

from engine.settings import Settings
from tests.support.cli import CliResult, run_iqts, settings_env


def _iqts(settings: Settings, *args: str) -> CliResult:
    return run_iqts(*args, env=settings_env(settings))


def test_load_sample_then_list_shows_the_real_ranges(settings: Settings, db: object) -> None:
    loaded = _iqts(settings, "data", "load-sample")
    assert loaded.returncode == 0, loaded.stderr
    listed = _iqts(settings, "data", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    series = {(s["exchange"], s["symbol"], s["timeframe"]): s for s in json.loads(listed.stdout)}
    hourly = series[("coinbase", "BTC/USD", "1h")]
    assert hourly["first"].startswith("2017-07-01T11:00") and hourly["last"].startswith("2019-10-17T09:00")
    assert hourly["rows"] == 20_111
    assert series[("coinbase", "BTC/USD", "1d")]["first"].startswith("2014-12-01")
    assert ("bitstamp", "ETH/USD", "1d") in series and ("bitstamp", "LTC/USD", "1d") in series
    again = _iqts(settings, "data", "load-sample", "--json")
    assert all(row["inserted"] == 0 and row["updated"] == 0 for row in json.loads(again.stdout))


def test_quality_report_as_json(settings: Settings, db: object) -> None:
    _iqts(settings, "data", "load-sample")
    result = _iqts(settings, "data", "quality", "--json", "--exchange", "coinbase", "--timeframe", "1d")
    assert result.returncode == 0, result.stderr
    [report] = json.loads(result.stdout)
    assert report["symbol"] == "BTC/USD"
    assert isinstance(report["ok"], bool)


def test_bad_input_is_one_clear_line(settings: Settings, db: object, tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet at all")
    cases = [
        (["data", "import", str(bad)], "not a readable Parquet file"),
        (["data", "backfill", "nosuchexchange", "BTC/USDT"], "unknown exchange"),
        (["data", "backfill", "binance", "BTC/USDT", "--since", "2024-13-45"], "--since"),
        (
            ["data", "backfill", "binance", "BTC/USDT", "--since", "2024-02-01", "--until", "2024-01-01"],
            "impossible date range",
        ),
        (["data", "quality", "--exchange", "nowhere"], "no stored series"),
    ]
    for args, expected in cases:
        result = _iqts(settings, *args)
        assert result.returncode != 0, args
        assert expected in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_import_refuses_an_impossible_bar_and_writes_nothing(settings: Settings, db: object, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from engine.data.parquet import SCHEMA

    hour = 3_600_000
    rows = 4
    good = {
        "exchange": pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), ["importtest"]),
        "symbol": pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), ["ZZZ/USD"]),
        "timeframe": pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), ["1h"]),
        "ts": pa.array([i * hour for i in range(rows)], pa.int64()),
        "open": pa.array([10.0, 11.0, 12.0, 13.0]),
        "high": pa.array([12.0, 13.0, 14.0, 15.0]),
        "low": pa.array([9.0, 10.0, 11.0, 12.0]),
        "close": pa.array([11.0, 12.0, 0.0, 14.0]),  # bar 2 closes at zero
        "volume": pa.array([1.0, 1.0, 1.0, 1.0]),
    }
    path = tmp_path / "zero.parquet"
    pq.write_table(pa.table(good, schema=SCHEMA), path)
    result = _iqts(settings, "data", "import", str(path))
    assert result.returncode != 0
    assert "bar 2 at 1970-01-01T02:00:00Z has a price <= 0" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    listed = _iqts(settings, "data", "list", "--json")
    assert all(s["exchange"] != "importtest" for s in json.loads(listed.stdout))
