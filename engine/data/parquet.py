"""Parquet export and import of stored bars (the data-lake path), round-trip exact and idempotent.

One file holds any number of series: columns exchange, symbol, timeframe (dictionary-encoded), ts (int64 ms),
open, high, low, close, volume (float64). Import validates everything before writing anything.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from engine.data.frame import BAR_COLUMNS, check_bar_values, validate_bar_frame
from engine.data.store import BarStore, SeriesKey, UpsertResult, make_key
from engine.errors import IQTSError, ValidationFailedError

FORMAT_KEY = b"iqts.format"
FORMAT_VALUE = b"bars/1"
KEY_COLUMNS = ("exchange", "symbol", "timeframe")

SCHEMA = pa.schema(
    [
        pa.field("exchange", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("symbol", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("timeframe", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("ts", pa.int64(), nullable=False),
        *[pa.field(c, pa.float64(), nullable=False) for c in BAR_COLUMNS[1:]],
    ],
    metadata={FORMAT_KEY: FORMAT_VALUE},
)


def export_parquet(
    store: BarStore, path: Path, keys: list[SeriesKey] | None = None, start: int | None = None, end: int | None = None
) -> int:
    """Write the chosen series (all by default) within ``[start, end)`` to ``path``; return rows written."""
    chosen = keys if keys is not None else [make_key(s.exchange, s.symbol, s.timeframe) for s in store.series()]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".partial")
    total = 0
    with pq.ParquetWriter(tmp, SCHEMA, compression="zstd") as writer:
        for key in chosen:
            frame = store.read_bars(key, start, end)
            if frame.empty:
                continue
            table = pa.table(
                {
                    "exchange": pa.DictionaryArray.from_arrays(pa.array([0] * len(frame), pa.int32()), [key.exchange]),
                    "symbol": pa.DictionaryArray.from_arrays(pa.array([0] * len(frame), pa.int32()), [key.symbol]),
                    "timeframe": pa.DictionaryArray.from_arrays(
                        pa.array([0] * len(frame), pa.int32()), [key.timeframe]
                    ),
                    **{c: pa.array(frame[c].to_numpy()) for c in BAR_COLUMNS},
                },
                schema=SCHEMA,
            )
            writer.write_table(table)
            total += len(frame)
    tmp.replace(path)
    return total


def read_parquet(path: Path) -> dict[SeriesKey, pd.DataFrame]:
    """Read and validate an exported file into bar frames per series (raises a clear error if unusable)."""
    if not path.exists():
        raise ValidationFailedError(f"no such file: {path}")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise ValidationFailedError(f"{path} is not a readable Parquet file: {error}") from None
    metadata = table.schema.metadata or {}
    if metadata.get(FORMAT_KEY) != FORMAT_VALUE:
        missing = [c for c in (*KEY_COLUMNS, *BAR_COLUMNS) if c not in table.column_names]
        if missing:
            raise ValidationFailedError(f"{path} is not an IQTS bars file: missing column(s) {missing}")
    frame = table.to_pandas()
    for column in KEY_COLUMNS:
        frame[column] = frame[column].astype(str)
    if frame[list(BAR_COLUMNS)].isna().to_numpy().any():
        raise ValidationFailedError(f"{path} has empty values in bar columns")
    out: dict[SeriesKey, pd.DataFrame] = {}
    for (exchange, symbol, timeframe), group in frame.groupby(list(KEY_COLUMNS), sort=False, observed=True):
        key = make_key(str(exchange), str(symbol), str(timeframe))
        bars = group[list(BAR_COLUMNS)].astype({"ts": "int64", **dict.fromkeys(BAR_COLUMNS[1:], "float64")})
        bars = bars.sort_values("ts").reset_index(drop=True)
        try:
            out[key] = validate_bar_frame(bars)
            check_bar_values(bars)
        except IQTSError as error:
            raise ValidationFailedError(f"{path}: series {key}: {error}") from None
    return out


def import_parquet(store: BarStore, path: Path) -> dict[SeriesKey, UpsertResult]:
    """Upsert every series in ``path``; the whole file is validated before the first write."""
    series = read_parquet(path)
    return {key: store.upsert_bars(key, frame) for key, frame in series.items()}
