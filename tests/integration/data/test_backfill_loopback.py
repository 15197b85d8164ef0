"""Backfill acceptance (issue 3): ``engine.data.backfill`` through the real ccxt ``binance`` client, rerouted to the
loopback exchange by ``make_async_exchange(api_url=...)``, into the real PostgreSQL bar store.

Library runs store under a unique exchange id (the storage key; the client is always ccxt's binance) so that
tests never share a series. The CLI test uses ``binance`` itself, as a user would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from engine.data.backfill import BackfillConfig, BackfillError, Progress, backfill
from engine.data.exchanges import make_async_exchange
from engine.data.store import BarStore, SeriesKey, make_key
from engine.errors import ValidationFailedError
from engine.settings import Settings
from engine.store.database import Database
from tests.support.cli import CliResult, run_iqts, settings_env
from tests.support.loopback import LoopbackConfig, LoopbackExchange

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z: where the loopback's default price paths start
MINUTE = 60_000
KLINES = "/api/v3/klines"
FAST = BackfillConfig(page_limit=100, max_retries=3, backoff_initial_s=0.01, backoff_max_s=0.05)


@pytest.fixture
def exchange() -> Iterator[LoopbackExchange]:
    with LoopbackExchange() as ex:
        yield ex


@pytest.fixture
def store(db: Database) -> BarStore:
    return BarStore(db)


def _factory(ex: LoopbackExchange) -> Any:
    return lambda _exchange_id: make_async_exchange("binance", api_url=ex.url, rateLimit=1)


async def _run(
    ex: LoopbackExchange,
    store: BarStore,
    exchange_id: str,
    since: int,
    until: int,
    *,
    symbols: tuple[str, ...] = ("BTC/USDT",),
    timeframe: str = "1m",
    config: BackfillConfig = FAST,
    progress: Progress | None = None,
) -> Any:
    return await backfill(
        exchange_id, list(symbols), timeframe, since, until, store, _factory(ex), config=config, progress=progress
    )


def _assert_store_holds_exactly(store: BarStore, key: SeriesKey, ex: LoopbackExchange, since: int, until: int) -> None:
    """The stored series equals the loopback's closed bars of [since, until): no bar lost, none duplicated."""
    want = [b for b in ex.state.bars(key.symbol) if since <= b.ts < until]
    got = store.read_bars(key)
    assert got["ts"].tolist() == [b.ts for b in want]
    assert len(set(got["ts"].tolist())) == len(got)
    expected = np.array([[float(b.open), float(b.high), float(b.low), float(b.close), float(b.volume)] for b in want])
    np.testing.assert_array_equal(got[["open", "high", "low", "close", "volume"]].to_numpy(), expected)


async def test_multi_page_backfill_stores_exactly_the_loopback_bars(
    exchange: LoopbackExchange, store: BarStore, unique: str
) -> None:
    exid, until = f"lb{unique}", T0 + 350 * MINUTE
    [result] = await _run(exchange, store, exid, T0, until)
    assert (result.pages, result.fetched, result.inserted, result.updated) == (4, 350, 350, 0)
    assert result.resumed_from is None and result.last_ts == until - MINUTE
    key = make_key(exid, "BTC/USDT", "1m")
    _assert_store_holds_exactly(store, key, exchange, T0, until)
    pages = exchange.requests("GET", KLINES)
    assert [p.params["startTime"] for p in pages] == [str(T0 + i * 100 * MINUTE) for i in range(4)]
    assert {p.params["limit"] for p in pages} == {"100"} and {p.params["symbol"] for p in pages} == {"BTCUSDT"}
    assert [r.path for r in exchange.requests()] == ["/api/v3/exchangeInfo"] + [KLINES] * 4

    again = await _run(exchange, store, exid, T0, until)  # nothing new: resumes at the end, fetches nothing
    assert (again[0].resumed_from, again[0].pages, again[0].inserted) == (until, 0, 0)
    assert len(exchange.requests("GET", KLINES)) == 4
    _assert_store_holds_exactly(store, key, exchange, T0, until)


