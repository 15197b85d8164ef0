"""Market data tools: what is stored, bars, the last price, data quality (all through engine.data.provider)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from mcp.server.fastmcp import Context, FastMCP
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from engine.data.frame import to_arrays
from engine.data.provider import MarketData, Purpose, SeriesChoice
from engine.data.timeparse import UtcDateTime, datetime_to_ms
from engine.runtime import Runtime
from tools.context import tool_call

READ_ONLY = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True, openWorldHint=False)
MAX_BARS = 2000

SymbolArg = Annotated[
    str, Field(description="a market as people write it: BTC/USD, btc-usd, BTCUSDT, BTC, bitcoin, ether")
]
TimeframeArg = Annotated[
    str | None, Field(description="1m 5m 15m 1h 4h 1d 1w, or words: hourly, 1 hour, daily, weekly")
]
ExchangeArg = Annotated[str | None, Field(description="ccxt exchange id, e.g. bitstamp; default: the rule's choice")]


class Resolution(BaseModel):
    """Which stored series answered, and why."""

    series: str = Field(description="exchange:symbol:timeframe, e.g. bitstamp:BTC/USD:1d")
    resolved_from: str | None = Field(description='e.g. "BTC" -> "BTC/USD"; null when asked exactly')
    rule: str = Field(description="why this series among the matching stored ones")
    alternatives: list[str] = Field(description="other stored series that matched")


class Market(BaseModel):
    exchange: str
    symbol: str
    timeframe: str
    first: datetime | None
    last: datetime | None
    rows: int
    default_for: list[Purpose] = Field(
        description='"quote": answers prices of its symbol by default; "history": bars and backtests'
    )


class MarketList(BaseModel):
    markets: list[Market]


class Candle(BaseModel):
    ts: int = Field(description="bar open time, ms since epoch UTC")
    open: float
    high: float
    low: float
    close: float
    volume: float


class Ohlcv(Resolution):
    exchange: str
    symbol: str
    timeframe: str
    bars: list[Candle]
    truncated: bool = Field(description="true when more bars matched than were returned (newest kept)")
    note: str | None = Field(description="set when the bars are replayed history, not current")


class TickerOut(Resolution):
    symbol: str
    last: float
    as_of: datetime = Field(description="when the price was observed (its bar's close, UTC)")
    age_seconds: float = Field(description="how old the price is now")
    replayed: bool = Field(description="history replayed, not the market now")
    note: str | None = Field(description="what to tell the user about this price, e.g. that it is replayed")
    source: str = Field(description="the same as series")


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


def _resolution(choice: SeriesChoice) -> dict[str, Any]:
    return {
        "series": choice.series,
        "resolved_from": choice.resolved_from,
        "rule": choice.rule,
        "alternatives": choice.alternatives,
    }


def _ohlcv(
    runtime: Runtime,
    symbol: str,
    timeframe: str | None,
    exchange: str | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
) -> Ohlcv:
    provider = MarketData(runtime.db)
    choice, frame = provider.bars(
        symbol,
        timeframe=timeframe,
        exchange=exchange,
        start_ms=None if start is None else datetime_to_ms(start),
        end_ms=None if end is None else datetime_to_ms(end),
    )
    a = to_arrays(frame.iloc[-limit:])
    bars = [
        Candle(ts=int(a.ts[i]), open=float(a.open[i]), high=float(a.high[i]), low=float(a.low[i]),
               close=float(a.close[i]), volume=float(a.volume[i]))
        for i in range(len(a))
    ]  # fmt: skip
    return Ohlcv(
        exchange=choice.exchange,
        symbol=choice.symbol,
        timeframe=choice.timeframe,
        bars=bars,
        truncated=len(frame) > limit,
        note=provider.history_note(choice),
        **_resolution(choice),
    )


def _ticker(runtime: Runtime, symbol: str, timeframe: str | None, exchange: str | None) -> TickerOut:
    provider = MarketData(runtime.db)
    choice = provider.choose(symbol, timeframe=timeframe, exchange=exchange, purpose="quote")
    quote = provider.quote_of(choice, resolved_from=choice.resolved_from)
    return TickerOut(
        symbol=quote.symbol,
        last=float(quote.price),
        as_of=quote.ts,
        age_seconds=quote.age_seconds,
        replayed=quote.replayed,
        note=quote.note,
        source=quote.series,
        **_resolution(choice),
    )


def _coverage(runtime: Runtime, symbol: str | None) -> CoverageList:
    provider = MarketData(runtime.db)
    info = {(s.exchange, s.symbol, s.timeframe): s for s in provider.series()}
    out = []
    for report in provider.quality(symbol):
        s = info[(report.exchange, report.symbol, report.timeframe)]
        out.append(
            Coverage(exchange=s.exchange, symbol=s.symbol, timeframe=s.timeframe, rows=s.rows, first=s.first,
                     last=s.last, ok=report.ok, problems=report.problems())
        )  # fmt: skip
    return CoverageList(series=out)


def _markets(runtime: Runtime) -> MarketList:
    provider = MarketData(runtime.db)
    defaults = provider.defaults()
    return MarketList(
        markets=[
            Market(exchange=s.exchange, symbol=s.symbol, timeframe=s.timeframe, first=s.first, last=s.last,
                   rows=s.rows, default_for=defaults[f"{s.exchange}:{s.symbol}:{s.timeframe}"])
            for s in provider.series()
        ]
    )  # fmt: skip


def register(server: FastMCP[Any]) -> None:
    @server.tool(annotations=READ_ONLY)
    async def list_markets(ctx: Context[Any, Any, Any]) -> MarketList:
        """List the stored market data series (exchange, symbol, timeframe, first and last bar, row count) and
        which one answers by default for a price ("quote") and for bars and backtests ("history")."""

        async def run(runtime: Runtime, _: object) -> MarketList:
            return await asyncio.to_thread(_markets, runtime)

        return await tool_call("list_markets", ctx, {}, run)

    @server.tool(annotations=READ_ONLY)
    async def get_ohlcv(
        ctx: Context[Any, Any, Any],
        symbol: SymbolArg,
        timeframe: TimeframeArg = None,
        exchange: ExchangeArg = None,
        start: Annotated[
            UtcDateTime | None, Field(description="inclusive; ISO 8601 (no offset = UTC) or epoch")
        ] = None,
        end: Annotated[UtcDateTime | None, Field(description="exclusive; ISO 8601 (no offset = UTC) or epoch")] = None,
        limit: Annotated[int, Field(ge=1, le=MAX_BARS)] = 200,
    ) -> Ohlcv:
        """OHLCV bars of a stored series, the newest `limit` within [start, end). Without a timeframe: the finest
        stored with enough history (the result names the series and the rule)."""
        args = {"symbol": symbol, "timeframe": timeframe, "exchange": exchange, "start": start, "end": end,
                "limit": limit}  # fmt: skip

        async def run(runtime: Runtime, _: object) -> Ohlcv:
            return await asyncio.to_thread(_ohlcv, runtime, symbol, timeframe, exchange, start, end, limit)

        return await tool_call("get_ohlcv", ctx, args, run)

    @server.tool(annotations=READ_ONLY)
    async def get_ticker(
        ctx: Context[Any, Any, Any], symbol: SymbolArg, timeframe: TimeframeArg = None, exchange: ExchangeArg = None
    ) -> TickerOut:
        """The last known price of a market: the close of the most recently observed stored bar, when it was
        observed, how old it is, and whether it is replayed history (tell the user when `note` is set)."""
        args = {"symbol": symbol, "timeframe": timeframe, "exchange": exchange}

        async def run(runtime: Runtime, _: object) -> TickerOut:
            return await asyncio.to_thread(_ticker, runtime, symbol, timeframe, exchange)

        return await tool_call("get_ticker", ctx, args, run)

    @server.tool(annotations=READ_ONLY)
    async def data_coverage(
        ctx: Context[Any, Any, Any],
        symbol: Annotated[str | None, Field(description="only this market (BTC, BTC/USD, ...)")] = None,
    ) -> CoverageList:
        """Coverage and quality of stored series: date range, rows, gaps, duplicates, bad rows, spikes."""

        async def run(runtime: Runtime, _: object) -> CoverageList:
            return await asyncio.to_thread(_coverage, runtime, symbol)

        return await tool_call("data_coverage", ctx, {"symbol": symbol}, run)
