"""The pre-trade check: pure, deterministic and fast (the rules are compiled once per account and symbol)."""

from __future__ import annotations

from datetime import UTC, datetime

from engine.errors import ValidationFailedError
from engine.execution.models import OrderIntent
from engine.portfolio.models import PortfolioSnapshot
from engine.portfolio.valuation import conversion_rate
from engine.risk.models import MarketSnapshot, RuleResult, TradingControls, Verdict
from engine.risk.policy import RiskPolicy
from engine.risk.rules import order_context


def check(
    order: OrderIntent,
    portfolio: PortfolioSnapshot,
    market: MarketSnapshot,
    *,
    policy: RiskPolicy,
    controls: TradingControls,
    now: datetime,
) -> Verdict:
    """Run every rule of ``policy`` that applies to ``order``; the order is allowed only if all of them pass.

    ``controls`` (kill switch, tripped circuit breakers) is required so that no caller can forget it: an engaged
    kill switch fails every order, a tripped breaker every order that does not reduce a position. Every rule is
    evaluated, so the verdict lists every reason at once. Missing data (no last price, no conversion rate, no
    portfolio for the account, a held position without a price) fails the rules that need it. The verdict's
    ``notes`` say what the approver should know beyond the rules: a replayed or stale quote (with its series and
    age), a symbol served by an equivalent one, positions that could not be valued. ``now`` must be timezone-aware.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValidationFailedError("risk check time must be timezone-aware (UTC)")
    now = now.astimezone(UTC)
    compiled = policy.compiled(order.account, order.symbol)
    account = portfolio.accounts.get(order.account)
    symbol = order.symbol
    last = market.last_prices.get(symbol)
    fx = None
    if account is not None:
        fx = conversion_rate(order.quote, account.valuation_currency, market.last_prices, market.fx_rates)
    quote = market.quotes.get(symbol)
    ctx = order_context(order, account, controls, now, last, market.price_times.get(symbol), fx, quote)
    results: list[RuleResult] = [rule(ctx) for rule in compiled.rules]
    allowed = all(result.passed for result in results)
    notes: tuple[str, ...] = ()
    if quote is not None and (quote.note or quote.resolved_from):
        notes = tuple(f"{symbol}: {text}" for text in (quote.note, quote.resolved_from) if text)
    if account is not None and account.unvalued:
        notes += tuple(f"account {order.account}: {reason}" for reason in account.unvalued.values())
    return Verdict.trusted(
        allowed=allowed,
        policy_version=compiled.policy_version,
        account=order.account,
        symbol=symbol,
        checked_at=now,
        results=tuple(results),
        notes=notes,
    )