async def test_several_symbols_in_one_run(exchange: LoopbackExchange, store: BarStore, unique: str) -> None:
    exid, until = f"lb{unique}", T0 + 150 * MINUTE
    results = await _run(exchange, store, exid, T0, until, symbols=("BTC/USDT", "ETH/USDT"))
    assert [(r.symbol, r.inserted, r.pages) for r in results] == [("BTC/USDT", 150, 2), ("ETH/USDT", 150, 2)]
    for symbol in ("BTC/USDT", "ETH/USDT"):
        _assert_store_holds_exactly(store, make_key(exid, symbol, "1m"), exchange, T0, until)


async def test_an_injected_429_mid_run_is_retried_and_the_result_is_complete(
    exchange: LoopbackExchange, store: BarStore, unique: str
) -> None:
    exid, until = f"lb{unique}", T0 + 300 * MINUTE
    injected = False

    def after_page(_key: SeriesKey, _done: int, _expected: int) -> None:
        nonlocal injected
        if not injected:  # after the first page is stored, the next two klines calls get Binance's 429
            injected = True
            exchange.fail_next(
                2, 429, code=-1003, msg="Too many requests; current limit is 1200.", path=KLINES, retry_after_s=1
            )

    [result] = await _run(exchange, store, exid, T0, until, progress=after_page)
    assert (result.pages, result.inserted) == (3, 300)
    assert [r.status for r in exchange.requests("GET", KLINES)] == [200, 429, 429, 200, 200]
    _assert_store_holds_exactly(store, make_key(exid, "BTC/USDT", "1m"), exchange, T0, until)


async def test_the_loopbacks_own_rate_limit_is_respected_by_retrying(store: BarStore, unique: str) -> None:
    config = LoopbackConfig(rate_limit_requests=3, rate_limit_window_s=0.3)
    patient = BackfillConfig(page_limit=100, max_retries=8, backoff_initial_s=0.05, backoff_max_s=0.2)
    exid, until = f"lb{unique}", T0 + 500 * MINUTE
    with LoopbackExchange(config) as ex:
        [result] = await _run(ex, store, exid, T0, until, config=patient)
        statuses = [r.status for r in ex.requests()]
        assert 429 in statuses  # the limiter did answer "too many requests" at least once
        assert statuses[-1] == 200 and result.inserted == 500
        _assert_store_holds_exactly(store, make_key(exid, "BTC/USDT", "1m"), ex, T0, until)


async def test_a_mid_run_failure_then_a_resume_neither_loses_nor_duplicates_a_bar(
    exchange: LoopbackExchange, store: BarStore, unique: str
) -> None:
    exid, until = f"lb{unique}", T0 + 450 * MINUTE
    key = make_key(exid, "BTC/USDT", "1m")
    pages_seen = 0

    def break_after_two_pages(_key: SeriesKey, _done: int, _expected: int) -> None:
        nonlocal pages_seen
        pages_seen += 1
        if pages_seen == 2:  # the exchange goes down for longer than the retries last
            exchange.fail_next(50, 503, path=KLINES)

    with pytest.raises(BackfillError, match=r"gave up after 4 attempts: ExchangeNotAvailable"):
        await _run(exchange, store, exid, T0, until, progress=break_after_two_pages)
    assert store.last_ts(key) == T0 + 199 * MINUTE
    _assert_store_holds_exactly(store, key, exchange, T0, T0 + 200 * MINUTE)
    failed = exchange.requests("GET", KLINES)
    assert [r.status for r in failed] == [200, 200, 503, 503, 503, 503]

    exchange.clear_faults()
    exchange.clear_request_log()
    [resumed] = await _run(exchange, store, exid, T0, until)
    assert resumed.resumed_from == T0 + 200 * MINUTE
    assert (resumed.fetched, resumed.inserted, resumed.updated) == (250, 250, 0)
    assert exchange.requests("GET", KLINES)[0].params["startTime"] == str(T0 + 200 * MINUTE)
    _assert_store_holds_exactly(store, key, exchange, T0, until)


