"""Finding stored runs: the listing's filters as people write them, unknown ids answered with the runs that exist,
and strategy names as people write them recorded under the registered name."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from engine.backtest.bars import Bars
from engine.backtest.vectorized import run_backtest
from engine.data.sample import load_coinbase_csv
from engine.errors import NotFoundError, ValidationFailedError
from engine.research import service
from engine.research.runs import get_run, get_runs, save_run
from engine.research.service import (
    BacktestOut,
    BacktestRequest,
    OptimiseRequest,
    WalkForwardOptions,
    WalkForwardRequest,
)
from engine.research.studies import get_study
from engine.store.database import Database, connect
from tests.integration.research.conftest import SINCE_MS, UNTIL_MS

if TYPE_CHECKING:
    from tests.conftest import PgServer

JANUARY_2018 = {"start_ms": SINCE_MS, "end_ms": SINCE_MS + 31 * 86_400_000}
LISTS_THEM = "(list_runs or `iqts backtest list` lists them all)"


@pytest.fixture(scope="module")
def runs(db: Database, sample_loaded: None) -> list[BacktestOut]:
    """Six stored runs, oldest first, each asked for as a person might write it."""
    asks = [
        ("SMA cross", "BTC/USD", "1h", JANUARY_2018),
        ("ema", "btc", "1h", JANUARY_2018),
        ("MACD", "BTC/USD", "1h", JANUARY_2018),
        ("rsi", "bitcoin", "1h", JANUARY_2018),
        ("buy and hold", "ETH/USD", "1d", {}),
        ("sma-cross", "eth", "1d", {}),
    ]
    return [
        service.backtest(db, BacktestRequest(strategy=strategy, symbol=symbol, timeframe=timeframe, **span), "tests")
        for strategy, symbol, timeframe, span in asks
    ]


@pytest.fixture
def empty_db(pg_server: PgServer, template_db: str) -> Iterator[Database]:
    """A database of this test alone with no run stored (the module's database holds the fixture's runs)."""
    name = f"{template_db}_empty_{uuid.uuid4().hex[:8]}"
    pg_server.clone(template_db, name)
    database = connect(pg_server.settings_for(name))
    try:
        yield database
    finally:
        database.close()
        pg_server.drop(name)


def _ids(listing: service.RunList, among: list[BacktestOut]) -> list[str]:
    ours = {r.run_id for r in among}
    return [r.run_id for r in listing.runs if r.run_id in ours]


def test_runs_record_the_registered_strategy_name(db: Database, runs: list[BacktestOut]) -> None:
    names = ["sma_cross", "ema_cross", "macd", "rsi_reversion", "buy_and_hold", "sma_cross"]
    assert [r.strategy for r in runs] == names
    assert [get_run(db, r.run_id).strategy for r in runs] == names
    assert [r.symbol for r in runs] == ["BTC/USD"] * 4 + ["ETH/USD"] * 2


def test_list_runs_is_newest_first_and_filters_as_people_write(db: Database, runs: list[BacktestOut]) -> None:
    newest_first = [r.run_id for r in reversed(runs)]
    assert _ids(service.list_runs(db, 100), runs) == newest_first
    assert len(service.list_runs(db, 2).runs) == 2

    sma = service.list_runs(db, 100, strategy="SMA cross")
    assert {r.strategy for r in sma.runs} == {"sma_cross"}
    assert _ids(sma, runs) == [runs[5].run_id, runs[0].run_id]
    assert _ids(service.list_runs(db, 100, strategy="rsi"), runs) == [runs[3].run_id]

    btc = [r.run_id for r in reversed(runs[:4])]
    for written in ("BTC/USD", "btc", "bitcoin", "btc-usd", "BTCUSD", "btc/usdt"):  # USDT is served by USD
        listing = service.list_runs(db, 100, symbol=written)
        assert {r.symbol for r in listing.runs} == {"BTC/USD"}, written
        assert _ids(listing, runs) == btc, written
    assert _ids(service.list_runs(db, 100, symbol="ETH"), runs) == [runs[5].run_id, runs[4].run_id]
    assert _ids(service.list_runs(db, 100, strategy="sma", symbol="ether"), runs) == [runs[5].run_id]
    assert service.list_runs(db, 100, symbol="DOGE").runs == []
    assert service.list_runs(db, 100, symbol="BTC/EUR").runs == []


@pytest.mark.parametrize(
    ("options", "error", "expected"),
    [
        ({"strategy": "ichimoku"}, NotFoundError, "unknown strategy 'ichimoku' (available: bollinger_breakout"),
        ({"strategy": "breakout"}, NotFoundError, "it could mean bollinger_breakout or donchian_breakout"),
        ({"symbol": "not a market!"}, ValidationFailedError, "symbol: 'not a market!' is not a market"),
        ({"limit": 0}, ValidationFailedError, "limit: must be at least 1"),
    ],
)
def test_list_runs_bad_filters_name_the_problem(
    db: Database, options: dict[str, object], error: type[Exception], expected: str
) -> None:
    with pytest.raises(error) as raised:
        service.list_runs(db, **options)  # type: ignore[arg-type]
    assert expected in str(raised.value)


def test_unknown_run_ids_name_the_newest_stored_runs(db: Database, runs: list[BacktestOut]) -> None:
    newest = service.list_runs(db, 5).runs
    total = len(service.list_runs(db, 1000).runs)
    assert total >= 6 and len(newest) == 5
    listed = ", ".join(f"{r.run_id} ({r.strategy} {r.symbol} {r.timeframe})" for r in newest)
    stored = f"the newest 5 of {total} stored runs: {listed} {LISTS_THEM}"
    assert runs[-1].run_id in listed and f"{runs[-1].run_id} (sma_cross ETH/USD 1d)" in listed

    with pytest.raises(NotFoundError) as one:
        get_run(db, " bt_gone ")
    assert str(one.value) == f"no backtest run 'bt_gone'; {stored}"
    with pytest.raises(NotFoundError) as several:
        get_runs(db, [runs[0].run_id, "bt_a", "bt_b", "bt_a"])
    assert str(several.value) == f"no backtest run(s) 'bt_a', 'bt_b'; {stored}"
    with pytest.raises(NotFoundError) as through_the_service:
        service.compare_runs(db, [runs[0].run_id, "bt_gone"])
    assert str(through_the_service.value) == f"no backtest run 'bt_gone'; {stored}"
    with pytest.raises(NotFoundError, match=r"^no backtest run 'bt_gone'; the newest 5 of "):
        service.get_backtest(db, "bt_gone")


def test_with_few_or_no_runs_stored_the_error_says_so(empty_db: Database) -> None:
    with pytest.raises(NotFoundError) as none:
        get_run(empty_db, "bt_gone")
    assert str(none.value) == "no backtest run 'bt_gone'; no backtest runs are stored"
    assert service.list_runs(empty_db).runs == []
    assert service.list_runs(empty_db, symbol="BTC", strategy="sma_cross").runs == []

    series = load_coinbase_csv("Coinbase_BTCUSD_1h.csv", "1h")
    bars = Bars.from_frame(series.frame.iloc[:500], timeframe="1h", symbol="BTC/USD")
    record = save_run(
        empty_db, run_backtest("sma_cross", bars, {"fast": 5, "slow": 20}), "coinbase", "tests", bars=bars
    )
    with pytest.raises(NotFoundError) as one:
        get_runs(empty_db, ["bt_gone", record.id])
    assert str(one.value) == (
        f"no backtest run 'bt_gone'; the stored runs: {record.id} (sma_cross BTC/USD 1h) {LISTS_THEM}"
    )


def test_studies_record_the_registered_strategy_name(db: Database, sample_loaded: None) -> None:
    study = service.optimise(
        db,
        OptimiseRequest(
            strategy="EMA crossover", symbol="btc", timeframe="1h", trials=4, storage="memory", seed=1, **JANUARY_2018
        ),
        "tests",
    )
    assert study.strategy == "ema_cross" and get_study(db, study.study_id).strategy == "ema_cross"
    assert study.best_run_id is not None and get_run(db, study.best_run_id).strategy == "ema_cross"

    walk = service.walk_forward(
        db,
        WalkForwardRequest(
            strategy="sma-cross",
            symbol="BTC/USD",
            timeframe="1h",
            seed=1,
            start_ms=SINCE_MS,
            end_ms=UNTIL_MS,
            options=WalkForwardOptions(windows=2, trials=4),
        ),
        "tests",
    )
    assert get_study(db, walk.study_id).strategy == "sma_cross"

    with pytest.raises(NotFoundError, match="it could mean bollinger_breakout or bollinger_reversion"):
        service.optimise(db, OptimiseRequest(strategy="bollinger", symbol="BTC/USD", trials=2), "tests")
    with pytest.raises(NotFoundError, match="unknown strategy 'ichimoku'"):
        service.walk_forward(db, WalkForwardRequest(strategy="ichimoku", symbol="BTC/USD"), "tests")
