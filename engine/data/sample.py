"""The real market history shipped with IQTS (``sample_data/``, see its SOURCES.md) as canonical bar frames.

Three CryptoDataDownload files, two layouts:

* ``Coinbase_BTCUSD_1h.csv`` and ``Coinbase_BTCUSD_d.csv``: line 1 a banner, then the header
  ``date,symbol,open,high,low,close,volume_btc,volume``, newest row first; hourly dates look like
  ``2019-10-17 09-AM`` (12-hour clock), daily ones ``2019-10-17``. ``volume_btc`` is the base volume
  (what a bar's ``volume`` means everywhere in IQTS); ``volume`` is the quote (USD) volume, not loaded.
* ``Bitstamp_BTC-ETH-LTC-USD_d.csv``: wide, oldest first; an unnamed date column then
  ``BTC:open,...,BTC:volume,ETH:open,...`` per coin. A coin's cells are empty before it was listed.
  ``<coin>:volume`` is taken as base volume (its size, thousands of BTC a day on Bitstamp in 2014, only
  fits a base-currency figure; the file does not say).

Timestamps in the files are UTC bucket open times. The loader turns each series into a canonical bar
frame (ascending, unique ts) and fixes nothing else: values are kept as they are, so whatever is wrong
in them is for ``engine.data.quality`` to report. What it does do, and counts in :class:`SampleSeries`:

* rows are sorted ascending by ts (the Coinbase files are newest first);
* rows whose five value cells are all empty are dropped (Bitstamp: a coin before its listing);
  a row with only some cells empty is kept, with NaN, for the quality report to flag;
* exact duplicate rows (same ts and identical values) are collapsed to one row;
* duplicate timestamps with different values are refused (ValidationFailedError): there is no honest
  way to choose between them.

The last bar of each file was most likely still forming when the file was made (for instance the
final daily Coinbase bar, 2019-10-17, has a fifth of a normal day's volume). It is kept as published.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from engine.data.frame import BAR_COLUMNS, VALUE_COLUMNS, frame_from_arrays, validate_bar_frame
from engine.data.models import parse_symbol
from engine.data.timeframes import Timeframe, validate_timeframe
from engine.errors import NotFoundError, ValidationFailedError
from engine.telemetry import get_logger

log = get_logger(__name__)

SAMPLE_PACKAGE: Final = "engine.data"
SAMPLE_DIRNAME: Final = "sample_data"

COINBASE_1H_FILE: Final = "Coinbase_BTCUSD_1h.csv"
COINBASE_1D_FILE: Final = "Coinbase_BTCUSD_d.csv"
BITSTAMP_1D_FILE: Final = "Bitstamp_BTC-ETH-LTC-USD_d.csv"

COINBASE_BANNER_LINES: Final = 1
COINBASE_COLUMNS: Final[tuple[str, ...]] = (
    "date",
    "symbol",
    "open",
    "high",
    "low",
    "close",
    "volume_btc",
    "volume",
)
COINBASE_BASE_VOLUME_COLUMN: Final = "volume_btc"
COINBASE_DATE_FORMATS: Final[dict[str, str]] = {"1h": "%Y-%m-%d %I-%p", "1d": "%Y-%m-%d"}
BITSTAMP_DATE_FORMAT: Final = "%Y-%m-%d"
WIDE_FIELD_SEPARATOR: Final = ":"
DUPLICATE_EXAMPLES: Final = 5


@dataclass(frozen=True)
class SampleSeries:
    """One shipped series: its identity, its canonical bar frame, and what the loader did to get there."""

    exchange: str
    symbol: str
    timeframe: Timeframe
    frame: pd.DataFrame
    source: str
    """File name inside ``sample_data/``."""
    exact_duplicates_dropped: int = 0
    """Rows removed because an identical row (same ts, same values) was already there."""
    empty_rows_dropped: int = 0
    """Rows with no values at all (Bitstamp: before the coin was listed)."""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.exchange, self.symbol, self.timeframe)

    @property
    def rows(self) -> int:
        return len(self.frame)

    @property
    def first_ts(self) -> int | None:
        return int(self.frame["ts"].iloc[0]) if len(self.frame) else None

    @property
    def last_ts(self) -> int | None:
        return int(self.frame["ts"].iloc[-1]) if len(self.frame) else None


@contextlib.contextmanager
def sample_file(name: str) -> Iterator[Path]:
    """A filesystem path to a shipped sample file for the duration of the ``with`` block."""
    resource = resources.files(SAMPLE_PACKAGE).joinpath(SAMPLE_DIRNAME, name)
    if not resource.is_file():
        raise NotFoundError(f"sample data file {name!r} is not shipped with this installation")
    with resources.as_file(resource) as path:
        yield path


def _to_ms(dates: pd.Series, fmt: str, source: str) -> npt.NDArray[np.int64]:
    try:
        parsed = pd.to_datetime(dates, format=fmt, utc=True)
    except (ValueError, TypeError) as exc:
        raise ValidationFailedError(f"{source}: a date does not match the format {fmt!r}: {exc}") from None
    ms: npt.NDArray[np.int64] = pd.DatetimeIndex(parsed).as_unit("ms").asi8.astype(np.int64)
    return ms


def parse_coinbase_csv(path: Path, timeframe: str) -> pd.DataFrame:
    """Read a CryptoDataDownload Coinbase file into a raw bar frame in file order (not canonicalised)."""
    tf = validate_timeframe(timeframe)
    if tf not in COINBASE_DATE_FORMATS:
        raise ValidationFailedError(
            f"no Coinbase sample layout for timeframe {tf!r}; known: {', '.join(COINBASE_DATE_FORMATS)}"
        )
    raw = pd.read_csv(path, skiprows=COINBASE_BANNER_LINES, dtype={"date": str, "symbol": str})
    if tuple(raw.columns) != COINBASE_COLUMNS:
        raise ValidationFailedError(
            f"{path.name}: unexpected header {list(raw.columns)}; expected {list(COINBASE_COLUMNS)}"
        )
    symbols = raw["symbol"].unique().tolist()
    if len(symbols) > 1:
        raise ValidationFailedError(f"{path.name}: several symbols in one file: {symbols}")
    ts = _to_ms(raw["date"], COINBASE_DATE_FORMATS[tf], path.name)
    return frame_from_arrays(
        ts=ts,
        open=raw["open"],
        high=raw["high"],
        low=raw["low"],
        close=raw["close"],
        volume=raw[COINBASE_BASE_VOLUME_COLUMN],
    )


def parse_wide_csv(path: Path) -> dict[str, pd.DataFrame]:
    """Read the wide Bitstamp layout into one raw bar frame per coin, in file order, all rows kept."""
    raw = pd.read_csv(path)
    date_col = raw.columns[0]
    fields = ("open", "high", "low", "close", "volume")
    coins: list[str] = []
    for col in raw.columns[1:]:
        coin, sep, field = str(col).partition(WIDE_FIELD_SEPARATOR)
        if not sep or field not in fields:
            raise ValidationFailedError(f"{path.name}: unexpected column {col!r}; expected COIN:open ... COIN:volume")
        if coin not in coins:
            coins.append(coin)
    ts = _to_ms(raw[date_col].astype(str), BITSTAMP_DATE_FORMAT, path.name)
    out: dict[str, pd.DataFrame] = {}
    for coin in coins:
        missing = [f"{coin}:{f}" for f in fields if f"{coin}:{f}" not in raw.columns]
        if missing:
            raise ValidationFailedError(f"{path.name}: coin {coin} lacks column(s) {missing}")
        out[coin] = frame_from_arrays(ts=ts, **{f: raw[f"{coin}:{f}"] for f in fields})
    return out


def canonicalise(raw: pd.DataFrame, *, exchange: str, symbol: str, timeframe: str, source: str) -> SampleSeries:
    """Turn a raw bar frame into a :class:`SampleSeries` by the rules in the module docstring."""
    tf = validate_timeframe(timeframe)
    unified = parse_symbol(symbol).unified
    empty = raw.loc[:, list(VALUE_COLUMNS)].isna().all(axis=1).to_numpy()
    ordered = raw.loc[~empty, list(BAR_COLUMNS)].sort_values("ts", kind="stable").reset_index(drop=True)
    exact = ordered.duplicated(keep="first").to_numpy()  # NaN equals NaN here, as wanted
    deduped = ordered.loc[~exact].reset_index(drop=True)
    clash = deduped["ts"].duplicated(keep=False).to_numpy()
    if clash.any():
        examples = sorted(set(deduped.loc[clash, "ts"].tolist()))[:DUPLICATE_EXAMPLES]
        when = ", ".join(pd.Timestamp(t, unit="ms", tz="UTC").isoformat() for t in examples)
        raise ValidationFailedError(
            f"{source} ({unified} {tf}): {int(clash.sum())} rows share a timestamp but differ in value "
            f"(first: {when}); refusing to pick one"
        )
    series = SampleSeries(
        exchange=exchange,
        symbol=unified,
        timeframe=tf,
        frame=validate_bar_frame(deduped),
        source=source,
        exact_duplicates_dropped=int(exact.sum()),
        empty_rows_dropped=int(empty.sum()),
    )
    if series.exact_duplicates_dropped:
        log.warning(
            "sample_exact_duplicates_dropped",
            source=source,
            symbol=unified,
            timeframe=tf,
            rows=series.exact_duplicates_dropped,
        )
    return series


def load_coinbase_csv(
    name: str, timeframe: str, *, exchange: str = "coinbase", symbol: str = "BTC/USD"
) -> SampleSeries:
    """Load one shipped file in the Coinbase layout (``name`` inside ``sample_data/``)."""
    with sample_file(name) as path:
        raw = parse_coinbase_csv(path, timeframe)
    return canonicalise(raw, exchange=exchange, symbol=symbol, timeframe=timeframe, source=name)


def load_wide_csv(name: str, timeframe: str, *, exchange: str = "bitstamp", quote: str = "USD") -> list[SampleSeries]:
    """Load one shipped file in the wide layout: one series per coin, symbols ``<COIN>/<quote>``."""
    with sample_file(name) as path:
        per_coin = parse_wide_csv(path)
    return [
        canonicalise(raw, exchange=exchange, symbol=f"{coin}/{quote}", timeframe=timeframe, source=name)
        for coin, raw in per_coin.items()
    ]


def load_sample_series() -> list[SampleSeries]:
    """Every shipped series: Coinbase BTC/USD 1h and 1d, Bitstamp BTC/USD, ETH/USD and LTC/USD 1d."""
    series = [
        load_coinbase_csv(COINBASE_1H_FILE, "1h"),
        load_coinbase_csv(COINBASE_1D_FILE, "1d"),
        *load_wide_csv(BITSTAMP_1D_FILE, "1d"),
    ]
    for s in series:
        log.debug("sample_series_loaded", exchange=s.exchange, symbol=s.symbol, timeframe=s.timeframe, rows=s.rows)
    return series
