"""The risk monitor on the real database: breakers trip on crafted snapshots, persist, reset; the status picture."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from engine.audit import entries
from engine.bus import InProcessBus
from engine.errors import NotFoundError, ValidationFailedError
from engine.portfolio.models import AccountSnapshot, PortfolioSnapshot
from engine.risk import RiskPolicy
from engine.risk.killswitch import controls, engage
from engine.risk.monitor import RiskMonitor, breakers, reset_breaker, risk_status
from engine.risk.policy import load_default_policy
from engine.risk.store import activate, save_policy
from engine.store.database import Database
from tests.unit.risk.stubs import account

pytestmark = pytest.mark.usefixtures("clean_risk_state")

DAY1 = datetime(2024, 5, 1, 15, 0, tzinfo=UTC)
POLICY = RiskPolicy.from_dict(
    {"version": "monitor-test", "defaults": {"max_daily_loss": 1000, "max_drawdown": Decimal("0.2")}}
)


class Feed:
    """A settable portfolio, as the execution worker's ledger would hand it over."""

    def __init__(self, *accounts: AccountSnapshot) -> None:
        self.accounts = accounts

    def __call__(self) -> PortfolioSnapshot:
        return PortfolioSnapshot(ts=DAY1, accounts={a.account: a for a in self.accounts})


def _monitor(db: Database, feed: Feed, policy: RiskPolicy = POLICY, **kwargs: object) -> RiskMonitor:
    return RiskMonitor(db, feed, policy=lambda: policy, **kwargs)  # type: ignore[arg-type]


def test_a_daily_loss_trips_once_persists_and_blocks(db: Database, unique: str) -> None:
    name = f"acct-{unique}"
    feed = Feed(account(name=name, cash="98500", day_start="100000"))
    monitor = _monitor(db, feed)
    [trip] = monitor.run_once(DAY1)
    assert trip.breaker == "max_daily_loss" and trip.account == name
    assert trip.observed == Decimal(1500) and trip.limit == Decimal(1000)
    assert "daily loss 1,500 USDT exceeds max_daily_loss 1,000 USDT" in trip.reason
    assert controls(db).breakers == (trip,)
    [row] = entries(db, subject=f"account:{name}", action="risk.breaker_tripped")
    assert row.actor == "risk-monitor" and row.payload["breaker"] == "max_daily_loss"
    assert row.payload["policy_version"] == "monitor-test"

    assert monitor.run_once(DAY1 + timedelta(minutes=1)) == []  # still tripped: not tripped (or audited) again
    assert breakers(db) == (trip,)
    assert len(entries(db, subject=f"account:{name}", action="risk.breaker_tripped")) == 1


def test_drawdown_trips_and_a_manual_reset_is_audited(db: Database, unique: str) -> None:
    name = f"acct-{unique}"
    feed = Feed(account(name=name, cash="90000", peak="120000"))
    monitor = _monitor(db, feed)
    [trip] = monitor.run_once(DAY1)
    assert trip.breaker == "max_drawdown" and trip.observed == Decimal("0.25")
    assert "drawdown 25% from peak equity 120,000 USDT exceeds max_drawdown 20%" in trip.reason

    cleared = reset_breaker(db, name, "max_drawdown", "alice")
    assert cleared == trip and controls(db).breakers == ()
    [row] = entries(db, subject=f"account:{name}", action="risk.breaker_reset")
    assert row.actor == "alice" and row.payload["manual"] is True
    with pytest.raises(NotFoundError, match=f"breaker max_drawdown is not tripped for {name}"):
        reset_breaker(db, name, "max_drawdown", "alice")
    with pytest.raises(ValidationFailedError, match="unknown breaker"):
        reset_breaker(db, name, "max_fun", "alice")

    [again] = monitor.run_once(DAY1 + timedelta(minutes=1))  # the drawdown still holds: trips again
    assert again.breaker == "max_drawdown"
    feed.accounts = (account(name=name, cash="110000", peak="120000"),)
    assert monitor.run_once(DAY1 + timedelta(minutes=2)) == []
    assert [t.breaker for t in breakers(db)] == ["max_drawdown"]  # latched until a person resets it


