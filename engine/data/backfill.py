"""Historical backfill with ccxt (async): paged, resumable, rate-limited, retrying only transient errors."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import ccxt
import numpy as np
from pydantic import BaseModel, Field

from engine.data.frame import frame_from_arrays
from engine.data.store import BarStore, SeriesKey, make_key
from engine.data.timeframes import timeframe_ms
from engine.errors import IQTSError, ValidationFailedError
from engine.telemetry import get_logger

log = get_logger(__name__)

ExchangeFactory = Callable[[str], Any]
Progress = Callable[[SeriesKey, int, int], None]  # (series, bars stored so far, bars expected)


class BackfillError(IQTSError):
    """A permanent failure (bad symbol, unsupported timeframe, auth) or retries exhausted."""


class BackfillConfig(BaseModel):
    page_limit: int = Field(1000, ge=1, le=5000)
    max_retries: int = Field(5, ge=0)
    backoff_initial_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)


class BackfillResult(BaseModel):
    exchange: str
    symbol: str
    timeframe: str
    resumed_from: int | None
    pages: int
    fetched: int
    inserted: int
    updated: int
    last_ts: int | None


def _now_ms() -> int:
    return int(time.time() * 1000)


async def with_retries(call: Callable[[], Awaitable[Any]], config: BackfillConfig, what: str) -> Any:
    """Run ``call``, retrying ccxt network-class errors (rate limits, 5xx, timeouts) with exponential backoff."""
    delay = config.backoff_initial_s
    for attempt in range(config.max_retries + 1):
        try:
            return await call()
        except ccxt.NetworkError as error:  # RateLimitExceeded, DDoSProtection, ExchangeNotAvailable, RequestTimeout
            if attempt == config.max_retries:
                raise BackfillError(f"{what}: gave up after {attempt + 1} attempts: {type(error).__name__}") from None
            log.warning("backfill.retry", what=what, attempt=attempt + 1, error=type(error).__name__, sleep_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, config.backoff_max_s)
        except ccxt.BadSymbol:
            raise BackfillError(f"{what}: the exchange does not know this symbol") from None
        except ccxt.AuthenticationError:
            raise BackfillError(f"{what}: the exchange refused the credentials") from None
        except ccxt.BaseError as error:
            raise BackfillError(f"{what}: {type(error).__name__}: {str(error)[:200]}") from None
    raise AssertionError("unreachable")


async def backfill_series(
    exchange: Any,
    store: BarStore,
    key: SeriesKey,
    since_ms: int,
    until_ms: int,
    config: BackfillConfig,
    progress: Progress | None = None,
) -> BackfillResult:
    """Fetch ``[since_ms, until_ms)`` page by page, storing each page; resume after the newest stored bar."""
    step = timeframe_ms(key.timeframe)
    until_ms = min(until_ms, _now_ms() - step + 1)  # never store the bar that is still forming
    cursor, resumed_from = since_ms, None
    last_stored = await asyncio.to_thread(store.last_ts, key)
    if last_stored is not None and since_ms <= last_stored < until_ms:
        cursor = resumed_from = last_stored + step
    expected = max(0, (until_ms - since_ms) // step)
    result = BackfillResult(
        exchange=key.exchange,
        symbol=key.symbol,
        timeframe=key.timeframe,
        resumed_from=resumed_from,
        pages=0,
        fetched=0,
        inserted=0,
        updated=0,
        last_ts=last_stored,
    )
    while cursor < until_ms:
        since = cursor
        rows = await with_retries(
            functools.partial(exchange.fetch_ohlcv, key.symbol, key.timeframe, since=since, limit=config.page_limit),
            config,
            f"{key} fetch_ohlcv since {since}",
        )
        page = np.asarray([r[:6] for r in rows if since <= r[0] < until_ms], dtype=np.float64).reshape(-1, 6)
        if page.shape[0] == 0:
            break
        ts = page[:, 0].astype(np.int64)
        order = np.argsort(ts, kind="stable")
        ts, page = ts[order], page[order]
        keep = np.concatenate(([True], np.diff(ts) > 0))
        frame = frame_from_arrays(
            ts=ts[keep],
            open=page[keep, 1],
            high=page[keep, 2],
            low=page[keep, 3],
            close=page[keep, 4],
            volume=np.nan_to_num(page[keep, 5]),
        )
        written = await asyncio.to_thread(store.upsert_bars, key, frame)
        result.pages += 1
        result.fetched += len(frame)
        result.inserted += written.inserted
        result.updated += written.updated
        result.last_ts = int(ts[-1])
        if progress is not None:
            progress(key, int((result.last_ts - since_ms) // step) + 1, expected)
        if int(ts[-1]) + step <= cursor:  # no progress: the exchange ignores `since`
            break
        cursor = int(ts[-1]) + step
    log.info("backfill.done", series=str(key), pages=result.pages, fetched=result.fetched, inserted=result.inserted)
    return result


async def backfill(
    exchange_id: str,
    symbols: list[str],
    timeframe: str,
    since_ms: int,
    until_ms: int | None,
    store: BarStore,
    factory: ExchangeFactory,
    config: BackfillConfig | None = None,
    progress: Progress | None = None,
) -> list[BackfillResult]:
    """Backfill several symbols of one exchange; validates symbols and timeframe before fetching any bar."""
    config = config or BackfillConfig()
    until = until_ms if until_ms is not None else _now_ms()
    if since_ms >= until:
        raise ValidationFailedError("impossible date range: --since must be before --until (and before now)")
    keys = [make_key(exchange_id, symbol, timeframe) for symbol in symbols]
    exchange = factory(keys[0].exchange)
    try:
        await with_retries(exchange.load_markets, config, f"{exchange_id} load_markets")
        timeframes = getattr(exchange, "timeframes", None) or {}
        if timeframe not in timeframes:
            raise ValidationFailedError(
                f"{exchange_id} does not offer timeframe {timeframe!r}; it offers: {', '.join(timeframes)}"
            )
        unknown = [k.symbol for k in keys if k.symbol not in exchange.markets]
        if unknown:
            raise ValidationFailedError(f"{exchange_id} has no market {', '.join(unknown)}")
        return [await backfill_series(exchange, store, key, since_ms, until, config, progress) for key in keys]
    finally:
        await exchange.close()
