"""PostgreSQL binary COPY of fixed-width bar rows built and parsed with numpy (no per-row Python).

A bar row (int4 series_id or none, int8 ts, five float8) has a fixed size in the binary COPY format, so a
whole frame is one numpy structured array: ~20x faster than psycopg's row-by-row ``write_row``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from engine.data.frame import BAR_COLUMNS, FloatArray, IntArray

HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
TRAILER = (-1).to_bytes(2, "big", signed=True)
_VALUE_FIELDS = [(name, ">f8") for name in BAR_COLUMNS[1:]]


def _row_dtype(with_series: bool) -> np.dtype[np.void]:
    fields: list[tuple[str, str]] = [("nfields", ">i2")]
    if with_series:
        fields += [("series_len", ">i4"), ("series_id", ">i4")]
    fields += [("ts_len", ">i4"), ("ts", ">i8")]
    for name, kind in _VALUE_FIELDS:
        fields += [(f"{name}_len", ">i4"), (name, kind)]
    return np.dtype(fields)


def encode_bars(series_id: int | None, ts: IntArray, values: dict[str, FloatArray]) -> bytes:
    """Binary COPY payload for (series_id?, ts, open, high, low, close, volume) rows."""
    dtype = _row_dtype(series_id is not None)
    rows = np.empty(ts.shape[0], dtype=dtype)
    rows["nfields"] = len(BAR_COLUMNS) + (1 if series_id is not None else 0)
    if series_id is not None:
        rows["series_len"] = 4
        rows["series_id"] = series_id
    rows["ts_len"] = 8
    rows["ts"] = ts
    for name, _ in _VALUE_FIELDS:
        rows[f"{name}_len"] = 8
        rows[name] = values[name]
    return HEADER + rows.tobytes() + TRAILER


def decode_bars(payload: bytes | bytearray | memoryview) -> dict[str, npt.NDArray[np.int64] | npt.NDArray[np.float64]]:
    """Parse ``COPY (SELECT ts, open, high, low, close, volume ...) TO STDOUT (FORMAT BINARY)`` output."""
    data = memoryview(payload)
    if bytes(data[:11]) != HEADER[:11]:
        raise ValueError("not a PostgreSQL binary COPY stream")
    ext_len = int.from_bytes(data[15:19], "big")
    body = data[19 + ext_len : len(data) - 2]
    dtype = _row_dtype(False)
    rows = np.frombuffer(body, dtype=dtype)
    out: dict[str, npt.NDArray[np.int64] | npt.NDArray[np.float64]] = {"ts": rows["ts"].astype(np.int64)}
    for name, _ in _VALUE_FIELDS:
        out[name] = rows[name].astype(np.float64)
    return out
