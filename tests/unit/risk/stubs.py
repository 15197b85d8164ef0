"""Stub factories for risk tests: orders, account snapshots, markets, controls, policies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from engine.execution.models import OrderIntent
from engine.portfolio.models import AccountSnapshot, PortfolioSnapshot, PositionSnapshot, RecentOrder
from engine.risk import MarketSnapshot, RiskPolicy, RuleResult, TradingControls, Verdict, check

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)  # a Wednesday
BTC_LAST = Decimal(60000)
ETH_LAST = Decimal(3000)
RELEASED = TradingControls(kill_switch_engaged=False)


def order(**overrides: Any) -> OrderIntent:
    fields: dict[str, Any] = {
        "account": "main",
        "symbol": "BTC/USDT",
        "side": "buy",
        "type": "market",
        "quantity": Decimal("0.1"),
    }
    fields.update(overrides)
    return OrderIntent(**fields)


def position(symbol: str, quantity: str, avg_cost: str, last: Decimal) -> PositionSnapshot:
    qty, cost = Decimal(quantity), Decimal(avg_cost)
    return PositionSnapshot(
        symbol=symbol,
        quote_currency=symbol.split("/")[1],
        quantity=qty,
        avg_cost=cost,
        cost_basis=qty * cost,
        last_price=last,
        notional=abs(qty) * last,
        market_value=qty * last,
        unrealised_pnl=qty * last - qty * cost,
    )


def account(
    *,
    cash: str = "100000",
    positions: tuple[PositionSnapshot, ...] = (),
    day_start: str | None = None,
    peak: str | None = None,
    recent: tuple[RecentOrder, ...] = (),
    name: str = "main",
) -> AccountSnapshot:
    values = [p.market_value for p in positions]
    equity = Decimal(cash) + sum(values, Decimal(0))
    return AccountSnapshot(
        account=name,
        valuation_currency="USDT",
        cash={"USDT": Decimal(cash)},
        positions={p.symbol: p for p in positions},
        equity=equity,
        day_start_equity=Decimal(day_start) if day_start is not None else equity,
        peak_equity=Decimal(peak) if peak is not None else equity,
        realised_pnl=Decimal(0),
        unrealised_pnl=sum((p.unrealised_pnl for p in positions), Decimal(0)),
        fees=Decimal(0),
        gross_exposure=sum((abs(v) for v in values), Decimal(0)),
        net_exposure=sum(values, Decimal(0)),
        recent_orders=recent,
    )


def portfolio(*accounts: AccountSnapshot) -> PortfolioSnapshot:
    return PortfolioSnapshot(ts=NOW, accounts={a.account: a for a in accounts})


def market(*, fresh_seconds: int = 1, **prices: Decimal) -> MarketSnapshot:
    last = prices or {"BTC/USDT": BTC_LAST, "ETH/USDT": ETH_LAST}
    last = {k.replace("_", "/"): v for k, v in last.items()}
    return MarketSnapshot(last_prices=last, price_times={s: NOW - timedelta(seconds=fresh_seconds) for s in last})


def policy(defaults: dict[str, Any] | None = None, accounts: dict[str, Any] | None = None) -> RiskPolicy:
    return RiskPolicy.from_dict({"version": 7, "defaults": defaults or {}, "accounts": accounts or {}})


def verdict(
    pol: RiskPolicy,
    intent: OrderIntent,
    acct: AccountSnapshot | None = None,
    mkt: MarketSnapshot | None = None,
    *,
    controls: TradingControls = RELEASED,
    now: datetime = NOW,
) -> Verdict:
    snap = portfolio(acct if acct is not None else account())
    return check(intent, snap, mkt if mkt is not None else market(), policy=pol, controls=controls, now=now)


def result(v: Verdict, rule: str) -> RuleResult:
    matches = [r for r in v.results if r.rule == rule]
    assert len(matches) == 1, f"rule {rule} not in verdict: {[r.rule for r in v.results]}"
    return matches[0]