async def test_a_bad_symbol_stops_with_a_clear_message_before_any_bar(
    exchange: LoopbackExchange, store: BarStore, unique: str
) -> None:
    exid = f"lb{unique}"
    with pytest.raises(ValidationFailedError, match=rf"^{exid} has no market NOPE/USDT$"):
        await _run(exchange, store, exid, T0, T0 + 10 * MINUTE, symbols=("BTC/USDT", "NOPE/USDT"))
    with pytest.raises(ValidationFailedError, match="symbol"):
        await _run(exchange, store, exid, T0, T0 + 10 * MINUTE, symbols=("BTCUSDT",))
    assert exchange.requests("GET", KLINES) == []
    assert not [s for s in store.series() if s.exchange == exid]


@pytest.mark.parametrize("timeframe", ["7m", "3m"])
async def test_an_unsupported_timeframe_stops_with_a_clear_message(
    exchange: LoopbackExchange, store: BarStore, unique: str, timeframe: str
) -> None:
    with pytest.raises(ValidationFailedError, match=rf"unsupported timeframe '{timeframe}'; supported: 1m, 5m"):
        await _run(exchange, store, f"lb{unique}", T0, T0 + 10 * MINUTE, timeframe=timeframe)
    assert exchange.requests() == []


async def test_an_interval_the_exchange_refuses_is_permanent_and_not_retried(
    exchange: LoopbackExchange, store: BarStore, unique: str
) -> None:
    hour = 60 * MINUTE
    exchange.state.load_bars("ETH/USDT", hour, [(T0 + i * hour, 2300, 2310, 2290, 2305, 5) for i in range(48)])
    with pytest.raises(BackfillError, match=r"BadRequest: .*Invalid interval"):
        await _run(exchange, store, f"lb{unique}", T0, T0 + 10 * MINUTE, symbols=("ETH/USDT",))
    assert len(exchange.requests("GET", KLINES)) == 1


async def test_an_impossible_date_range_is_refused(exchange: LoopbackExchange, store: BarStore, unique: str) -> None:
    with pytest.raises(ValidationFailedError, match="impossible date range"):
        await _run(exchange, store, f"lb{unique}", T0 + MINUTE, T0)
    assert exchange.requests() == []


def test_cli_backfill_through_iqts_exchange_urls_then_list(
    settings: Settings, db: Database, exchange: LoopbackExchange
) -> None:
    key = make_key("binance", "BTC/USDT", "1m")
    BarStore(db).delete_series(key)
    env = settings_env(settings) | {"IQTS_EXCHANGE_URLS": json.dumps({"binance": exchange.url})}

    def iqts(*args: str) -> CliResult:  # in process: argv through ui.cli.main.main, settings from the environment
        return run_iqts(*args, env=env)

    ran = iqts(
        "data", "backfill", "binance", "BTC/USDT", "--timeframe", "1m",
        "--since", "2024-01-01", "--until", "2024-01-01T05:00", "--json",
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    [result] = json.loads(ran.stdout)
    assert (result["symbol"], result["inserted"], result["resumed_from"]) == ("BTC/USDT", 300, None)
    assert {r.path for r in exchange.requests()} == {"/api/v3/exchangeInfo", KLINES}

    listed = iqts("data", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    series = {(s["exchange"], s["symbol"], s["timeframe"]): s for s in json.loads(listed.stdout)}
    row = series[("binance", "BTC/USDT", "1m")]
    assert row["rows"] == 300
    assert row["first"].startswith("2024-01-01T00:00:00") and row["last"].startswith("2024-01-01T04:59:00")
    _assert_store_holds_exactly(BarStore(db), key, exchange, T0, T0 + 300 * MINUTE)
