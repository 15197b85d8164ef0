"""`iqts data`: sample data, backfill, live feeds, quality, Parquet export/import, listing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from engine.settings import get_settings
from ui.cli.common import database, parse_time_ms
from ui.cli.console import emit_json, err, out

if TYPE_CHECKING:  # heavy modules (ccxt, pandas, pyarrow) load only when a command runs
    from engine.data.backfill import BackfillResult
    from engine.data.quality import QualityReport
    from engine.data.store import BarStore, SeriesKey

app = typer.Typer(help="Market data: sample, backfill, live, quality, export/import, list.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _select(store: BarStore, exchange: str | None, symbol: str | None, timeframe: str | None) -> list[SeriesKey]:
    """The stored series a filter means (symbols and timeframes as people write them: BTC, hourly ...)."""
    from engine.data.provider import MarketData
    from engine.data.store import make_key

    matched = MarketData(store).matching(symbol, timeframe=timeframe, exchange=exchange)
    return [make_key(s.exchange, s.symbol, s.timeframe) for s in matched]


@app.command("load-sample")
def load_sample(as_json: JsonOpt = False) -> None:
    """Load the bundled real BTC/ETH/LTC history (Coinbase, Bitstamp) into the database."""
    from engine.data.sample import load_sample_series
    from engine.data.store import BarStore, make_key

    rows = []
    with database() as db:
        store = BarStore(db)
        for series in load_sample_series():
            key = make_key(series.exchange, series.symbol, series.timeframe)
            result = store.upsert_bars(key, series.frame)
            rows.append(
                {"series": str(key), "rows": series.rows, "inserted": result.inserted, "updated": result.updated}
            )
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        out.print(f"{row['series']}: {row['rows']} bars ({row['inserted']} new, {row['updated']} changed)")


@app.command("list")
def list_cmd(as_json: JsonOpt = False) -> None:
    """What is stored: exchange, symbol, timeframe, first, last, rows, and which series answers by default for a
    price ("quote") and for bars and backtests ("history")."""
    from engine.data.provider import MarketData

    with database() as db:
        provider = MarketData(db)
        series, defaults = provider.series(), provider.defaults()
    rows = [
        {
            "exchange": s.exchange,
            "symbol": s.symbol,
            "timeframe": s.timeframe,
            "first": s.first.isoformat() if s.first is not None else None,
            "last": s.last.isoformat() if s.last is not None else None,
            "rows": s.rows,
            "default_for": defaults[f"{s.exchange}:{s.symbol}:{s.timeframe}"],
        }
        for s in series
    ]
    if as_json:
        emit_json(rows)
        return
    table = Table("exchange", "symbol", "timeframe", "first", "last", "rows", "default for")
    for s in series:
        marks = ", ".join(defaults[f"{s.exchange}:{s.symbol}:{s.timeframe}"])
        table.add_row(s.exchange, s.symbol, s.timeframe, str(s.first), str(s.last), f"{s.rows:,}", marks)
    out.print(table)


@app.command("quote")
def quote_cmd(
    symbol: Annotated[str, typer.Argument(help="a market as people write it: BTC, bitcoin, BTC/USD, btc-usdt")],
    timeframe: Annotated[str | None, typer.Option("--timeframe", "-t", help="1h, hourly, daily ...")] = None,
    exchange: Annotated[str | None, typer.Option(help="ccxt exchange id")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The last known price of a market, with its series, observation time, age and whether it is replayed."""
    from engine.data.provider import MarketData

    with database() as db:
        quote = MarketData(db).quote(symbol, timeframe=timeframe, exchange=exchange)
    if as_json:
        emit_json(quote)
        return
    out.print(f"{quote.symbol} {quote.price:f} at {quote.ts:%Y-%m-%d %H:%M} UTC from {quote.series}")
    for line in (quote.resolved_from, quote.note):
        if line:
            out.print(f"  {line}")


def _run_backfill(
    exchange: str, symbols: list[str], timeframe: str, since: int, until: int | None
) -> list[BackfillResult]:
    from engine.data.backfill import backfill
    from engine.data.exchanges import make_async_exchange
    from engine.data.store import BarStore

    settings = get_settings()
    url = settings.exchange_urls.get(exchange.lower())
    with (
        database(settings) as db,
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=False,
            disable=not err.is_terminal,
        ) as progress,
    ):
        tasks: dict[str, Any] = {}

        def on_progress(key: SeriesKey, done: int, expected: int) -> None:
            task = tasks.get(str(key))
            if task is None:
                task = tasks[str(key)] = progress.add_task(str(key), total=max(expected, 1))
            progress.update(task, completed=min(done, expected))

        return asyncio.run(
            backfill(
                exchange,
                symbols,
                timeframe,
                since,
                until,
                BarStore(db),
                lambda ex: make_async_exchange(ex, api_url=url),
                progress=on_progress,
            )
        )


