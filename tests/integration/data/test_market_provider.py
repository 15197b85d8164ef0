"""The one market-data provider on a database of this module's own: what people write resolves to the stored
series, every consumer (ticker, risk, paper fill, backtest, bars) follows the documented rule and says which
series it read, every price carries its age, and replayed sample prices say so up to the inbox.

Expected series come from the bundled files' documented ranges (``engine/data/sample_data/SOURCES.md``):
Bitstamp daily BTC/ETH/LTC to 2020-01, Coinbase BTC hourly and daily to 2019-10-17.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import numpy as np
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from agent.guards.answers import ProposalSummary
from approvals import service as approvals
from approvals.service import Requester
from approvals.users import Role, User, create_user, issue_token
from engine.bus import InProcessBus
from engine.data.frame import frame_from_arrays
from engine.data.provider import MIN_HISTORY_BARS, MarketData
from engine.data.sample import load_sample_series
from engine.data.store import BarStore, make_key
from engine.errors import NotFoundError, ValidationFailedError
from engine.execution.models import OrderIntent, OrderStatus
from engine.execution.paper import PaperBroker, PaperBrokerConfig, StorePriceFeed
from engine.execution.router import Router
from engine.execution.worker import build_order_manager
from engine.portfolio.service import portfolio_snapshot
from engine.research.data import resolve_and_load, select_series
from engine.risk import check
from engine.risk.killswitch import controls
from engine.risk.policy import load_default_policy
from engine.risk.store import activate, active_policy, save_policy
from engine.runtime import Runtime
from engine.settings import AccountSettings, Settings
from engine.store.database import Database
from tests.integration.inbox.helpers import PASSWORD, sign_in
from tests.support.live_server import free_port, live_server
from ui.api.app import create_app

MINUTE = 60_000
HOUR = 60 * MINUTE
BTC_PRICE = "bitstamp:BTC/USD:1d"  # the freshest BTC price stored: Bitstamp daily, to 2020-01-17
BTC_HISTORY = "coinbase:BTC/USD:1h"  # the finest BTC history: Coinbase hourly, 20,111 bars to 2019-10-17
LAST_BITSTAMP_CLOSE = datetime(2020, 1, 18, tzinfo=UTC)  # the 2020-01-17 daily bar closes at midnight
APPROVER = User(id=-1, username="ann-approver", role=Role.APPROVER)
TRADER = Requester(user="tom-trader", kind="mcp", session="provider-test")


def _now_ms() -> int:
    return int(time.time() * 1000) // MINUTE * MINUTE


def _bars(n: int, last_open_ms: int, step: int, price: float) -> Any:
    ts = last_open_ms - step * np.arange(n)[::-1]
    c = np.full(n, price)
    return frame_from_arrays(ts=ts, open=c, high=c * 1.01, low=c * 0.99, close=c, volume=np.full(n, 3.0))


@dataclass
class Env:
    settings: Settings
    db: Database
    url: str
    token: str
    viewer: str


@pytest.fixture(scope="module")
def env(settings: Settings, db: Database) -> Iterator[Env]:
    """The bundled sample, plus a short fresh ETH/USD 1m feed and a SOL/USDT 1h series, in this module's database
    (no other module's series can change which one is the default), behind a live API with MCP."""
    store = BarStore(db)
    for series in load_sample_series():
        store.upsert_bars(make_key(series.exchange, series.symbol, series.timeframe), series.frame)
    store.upsert_bars(make_key("livefeed", "ETH/USD", "1m"), _bars(10, _now_ms() - MINUTE, MINUTE, 3000.0))
    store.upsert_bars(make_key("testex", "SOL/USDT", "1h"), _bars(600, 1_700_000_000_000 // HOUR * HOUR, HOUR, 60))
    create_user(db, "md-trader", PASSWORD, Role.TRADER)
    create_user(db, "md-viewer", PASSWORD, Role.VIEWER)
    token = issue_token(db, "md-trader", "tests", actor="tests")
    port = free_port()
    runtime = Runtime(settings=settings.model_copy(update={"api_port": port}), db=db, bus=InProcessBus())
    with live_server(create_app(runtime), port) as url:
        yield Env(settings, db, url, token, "md-viewer")


@asynccontextmanager
async def mcp(env: Env) -> AsyncIterator[ClientSession]:
    async with (
        httpx.AsyncClient(headers={"Authorization": f"Bearer {env.token}"}, timeout=60) as http,
        streamable_http_client(f"{env.url}/mcp", http_client=http) as (r, w, _),
        ClientSession(r, w) as s,
    ):
        await s.initialize()
        yield s


async def call(env: Env, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    async with mcp(env) as s:
        result = await s.call_tool(tool, args)
    assert not result.isError, result.content
    assert result.structuredContent is not None
    return dict(result.structuredContent)


def _days_since(moment: datetime) -> set[str]:
    """The whole days since ``moment``, formatted as a note writes them (either side of a midnight)."""
    now = datetime.now(UTC)
    return {f"{(t - moment) // timedelta(days=1):,}" for t in (now - timedelta(minutes=5), now + timedelta(minutes=5))}


# ---- resolution -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("symbol", "timeframe", "exchange", "purpose", "series", "resolved"),
    [
        ("BTC/USD", None, None, "history", BTC_HISTORY, None),
        ("BTC/USD", None, None, "quote", BTC_PRICE, None),
        ("BTC", None, None, "quote", BTC_PRICE, '"BTC" -> "BTC/USD"'),
        ("btc", "hourly", None, "quote", BTC_HISTORY, 'timeframe "hourly" -> "1h"'),
        ("bitcoin", "1 hour", None, "history", BTC_HISTORY, '"bitcoin" -> "BTC/USD"'),
        ("xbt", "daily", None, "history", BTC_PRICE, '"xbt" -> "BTC/USD"'),
        ("XBTUSD", "60m", None, "history", BTC_HISTORY, '"XBTUSD" -> "BTC/USD"'),
        ("btc-usd", "1D", None, "quote", BTC_PRICE, 'timeframe "1D" -> "1d"'),
        ("BTC_USD", "day", "COINBASE", "quote", "coinbase:BTC/USD:1d", '"BTC_USD" -> "BTC/USD"'),
        ("btc/usdt", None, None, "quote", BTC_PRICE, "no BTC/USDT is stored; USD, USDT and USDC quotes"),
        ("BTCUSDT", None, None, "history", BTC_HISTORY, "no BTC/USDT is stored"),
        ("ether", None, None, "history", "bitstamp:ETH/USD:1d", '"ether" -> "ETH/USD"'),
        ("ethereum", "daily", None, "quote", "bitstamp:ETH/USD:1d", '"ethereum" -> "ETH/USD"'),
        ("ETH", None, None, "quote", "livefeed:ETH/USD:1m", '"ETH" -> "ETH/USD"'),  # the freshest price
        ("ETH", None, None, "history", "bitstamp:ETH/USD:1d", '"ETH" -> "ETH/USD"'),  # 10 fresh 1m bars: too few
        ("litecoin", None, None, "quote", "bitstamp:LTC/USD:1d", '"litecoin" -> "LTC/USD"'),
        ("ltcusd", "1d", None, "history", "bitstamp:LTC/USD:1d", '"ltcusd" -> "LTC/USD"'),
        ("solana", None, None, "history", "testex:SOL/USDT:1h", '"solana" -> "SOL/USDT"'),
        ("SOL/USD", None, None, "quote", "testex:SOL/USDT:1h", "no SOL/USD is stored"),
    ],
)
def test_what_people_write_resolves_to_a_stored_series_and_says_how(
    env: Env,
    symbol: str,
    timeframe: str | None,
    exchange: str | None,
    purpose: Any,
    series: str,
    resolved: str | None,
) -> None:
    choice = MarketData(env.db).choose(symbol, timeframe=timeframe, exchange=exchange, purpose=purpose)
    assert choice.series == series
    assert f"{choice.exchange}:{choice.symbol}:{choice.timeframe}" == series
    if resolved is None:
        assert choice.resolved_from is None
    else:
        assert choice.resolved_from is not None and resolved in choice.resolved_from
    assert choice.rule and series not in choice.alternatives


def test_the_history_rule_skips_short_series_and_the_quote_rule_takes_the_freshest(env: Env) -> None:
    md = MarketData(env.db)
    eth = [s for s in md.series() if s.symbol == "ETH/USD"]
    assert {s.rows for s in eth if s.exchange == "livefeed"} == {10} and MIN_HISTORY_BARS > 10
    history = md.choose("ETH/USD", purpose="history")
    quote = md.choose("ETH/USD", purpose="quote")
    assert "at least" in history.rule and "livefeed:ETH/USD:1m" in history.alternatives
    assert "most recently observed" in quote.rule and quote.series == "livefeed:ETH/USD:1m"


@pytest.mark.parametrize(
    ("args", "error", "field", "listed"),
    [
        ({"symbol": "DOGE"}, NotFoundError, "symbol: no stored data for DOGE", "ETH/USD (1m livefeed; 1d bitstamp)"),
        ({"symbol": "BTC", "timeframe": "4h"}, NotFoundError, "timeframe: no stored data for BTC/USD 4h", "1h"),
        ({"symbol": "BTC", "exchange": "kraken"}, NotFoundError, "exchange: no BTC/USD data on kraken", "bitstamp"),
        ({"symbol": "BTC", "timeframe": "fortnightly"}, ValidationFailedError, "timeframe: unsupported", "1h, 4h"),
        ({"symbol": "BTC", "timeframe": "1M"}, ValidationFailedError, "timeframe: '1M' means months", "1w"),
        ({"symbol": "a/b/c"}, ValidationFailedError, "symbol: 'a/b/c' is not a market", "BTC/USD"),
        ({"symbol": "  "}, ValidationFailedError, "symbol: expected", "bitcoin"),
    ],
)
def test_nothing_matching_names_the_field_and_lists_the_valid_values(
    env: Env, args: dict[str, Any], error: type[Exception], field: str, listed: str
) -> None:
    with pytest.raises(error) as raised:
        MarketData(env.db).choose(**args)
    assert str(raised.value).startswith(field) and listed in str(raised.value)


async def test_tool_errors_name_the_field(env: Env) -> None:
    async with mcp(env) as s:
        result = await s.call_tool("get_ticker", {"symbol": "dogecoin"})
    text = " ".join(c.text for c in result.content if hasattr(c, "text"))
    assert result.isError and "symbol: no stored data for DOGE" in text and "BTC/USD (1h coinbase" in text


# ---- one rule for every consumer ----------------------------------------------------------------------------


async def _filled_dry_run(env: Env, symbol: str, quantity: str) -> tuple[str, int]:
    """Propose (risk #1), approve, and execute on the paper venue reading the store: the approval id and order id."""
    runtime = Runtime(settings=env.settings, db=env.db, bus=InProcessBus())
    broker = PaperBroker(
        PaperBrokerConfig(name="paper", initial_balances={"USD": Decimal(100_000), "USDT": Decimal(100_000)}),
        StorePriceFeed(BarStore(env.db)),
    )
    manager = build_order_manager(runtime, Router({"paper": broker}))
    intent = OrderIntent(account="paper", symbol=symbol, side="buy", type="market", quantity=Decimal(quantity))
    request = await approvals.propose_order(env.db, runtime.bus, env.settings, intent, TRADER, "provider test")
    assert request.status == "pending", request.decision_reason  # the default policy allows dry-run on the sample
    decided = await approvals.decide(
        env.db, runtime.bus, env.settings, request.id, APPROVER, approve=True, auth="password",
        seen_hash=request.intent_hash,
    )  # fmt: skip
    assert decided.status == "approved"
    record = await manager.submit_approved(intent, request.id)
    assert record.status is OrderStatus.FILLED
    await manager.drain()
    return request.id, record.id


async def test_ticker_risk_and_fill_read_one_series_for_btc_and_backtests_state_theirs(env: Env) -> None:
    ticker = await call(env, "get_ticker", {"symbol": "BTC"})
    _, market = portfolio_snapshot(env.db, env.settings)
    approval_id, order_id = await _filled_dry_run(env, "BTC/USD", "0.01")
    with env.db.connection() as conn:
        (fill_quote,) = conn.execute("SELECT quote FROM fills WHERE order_id = %s", (order_id,)).fetchone() or (None,)
    verdict = approvals.get_request(env.db, approval_id).risk_verdict or {}
    backtest = select_series(env.db, "BTC")
    selection, bars = resolve_and_load(env.db, "bitcoin")
    ohlcv = await call(env, "get_ohlcv", {"symbol": "BTC", "limit": 3})

    # the price consumers: one series, the freshest price stored
    assert ticker["series"] == market.quotes["BTC/USD"].series == fill_quote["series"] == BTC_PRICE
    assert any(BTC_PRICE in note for note in verdict["notes"])
    assert ticker["resolved_from"] == '"BTC" -> "BTC/USD"' and "most recently observed" in ticker["rule"]
    # the history consumers: the documented other rule, and they say which series they read
    assert backtest.series == ohlcv["series"] == BTC_HISTORY  # get_ohlcv without a timeframe: the finest stored
    assert (selection.exchange, selection.symbol, selection.timeframe) == ("coinbase", "BTC/USD", "1h")
    assert len(bars) == 20_111 and "finest timeframe" in backtest.rule and "finest timeframe" in ohlcv["rule"]
    assert BTC_PRICE in backtest.alternatives and ohlcv["note"].startswith("replayed sample history")


async def test_an_order_in_a_dollar_pair_not_stored_is_priced_by_the_stored_one_at_every_step(env: Env) -> None:
    ticker = await call(env, "get_ticker", {"symbol": "BTC/USDT"})
    approval_id, order_id = await _filled_dry_run(env, "BTC/USDT", "0.01")  # risk #1 priced it: it is pending
    verdict = approvals.get_request(env.db, approval_id).risk_verdict or {}
    with env.db.connection() as conn:
        (fill_quote,) = conn.execute("SELECT quote FROM fills WHERE order_id = %s", (order_id,)).fetchone() or (None,)
    assert ticker["series"] == fill_quote["series"] == BTC_PRICE
    assert verdict["allowed"] is True
    [resolution] = [n for n in verdict["notes"] if "no BTC/USDT is stored" in n]
    assert resolution.startswith('BTC/USDT: "BTC/USDT" -> "BTC/USD"')


# ---- quote age everywhere -----------------------------------------------------------------------------------


async def test_every_price_says_when_it_was_observed_and_how_old_it_is(env: Env) -> None:
    before = datetime.now(UTC)
    ticker = await call(env, "get_ticker", {"symbol": "btc/usd"})
    after = datetime.now(UTC)
    assert datetime.fromisoformat(ticker["as_of"]) == LAST_BITSTAMP_CLOSE
    assert (before - LAST_BITSTAMP_CLOSE).total_seconds() - 1 <= ticker["age_seconds"]
    assert ticker["age_seconds"] <= (after - LAST_BITSTAMP_CLOSE).total_seconds() + 1
    assert ticker["replayed"] is True
    match = re.fullmatch(r"replayed sample price from 2020-01-17 \(([\d,]+) days old\), series (.+)", ticker["note"])
    assert match is not None and match[1] in _days_since(LAST_BITSTAMP_CLOSE) and match[2] == BTC_PRICE

    fresh = await call(env, "get_ticker", {"symbol": "ETH"})
    assert fresh["series"] == "livefeed:ETH/USD:1m" and fresh["replayed"] is False and fresh["note"] is None
    assert 0 <= fresh["age_seconds"] < 10 * 60


async def test_a_dry_run_on_the_sample_is_allowed_and_says_its_price_is_replayed(env: Env) -> None:
    approval_id, order_id = await _filled_dry_run(env, "BTC/USD", "0.02")
    request = approvals.get_request(env.db, approval_id)
    verdict = request.risk_verdict or {}
    assert verdict["allowed"] is True
    [age_rule] = [r for r in verdict["results"] if r["rule"] == "max_quote_age_seconds"]
    assert age_rule["passed"] and "not limited for dry-run orders" in age_rule["reason"]
    assert "replayed sample price from 2020-01-17" in age_rule["reason"]
    assert any("replayed sample price from 2020-01-17" in note for note in verdict["notes"])
    with env.db.connection() as conn:
        (quote,) = conn.execute("SELECT quote FROM fills WHERE order_id = %s", (order_id,)).fetchone() or (None,)
        audited = conn.execute(
            "SELECT payload_json FROM audit_log WHERE action = 'order.fill' AND subject = %s", (f"order:{order_id}",)
        ).fetchone()
    assert quote["replayed"] is True and quote["sample"] is True and quote["note"].startswith("replayed sample price")
    assert audited is not None and audited[0]["quote"]["series"] == BTC_PRICE

    async with httpx.AsyncClient(base_url=env.url, timeout=30) as http:  # what the approver sees
        assert (await sign_in(http, env.viewer)).status_code in (200, 303)
        page = await http.get(f"/inbox/{approval_id}")
    assert page.status_code == 200
    assert "BTC/USD: replayed sample price from 2020-01-17" in page.text

    async with mcp(env) as s:  # what the chat's tools say
        checked = await s.call_tool("check_order", {"order": {"symbol": "BTC/USD", "side": "buy", "quantity": "0.01"}})
    assert checked.structuredContent is not None
    assert "note: BTC/USD: replayed sample price from 2020-01-17" in checked.structuredContent["summary"]


async def test_the_chat_tells_the_user_a_proposal_was_checked_against_a_replayed_price(env: Env) -> None:
    proposed = await call(env, "propose_order", {"order": {"symbol": "BTC/USD", "side": "buy", "quantity": "0.01"}})
    told = ProposalSummary.from_result(proposed).describe()  # the chat's words about the proposal
    assert proposed["risk_allowed"] is True
    assert "Pre-trade risk check: all risk rules pass; note: BTC/USD: replayed sample price from 2020-01-17" in told


def test_sandbox_and_live_orders_need_a_fresh_price(env: Env) -> None:
    portfolio, market = portfolio_snapshot(env.db, env.settings)
    policy = load_default_policy()

    def age_rule(symbol: str, mode: Any) -> Any:
        intent = OrderIntent(account="paper", symbol=symbol, side="buy", type="market", quantity=Decimal("0.01"),
                             mode=mode)  # fmt: skip
        verdict = check(intent, portfolio, market, policy=policy, controls=controls(env.db), now=datetime.now(UTC))
        [result] = [r for r in verdict.results if r.rule == "max_quote_age_seconds"]
        return result

    stale = age_rule("BTC/USD", "sandbox")
    assert not stale.passed and "for sandbox orders" in stale.reason and "replayed sample price" in stale.reason
    assert not age_rule("BTC/USD", "live").passed
    assert age_rule("ETH/USD", "sandbox").passed  # the fresh 1m feed
    assert age_rule("BTC/USD", "dry-run").passed


# ---- a holding without a price --------------------------------------------------------------------------------


async def test_a_holding_that_loses_its_price_is_reported_unvalued_and_fails_only_the_rules_that_need_it(
    env: Env,
) -> None:
    account = "md-doge"
    settings = env.settings.model_copy(
        update={
            "accounts": [*env.settings.accounts, AccountSettings(name=account, initial_cash={"USD": Decimal(1000)})]
        }
    )
    store = BarStore(env.db)
    key = make_key("memex", "DOGE/USD", "1m")
    store.upsert_bars(key, _bars(5, _now_ms() - MINUTE, MINUTE, 0.1))
    bundled = load_default_policy()
    assert active_policy(env.db).version == bundled.version  # stored on first use, so it can be activated again
    allowing = bundled.model_copy(
        update={"version": f"md-{os.getpid()}", "defaults": bundled.defaults.model_copy(
            update={"allowed_symbols": (*(bundled.defaults.allowed_symbols or ()), "DOGE/USD")})}
    )  # fmt: skip
    activate(env.db, save_policy(env.db, allowing.to_yaml(), "tests"), "tests")
    try:
        runtime = Runtime(settings=settings, db=env.db, bus=InProcessBus())
        broker = PaperBroker(PaperBrokerConfig(name=account, initial_balances={"USD": Decimal(1000)}),
                             StorePriceFeed(store))  # fmt: skip
        manager = build_order_manager(runtime, Router({account: broker}))
        intent = OrderIntent(account=account, symbol="DOGE/USD", side="buy", type="market", quantity=Decimal(200))
        request = await approvals.propose_order(env.db, runtime.bus, settings, intent, TRADER, "doge")
        assert request.status == "pending", request.decision_reason
        await approvals.decide(env.db, runtime.bus, settings, request.id, APPROVER, approve=True, auth="password",
                               seen_hash=request.intent_hash)  # fmt: skip
        assert (await manager.submit_approved(intent, request.id)).status is OrderStatus.FILLED
        await manager.drain()
        store.delete_series(key)  # this module's own database: the held symbol has no price any more

        portfolio, market = portfolio_snapshot(env.db, settings)  # raised ValidationFailedError before
        held = portfolio.accounts[account]
        assert held.unvalued == {"DOGE/USD": f"no price for DOGE/USD, held by account {account}: cannot value it"}
        assert held.positions["DOGE/USD"].quantity == Decimal(200) and held.positions["DOGE/USD"].market_value is None
        assert portfolio.accounts["paper"].valued

        order = OrderIntent(account=account, symbol="BTC/USD", side="buy", type="market", quantity=Decimal("0.01"))
        verdict = check(order, portfolio, market, policy=allowing, controls=controls(env.db), now=datetime.now(UTC))
        failed = {r.rule: r.reason for r in verdict.results if not r.passed}
        assert set(failed) == {"max_gross_exposure", "max_leverage", "max_daily_loss", "max_drawdown"}
        assert all("DOGE/USD" in reason for reason in failed.values())
        assert {"max_order_notional", "min_order_notional", "max_open_positions"} <= {
            r.rule for r in verdict.results if r.passed
        }
        assert any("no price for DOGE/USD" in note for note in verdict.notes)
    finally:
        activate(env.db, bundled.version, "tests")


# ---- naive times are UTC, whatever the host's time zone ------------------------------------------------------


@pytest.fixture
def berlin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        yield
    finally:
        monkeypatch.undo()
        time.tzset()


async def test_get_ohlcv_reads_a_naive_start_as_utc_under_berlin_time(env: Env, berlin: None) -> None:
    assert time.strftime("%z", time.localtime(1_571_270_400)) == "+0200"  # the host clock really is Berlin's
    naive = await call(env, "get_ohlcv", {"symbol": "BTC/USD", "timeframe": "1h", "start": "2019-10-17T00:00",
                                          "end": "2019-10-17T03:00"})  # fmt: skip
    zulu = await call(env, "get_ohlcv", {"symbol": "BTC/USD", "timeframe": "1h", "start": "2019-10-17T00:00Z",
                                         "end": 1_571_281_200_000})  # fmt: skip
    epoch = 1_571_270_400_000  # 2019-10-17 00:00 UTC
    assert [b["ts"] for b in naive["bars"]] == [b["ts"] for b in zulu["bars"]] == [epoch + i * HOUR for i in range(3)]


def test_the_cli_reads_naive_times_as_utc_under_berlin_time(env: Env, tmp_path: Any) -> None:
    import subprocess
    import sys

    out = tmp_path / "bars.parquet"
    environ = os.environ | {"TZ": "Europe/Berlin", "IQTS_STATE_DIR": str(env.settings.state_dir),
                            "IQTS_DB_NAME": env.settings.db_name}  # fmt: skip
    if env.settings.database_url is not None:
        environ["IQTS_DATABASE_URL"] = env.settings.database_url.get_secret_value()
    run = subprocess.run(
        [sys.executable, "-m", "ui.cli.main", "data", "export", str(out), "--symbol", "bitcoin", "-t", "hourly",
         "--since", "2019-10-17 00:00", "--until", "2019-10-17T02:00"],
        env=environ, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    import pandas as pd

    frame = pd.read_parquet(out)
    assert sorted(frame["ts"].tolist()) == [1_571_270_400_000, 1_571_274_000_000]
    assert json.loads(json.dumps(frame["symbol"].unique().tolist())) == ["BTC/USD"]


async def test_research_tools_read_what_people_write_and_naive_times_as_utc_under_berlin_time(
    env: Env, berlin: None
) -> None:
    ask = {"symbol": "bitcoin", "timeframe": "hourly", "indicators": ["sma:3"], "window": 2}
    naive = await call(env, "compute_indicators", {**ask, "end": "2019-10-17T03:00"})
    offset = await call(env, "compute_indicators", {**ask, "end": "2019-10-17T05:00+02:00"})
    epoch = 1_571_270_400_000  # 2019-10-17 00:00 UTC
    closes = [datetime.fromisoformat(r["ts"]) for r in naive["rows"]]
    assert (naive["exchange"], naive["symbol"], naive["timeframe"]) == ("coinbase", "BTC/USD", "1h")
    assert closes == [datetime.fromtimestamp((epoch + i * HOUR) / 1000, tz=UTC) for i in (1, 2)]
    assert naive["rows"] == offset["rows"]
    relative = await call(env, "compute_indicators", {**ask, "end": "now"})  # the one parser's words work here too
    assert relative["rows"][-1]["ts"].startswith("2019-10-17T09:00")  # the last stored hourly bar


def test_iqts_data_quote_and_list_name_the_series_its_age_and_the_defaults(env: Env) -> None:
    from tests.support.cli import CliResult, run_iqts, settings_env

    environ: dict[str, str | None] = {**settings_env(env.settings)}
    if env.settings.database_url is not None:
        environ["IQTS_DATABASE_URL"] = env.settings.database_url.get_secret_value()

    def iqts(*args: str) -> CliResult:  # in process: argv through ui.cli.main.main, settings from the environment
        return run_iqts(*args, env=environ)

    quoted = iqts("data", "quote", "bitcoin", "--json")
    assert quoted.returncode == 0, quoted.stderr
    quote = json.loads(quoted.stdout)
    assert quote["series"] == BTC_PRICE and quote["replayed"] is True and quote["sample"] is True
    assert datetime.fromisoformat(quote["ts"]) == LAST_BITSTAMP_CLOSE and Decimal(quote["price"]) > 0
    assert quote["resolved_from"] == '"bitcoin" -> "BTC/USD"' and quote["note"].startswith("replayed sample price")
    text = iqts("data", "quote", "btc", "-t", "hourly")
    assert text.returncode == 0 and "from coinbase:BTC/USD:1h" in text.stdout and "replayed sample price" in text.stdout

    listed = iqts("data", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    defaults = {f"{r['exchange']}:{r['symbol']}:{r['timeframe']}": r["default_for"] for r in json.loads(listed.stdout)}
    assert defaults[BTC_PRICE] == ["quote"] and defaults[BTC_HISTORY] == ["history"]
    assert defaults["coinbase:BTC/USD:1d"] == [] and defaults["bitstamp:LTC/USD:1d"] == ["quote", "history"]

    missing = iqts("data", "quote", "dogecoin")
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    assert "symbol: no stored data for DOGE" in missing.stderr and "BTC/USD (1h coinbase" in missing.stderr
