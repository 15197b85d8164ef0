"""Bars and trades in PostgreSQL: idempotent bulk upsert through binary COPY, reads straight into numpy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from psycopg import Connection, sql
from psycopg.rows import TupleRow
from pydantic import BaseModel

from engine.data.frame import BAR_COLUMNS, VALUE_COLUMNS, empty_bar_frame, validate_bar_frame
from engine.data.models import parse_symbol
from engine.data.pgcopy import decode_bars, encode_bars
from engine.data.timeframes import validate_timeframe
from engine.errors import NotFoundError, ValidationFailedError
from engine.store.database import Database
from engine.telemetry import get_logger

log = get_logger(__name__)

_SERIES_LOCK_NAMESPACE = 0x1A75_0002  # pg_advisory_xact_lock(namespace, series_id): one writer per series


class SeriesKey(BaseModel, frozen=True):
    """Which series: exchange id (ccxt's, lower case), unified symbol, timeframe."""

    exchange: str
    symbol: str
    timeframe: str

    def __str__(self) -> str:
        return f"{self.exchange}:{self.symbol}:{self.timeframe}"


class SeriesInfo(BaseModel):
    """What is stored for one series (``iqts data list``)."""

    exchange: str
    symbol: str
    timeframe: str
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    first_ts: int | None
    last_ts: int | None
    rows: int

    model_config = {"arbitrary_types_allowed": True}


@dataclass(frozen=True)
class UpsertResult:
    """Rows written by an upsert: ``inserted`` new, ``updated`` changed; identical rows count in neither."""

    inserted: int
    updated: int

    @property
    def changed(self) -> int:
        return self.inserted + self.updated


def make_key(exchange: str, symbol: str, timeframe: str) -> SeriesKey:
    """Validate the three parts of a series key, with clear errors."""
    exchange = exchange.strip().lower()
    if not exchange.isidentifier():
        raise ValidationFailedError(f"exchange id {exchange!r} is not valid (use ccxt's id, e.g. 'binance')")
    parse_symbol(symbol)
    validate_timeframe(timeframe)
    return SeriesKey(exchange=exchange, symbol=symbol, timeframe=timeframe)


def _to_ts(ms: int | None) -> pd.Timestamp | None:
    return None if ms is None else pd.Timestamp(ms, unit="ms", tz="UTC")


class BarStore:
    """Repository of bars (and trades) on a Database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- series --------------------------------------------------------------------------------
    def _series_id(self, conn: Connection[TupleRow], key: SeriesKey, *, create: bool) -> int | None:
        row = conn.execute(
            "SELECT id FROM market_series WHERE exchange = %s AND symbol = %s AND timeframe = %s",
            (key.exchange, key.symbol, key.timeframe),
        ).fetchone()
        if row is not None or not create:
            return None if row is None else int(row[0])
        row = conn.execute(
            "INSERT INTO market_series (exchange, symbol, timeframe) VALUES (%s, %s, %s) "
            "ON CONFLICT (exchange, symbol, timeframe) DO UPDATE SET exchange = EXCLUDED.exchange RETURNING id",
            (key.exchange, key.symbol, key.timeframe),
        ).fetchone()
        assert row is not None
        return int(row[0])

    def series(self) -> list[SeriesInfo]:
        """Every stored series with its first and last bar and row count."""
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT s.exchange, s.symbol, s.timeframe, b.first_ts, b.last_ts, coalesce(b.n, 0) "
                "FROM market_series s LEFT JOIN LATERAL ("
                "  SELECT min(ts) AS first_ts, max(ts) AS last_ts, count(*) AS n FROM bars WHERE series_id = s.id"
                ") b ON true ORDER BY s.exchange, s.symbol, s.timeframe"
            ).fetchall()
        return [
            SeriesInfo(
                exchange=r[0],
                symbol=r[1],
                timeframe=r[2],
                first_ts=r[3],
                last_ts=r[4],
                first=_to_ts(r[3]),
                last=_to_ts(r[4]),
                rows=int(r[5]),
            )
            for r in rows
        ]

    def last_ts(self, key: SeriesKey) -> int | None:
        """Open time of the newest stored bar of a series (None when empty)."""
        with self.db.connection() as conn:
            series_id = self._series_id(conn, key, create=False)
            if series_id is None:
                return None
            row = conn.execute("SELECT max(ts) FROM bars WHERE series_id = %s", (series_id,)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    # -- writing -------------------------------------------------------------------------------
    def upsert_bars(self, key: SeriesKey, frame: pd.DataFrame) -> UpsertResult:
        """Insert or update bars; loading the same bars twice changes nothing (idempotent).

        New ranges are COPYed straight into ``bars``; ranges that overlap stored bars go through a
        staging table and ``INSERT ... ON CONFLICT DO UPDATE ... WHERE IS DISTINCT FROM``.
        """
        frame = validate_bar_frame(frame)
        if frame.empty:
            return UpsertResult(0, 0)
        ts = frame["ts"].to_numpy(dtype=np.int64)
        values = {c: frame[c].to_numpy(dtype=np.float64) for c in VALUE_COLUMNS}
        with self.db.connection() as conn:
            series_id = self._series_id(conn, key, create=True)
            assert series_id is not None
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_SERIES_LOCK_NAMESPACE, series_id))
            overlap = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM bars WHERE series_id = %s AND ts BETWEEN %s AND %s)",
                (series_id, int(ts[0]), int(ts[-1])),
            ).fetchone()
            payload = encode_bars(series_id, ts, values)
            if overlap is not None and not overlap[0]:
                with conn.cursor().copy(
                    "COPY bars (series_id, ts, open, high, low, close, volume) FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    copy.write(payload)
                result = UpsertResult(inserted=len(ts), updated=0)
            else:
                result = self._merge(conn, payload)
        log.debug("bars.upserted", series=str(key), inserted=result.inserted, updated=result.updated)
        return result

    def _merge(self, conn: Connection[TupleRow], payload: bytes) -> UpsertResult:
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS bars_staging (LIKE bars INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        with conn.cursor().copy(
            "COPY bars_staging (series_id, ts, open, high, low, close, volume) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.write(payload)
        rows = conn.execute(
            "INSERT INTO bars AS b SELECT * FROM bars_staging ON CONFLICT (series_id, ts) DO UPDATE SET "
            "open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close, "
            "volume = EXCLUDED.volume "
            "WHERE (b.open, b.high, b.low, b.close, b.volume) IS DISTINCT FROM "
            "(EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close, EXCLUDED.volume) "
            "RETURNING (xmax = 0)"
        ).fetchall()
        inserted = sum(1 for r in rows if r[0])
        return UpsertResult(inserted=inserted, updated=len(rows) - inserted)

    def upsert_trades(self, exchange: str, symbol: str, trades: pd.DataFrame) -> int:
        """Store trades (columns trade_id, ts, price, amount, side); duplicates by trade id are ignored."""
        needed = {"trade_id", "ts", "price", "amount", "side"}
        missing = needed - set(trades.columns)
        if missing:
            raise ValidationFailedError(f"trades are missing column(s) {sorted(missing)}")
        if trades.empty:
            return 0
        with self.db.connection() as conn:
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS trades_staging (LIKE market_trades) ON COMMIT DELETE ROWS")
            with conn.cursor().copy(
                "COPY trades_staging (exchange, symbol, trade_id, ts, price, amount, side) FROM STDIN"
            ) as copy:
                for row in trades.itertuples(index=False):
                    copy.write_row(
                        (
                            exchange,
                            symbol,
                            str(row.trade_id),
                            int(row.ts),
                            float(row.price),
                            float(row.amount),
                            row.side,
                        )
                    )
            cur = conn.execute("INSERT INTO market_trades SELECT * FROM trades_staging ON CONFLICT DO NOTHING")
            return cur.rowcount

    def read_trades(self, exchange: str, symbol: str, start: int | None = None, end: int | None = None) -> pd.DataFrame:
        """Trades of a market in time order (``end`` exclusive)."""
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT trade_id, ts, price, amount, side FROM market_trades WHERE exchange = %s AND symbol = %s "
                "AND ts >= %s AND ts < %s ORDER BY ts, trade_id",
                (exchange, symbol, start if start is not None else -(2**62), end if end is not None else 2**62),
            ).fetchall()
        return pd.DataFrame(rows, columns=["trade_id", "ts", "price", "amount", "side"])

    # -- reading -------------------------------------------------------------------------------
    def read_bars(self, key: SeriesKey, start: int | None = None, end: int | None = None) -> pd.DataFrame:
        """Bars with ``start <= ts < end`` as a bar frame, through one binary COPY (no per-row Python)."""
        if start is not None and end is not None and end <= start:
            raise ValidationFailedError(f"empty time range: end ({end}) is not after start ({start})")
        with self.db.connection() as conn:
            series_id = self._series_id(conn, key, create=False)
            if series_id is None:
                raise NotFoundError(f"no stored bars for {key}; see `iqts data list`")
            query = sql.SQL(
                "COPY (SELECT ts, open, high, low, close, volume FROM bars WHERE series_id = {} "
                "AND ts >= {} AND ts < {} ORDER BY ts) TO STDOUT (FORMAT BINARY)"
            ).format(
                sql.Literal(series_id),
                sql.Literal(start if start is not None else -(2**62)),
                sql.Literal(end if end is not None else 2**62),
            )
            payload = bytearray()
            with conn.cursor().copy(query) as copy:
                for chunk in copy:
                    payload += chunk
        if not payload:
            return empty_bar_frame()
        columns = decode_bars(payload)
        return pd.DataFrame({c: columns[c] for c in BAR_COLUMNS})

    def delete_series(self, key: SeriesKey) -> int:
        """Remove a series and its bars; return the number of bars removed."""
        with self.db.connection() as conn:
            series_id = self._series_id(conn, key, create=False)
            if series_id is None:
                return 0
            cur = conn.execute("DELETE FROM bars WHERE series_id = %s", (series_id,))
            conn.execute("DELETE FROM market_series WHERE id = %s", (series_id,))
            return cur.rowcount