def test_the_daily_loss_breaker_resets_itself_on_a_new_day(db: Database, unique: str) -> None:
    name, other = f"acct-{unique}", f"other-{unique}"
    feed = Feed(account(name=name, cash="98000", day_start="100000"), account(name=other, cash="50000"))
    monitor = _monitor(db, feed)
    assert [t.account for t in monitor.run_once(DAY1)] == [name]
    monitor.run_once(DAY1 + timedelta(hours=2))  # same day, loss recovered: stays tripped
    feed.accounts = (account(name=name, cash="99500", day_start="100000"), feed.accounts[1])
    monitor.run_once(DAY1 + timedelta(hours=3))
    assert [t.account for t in breakers(db)] == [name]
    feed.accounts = (account(name=name, cash="99500"), feed.accounts[1])  # next day: day start re-marked
    assert monitor.run_once(DAY1 + timedelta(days=1)) == []
    assert breakers(db) == ()
    [row] = entries(db, subject=f"account:{name}", action="risk.breaker_reset")
    assert row.actor == "risk-monitor" and row.payload["manual"] is False


def test_var_breaker_from_the_equity_history(db: Database, unique: str) -> None:
    name = f"acct-{unique}"
    swings = [Decimal(100000), Decimal(92000), Decimal(99000), Decimal(90000), Decimal(97000), Decimal(100000)]
    policy = RiskPolicy.from_dict({"version": "var-test", "defaults": {"max_var": Decimal("0.05")}})
    feed = Feed(account(name=name, cash="100000"))
    monitor = _monitor(db, feed, policy, equity_history=lambda: {name: swings})
    [trip] = monitor.run_once(DAY1)
    assert trip.breaker == "max_var" and trip.observed > Decimal("0.05")
    calm = _monitor(db, Feed(account(name=f"calm-{unique}", cash="100000")), policy)
    for minute in range(5):  # samples its own history: equal equity, zero VaR
        assert calm.run_once(DAY1 + timedelta(minutes=minute)) == []


async def test_the_active_policy_is_used_and_run_loops_until_stopped(db: Database, unique: str) -> None:
    name = f"acct-{unique}"
    version = save_policy(db, f'version: "tight-{unique}"\ndefaults:\n  max_daily_loss: 10\n', "alice")
    activate(db, version, "alice")
    monitor = RiskMonitor(db, Feed(account(name=name, cash="99980", day_start="100000")))
    stop = asyncio.Event()
    task = asyncio.create_task(monitor.run(stop, interval_s=0.01))
    for _ in range(200):
        if breakers(db):
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, timeout=2)
    [trip] = breakers(db)
    assert trip.account == name and trip.limit == Decimal(10)
    [row] = entries(db, subject=f"account:{name}", action="risk.breaker_tripped")
    assert row.payload["policy_version"] == f"tight-{unique}"


async def test_risk_status_reports_every_measure(db: Database, unique: str) -> None:
    name = f"acct-{unique}"
    snapshot = Feed(account(name=name, cash="95000", day_start="96000", peak="100000"))()
    history = {name: [Decimal(v) for v in (100000, 98000, 99000, 97000, 96500, 95000)]}
    await engage(db, InProcessBus(), "bob", "status drill")
    _monitor(db, Feed(account(name=name, cash="70000", day_start="100000", peak="100000"))).run_once(DAY1)

    status = risk_status(db, snapshot, equity_history=history)
    assert status.kill_switch.engaged and status.kill_switch.reason == "status drill"
    assert status.policy_version == load_default_policy().version  # the bundled default: nothing activated
    assert {t.breaker for t in status.breakers} == {"max_daily_loss", "max_drawdown"}
    [acct] = status.accounts
    assert acct.equity == Decimal(95000) and acct.daily_pnl == Decimal(-1000)
    assert acct.drawdown == Decimal("0.05") and acct.gross_exposure == 0 and acct.net_exposure == 0
    assert acct.returns_observed == 5
    assert acct.var_historical is not None and acct.var_historical.method == "historical"
    assert acct.var_parametric is not None and acct.var_parametric.method == "parametric"
    assert acct.var_historical.var > 0 and acct.var_parametric.es >= acct.var_parametric.var
    assert acct.limits.max_daily_loss == Decimal(1000)  # resolved from the active policy
    assert len(acct.breakers) == 2
    dumped = status.model_dump(mode="json")
    assert dumped["accounts"][0]["equity"] == "95000"

    short = risk_status(db, snapshot, equity_history={name: [Decimal(100000)]})
    assert short.accounts[0].var_historical is None and short.accounts[0].var_parametric is None
    bare = risk_status(db)
    assert bare.accounts == () and bare.kill_switch.engaged
