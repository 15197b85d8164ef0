"""Market data tools: what is stored, bars, the last price, data quality."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from mcp.server.fastmcp import Context, FastMCP
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from engine.data.frame import to_arrays
from engine.data.market import last_prices
from engine.data.quality import check_bars
from engine.data.store import BarStore, SeriesInfo, make_key
from engine.errors import NotFoundError, ValidationFailedError
from engine.runtime import Runtime
from tools.context import tool_call

READ_ONLY = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True, openWorldHint=False)
MAX_BARS = 2000


class Market(BaseModel):
    exchange: str
    symbol: str
    timeframe: str
    first: datetime | None
    last: datetime | None
    rows: int


class MarketList(BaseModel):
    markets: list[Market]


class Candle(BaseModel):
    ts: int = Field(description="bar open time, ms since epoch UTC")
    open: float
    high: float
    low: float
    close: float
    volume: float


class Ohlcv(BaseModel):
    exchange: str
    symbol: str
    timeframe: str
    bars: list[Candle]
    truncated: bool = Field(description="true when more bars matched than were returned (newest kept)")


class TickerOut(BaseModel):
    symbol: str
    last: float
    as_of: datetime
    source: str


class Coverage(BaseModel):
    exchange: str
    symbol: str
    timeframe: str
    rows: int
    first: datetime | None
    last: datetime | None
    ok: bool
    problems: list[str]


class CoverageList(BaseModel):
    series: list[Coverage]


def _series(runtime: Runtime) -> list[SeriesInfo]:
    return BarStore(runtime.db).series()


def resolve_series(runtime: Runtime, symbol: str, timeframe: str | None, exchange: str | None) -> SeriesInfo:
    """The stored series for a symbol (freshest, finest unless told), or a clear error naming what exists."""
    candidates = [
        s
        for s in _series(runtime)
        if s.symbol == symbol
        and (timeframe is None or s.timeframe == timeframe)
        and (exchange is None or s.exchange == exchange.lower())
    ]
    if not candidates:
        available = sorted({f"{s.symbol} {s.timeframe} ({s.exchange})" for s in _series(runtime)})
        raise NotFoundError(
            f"no stored data for {symbol}"
            f"{' ' + timeframe if timeframe else ''}; available: {', '.join(available) or 'none'}"
        )
    return max(candidates, key=lambda s: (s.last_ts or 0, s.rows))


def register(server: FastMCP[Any]) -> None:
    @server.tool(annotations=READ_ONLY)
    async def list_markets(ctx: Context[Any, Any, Any]) -> MarketList:
        """List the stored market data series (exchange, symbol, timeframe, first and last bar, row count)."""

        async def run(runtime: Runtime, _: object) -> MarketList:
            series = await asyncio.to_thread(_series, runtime)
            return MarketList(
                markets=[
                    Market(
                        exchange=s.exchange,
                        symbol=s.symbol,
                        timeframe=s.timeframe,
                        first=s.first,
                        last=s.last,
                        rows=s.rows,
                    )
                    for s in series
                ]
            )

        return await tool_call("list_markets", ctx, {}, run)

    @server.tool(annotations=READ_ONLY)
    async def get_ohlcv(
        ctx: Context[Any, Any, Any],
        symbol: Annotated[str, Field(description="unified symbol, e.g. BTC/USD")],
        timeframe: Annotated[str | None, Field(description="e.g. 1h or 1d; default: the finest stored")] = None,
        exchange: Annotated[str | None, Field(description="default: the freshest stored")] = None,
        start: Annotated[datetime | None, Field(description="inclusive, ISO 8601 UTC")] = None,
        end: Annotated[datetime | None, Field(description="exclusive, ISO 8601 UTC")] = None,
        limit: Annotated[int, Field(ge=1, le=MAX_BARS)] = 200,
    ) -> Ohlcv:
        """OHLCV bars of a stored series; the newest `limit` bars within [start, end)."""
        args = {
            "symbol": symbol,
            "timeframe": timeframe,
            "exchange": exchange,
            "start": start,
            "end": end,
            "limit": limit,
        }

        async def run(runtime: Runtime, _: object) -> Ohlcv:
            info = resolve_series(runtime, symbol, timeframe, exchange)
            start_ms = int(start.timestamp() * 1000) if start else None
            end_ms = int(end.timestamp() * 1000) if end else None
            if start_ms is not None and end_ms is not None and end_ms <= start_ms:
                raise ValidationFailedError("end must be after start")
            frame = await asyncio.to_thread(
                BarStore(runtime.db).read_bars, make_key(info.exchange, info.symbol, info.timeframe), start_ms, end_ms
            )
            truncated = len(frame) > limit
            a = to_arrays(frame.iloc[-limit:])
            bars = [
                Candle(
                    ts=int(a.ts[i]),
                    open=float(a.open[i]),
                    high=float(a.high[i]),
                    low=float(a.low[i]),
                    close=float(a.close[i]),
                    volume=float(a.volume[i]),
                )
                for i in range(len(a))
            ]
            return Ohlcv(
                exchange=info.exchange, symbol=info.symbol, timeframe=info.timeframe, bars=bars, truncated=truncated
            )

        return await tool_call("get_ohlcv", ctx, args, run)

    @server.tool(annotations=READ_ONLY)
    async def get_ticker(
        ctx: Context[Any, Any, Any], symbol: Annotated[str, Field(description="unified symbol, e.g. BTC/USD")]
    ) -> TickerOut:
        """The last known price of a symbol (latest stored bar close) and when it was observed."""

        async def run(runtime: Runtime, _: object) -> TickerOut:
            prices = await asyncio.to_thread(last_prices, BarStore(runtime.db), [symbol])
            if symbol not in prices:
                resolve_series(runtime, symbol, None, None)  # raises with what is available
            p = prices[symbol]
            return TickerOut(symbol=symbol, last=float(p.price), as_of=p.ts, source=p.source)

        return await tool_call("get_ticker", ctx, {"symbol": symbol}, run)

    @server.tool(annotations=READ_ONLY)
    async def data_coverage(
        ctx: Context[Any, Any, Any],
        symbol: Annotated[str | None, Field(description="only this symbol")] = None,
    ) -> CoverageList:
        """Coverage and quality of stored series: date range, rows, gaps, duplicates, bad rows, spikes."""

        async def run(runtime: Runtime, _: object) -> CoverageList:
            def work() -> CoverageList:
                store = BarStore(runtime.db)
                out = []
                for s in store.series():
                    if symbol is not None and s.symbol != symbol:
                        continue
                    report = check_bars(
                        store.read_bars(make_key(s.exchange, s.symbol, s.timeframe)),
                        exchange=s.exchange,
                        symbol=s.symbol,
                        timeframe=s.timeframe,
                    )
                    out.append(
                        Coverage(
                            exchange=s.exchange,
                            symbol=s.symbol,
                            timeframe=s.timeframe,
                            rows=s.rows,
                            first=s.first,
                            last=s.last,
                            ok=report.ok,
                            problems=report.problems(),
                        )
                    )
                if symbol is not None and not out:
                    resolve_series(runtime, symbol, None, None)
                return CoverageList(series=out)

            return await asyncio.to_thread(work)

        return await tool_call("data_coverage", ctx, {"symbol": symbol}, run)