@app.command("backfill")
def backfill_cmd(
    exchange: Annotated[str, typer.Argument(help="ccxt exchange id, e.g. binance")],
    symbols: Annotated[list[str], typer.Argument(help="unified symbols, e.g. BTC/USDT ETH/USDT")],
    timeframe: Annotated[str, typer.Option("--timeframe", "-t")] = "1h",
    since: Annotated[str, typer.Option(help="start date (YYYY-MM-DD or ISO 8601, UTC)")] = "2024-01-01",
    until: Annotated[str | None, typer.Option(help="end date, exclusive (default: now)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fetch history through ccxt, resuming after the newest stored bar of each series."""
    results = _run_backfill(
        exchange,
        symbols,
        timeframe,
        parse_time_ms(since, "--since"),
        parse_time_ms(until, "--until") if until else None,
    )
    if as_json:
        emit_json(results)
        return
    for r in results:
        resumed = f", resumed after {r.resumed_from}" if r.resumed_from else ""
        out.print(
            f"{r.exchange}:{r.symbol}:{r.timeframe}: {r.fetched} bars in {r.pages} pages ({r.inserted} new{resumed})"
        )


def _reports(exchange: str | None, symbol: str | None, timeframe: str | None) -> list[QualityReport]:
    from engine.data.quality import check_bars
    from engine.data.store import BarStore

    with database() as db:
        store = BarStore(db)
        return [
            check_bars(store.read_bars(key), exchange=key.exchange, symbol=key.symbol, timeframe=key.timeframe)
            for key in _select(store, exchange, symbol, timeframe)
        ]


@app.command("quality")
def quality_cmd(
    exchange: Annotated[str | None, typer.Option()] = None,
    symbol: Annotated[str | None, typer.Option()] = None,
    timeframe: Annotated[str | None, typer.Option("--timeframe", "-t")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Gaps, duplicates, out-of-order rows, OHLC sanity and spikes, per stored series."""
    reports = _reports(exchange, symbol, timeframe)
    if as_json:
        emit_json(reports)
        return
    for report in reports:
        status = "[green]ok[/]" if report.ok else "[yellow]problems[/]"
        out.print(f"{report.exchange}:{report.symbol}:{report.timeframe} {status}")
        for problem in report.problems():
            out.print(f"  - {problem}")


@app.command("repair")
def repair_cmd(
    exchange: Annotated[str, typer.Argument()],
    symbol: Annotated[str, typer.Argument()],
    timeframe: Annotated[str, typer.Option("--timeframe", "-t")] = "1h",
) -> None:
    """Fill the gaps of a stored series by targeted backfill of just the missing ranges."""
    from engine.data.quality import gap_ranges_for_repair

    [report] = _reports(exchange, symbol, timeframe)
    ranges = gap_ranges_for_repair(report)
    if not ranges:
        out.print("no gaps to repair")
        return
    filled = 0
    for since, until in ranges:
        for result in _run_backfill(exchange, [symbol], timeframe, since, until):
            filled += result.inserted
    out.print(f"repaired {len(ranges)} gap range(s): {filled} bars inserted")


@app.command("export")
def export_cmd(
    path: Annotated[Path, typer.Argument(help="Parquet file to write")],
    exchange: Annotated[str | None, typer.Option()] = None,
    symbol: Annotated[str | None, typer.Option()] = None,
    timeframe: Annotated[str | None, typer.Option("--timeframe", "-t")] = None,
    since: Annotated[str | None, typer.Option()] = None,
    until: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Export stored bars (any range) to one Parquet file."""
    from engine.data.parquet import export_parquet
    from engine.data.store import BarStore

    with database() as db:
        store = BarStore(db)
        keys = _select(store, exchange, symbol, timeframe)
        rows = export_parquet(
            store,
            path,
            keys,
            parse_time_ms(since, "--since") if since else None,
            parse_time_ms(until, "--until") if until else None,
        )
    out.print(f"wrote {rows:,} bars of {len(keys)} series to {path}")


@app.command("import")
def import_cmd(path: Annotated[Path, typer.Argument(help="Parquet file written by `iqts data export`")]) -> None:
    """Import bars from Parquet (validated whole before anything is written; idempotent)."""
    from engine.data.parquet import import_parquet
    from engine.data.store import BarStore

    with database() as db:
        results = import_parquet(BarStore(db), path)
    for key, result in results.items():
        out.print(f"{key}: {result.inserted} new, {result.updated} changed")


@app.command("live")
def live_cmd(
    exchange: Annotated[str, typer.Argument(help="ccxt exchange id, e.g. binance")],
    symbols: Annotated[list[str], typer.Argument(help="unified symbols, e.g. BTC/USDT")],
) -> None:
    """Stream trades, tickers and book tops (cryptofeed) onto the bus; store 1-minute bars built from trades."""
    from engine.data.exchanges import check_exchange_id
    from engine.data.frame import bars_to_frame
    from engine.data.live import LiveFeed
    from engine.data.models import Bar
    from engine.data.store import BarStore, make_key
    from engine.runtime import Runtime

    settings = get_settings()
    exchange = check_exchange_id(exchange)

    async def run() -> None:
        runtime = await asyncio.to_thread(Runtime.start, settings)
        store = BarStore(runtime.db)

        async def on_bar(bar: Bar) -> None:
            await asyncio.to_thread(store.upsert_bars, make_key(bar.exchange, bar.symbol, "1m"), bars_to_frame([bar]))

        stop = asyncio.Event()
        feed = LiveFeed(exchange, symbols, runtime.bus.publish, on_bar)
        out.print(f"streaming {', '.join(feed.symbols)} from {exchange} ({runtime.bus_description} bus); Ctrl-C stops")
        try:
            await feed.run(stop)
        finally:
            stop.set()
            await runtime.aclose()

    asyncio.run(run())
