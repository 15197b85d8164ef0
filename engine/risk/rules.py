"""The pre-trade rules, and their compilation for one (account, symbol) of a policy.

Every rule sees the same :class:`OrderContext` (computed once per check) and returns a :class:`RuleResult`.
A failing rule explains itself in full ("order notional 61,234.50 USDT exceeds max_order_notional 50,000 USDT for
account main"); a passing rule's sentence names the limit it met and is written once, at compile time, while the
value it saw is in ``observed``: that keeps a twenty-rule check within tens of microseconds.

Rules that limit exposure or losses never block an order that only reduces a position (same account and symbol,
opposite side, no bigger than the position): cutting risk must stay possible.

Orders are valued at the larger of the last price and the order's own limit and stop prices, so a far-off limit
price cannot understate what the order may cost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, get_args

from engine.data.quote import Quote, describe_age
from engine.execution.models import OrderIntent, OrderSide, OrderType, base_currency, quote_currency
from engine.portfolio.models import AccountSnapshot
from engine.risk.models import RuleResult, Scope, TradingControls
from engine.risk.text import format_amount, format_percent, format_quantity
from engine.settings import TradingMode

if TYPE_CHECKING:
    from engine.risk.policy import RiskPolicy, TradingWindow

ZERO: Final = Decimal(0)
HUNDRED: Final = Decimal(100)
RATE_WINDOW: Final = timedelta(minutes=1)
"""The window of max_orders_per_minute."""
_WEEKDAY_NAMES: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_REDUCES: Final = "but the order reduces a position"


@dataclass(slots=True)
class OrderContext:
    """Everything the rules need about one order, computed once per check."""

    order: OrderIntent
    account: AccountSnapshot | None
    controls: TradingControls
    now: datetime
    """UTC."""
    last: Decimal | None
    last_time: datetime | None
    quote: Quote | None
    """Where the last price came from (series, age, replayed), when the market snapshot knows."""
    value_price: Decimal | None
    """The price the order is valued at (largest of last, limit and stop price), None if none is known."""
    notional: Decimal | None
    """quantity x value price, quote currency."""
    fx: Decimal | None
    """Quote currency -> account valuation currency."""
    position: Decimal
    projected: Decimal
    reduces: bool
    """Opposite side to a non-zero position and no larger than it."""
    gross_after: Decimal | None = None
    """Gross exposure after the order, computed on first use (see _gross_after)."""
    gross_done: bool = False


Evaluate = Callable[[OrderContext], RuleResult]


@dataclass(frozen=True, slots=True)
class CompiledRules:
    """The rules of one policy for one (account, symbol), in evaluation order."""

    policy_version: int | str
    account: str
    symbol: str
    rules: tuple[Evaluate, ...]


@dataclass(frozen=True, slots=True)
class Binding:
    """A resolved limit bound to one (account, symbol): what a rule factory needs to pre-render its wording."""

    name: str
    limit: Any
    scope: Scope
    where: str
    account: str
    symbol: str
    base: str
    quote: str


def _where(scope: Scope, account: str, symbol: str) -> str:
    if scope is Scope.SYMBOL:
        return f"for {symbol} in account {account}"
    if scope is Scope.ACCOUNT:
        return f"for account {account}"
    return "(policy default)"


def _no_account(b: Binding) -> RuleResult:
    reason = f"no portfolio snapshot for account {b.account}: cannot check {b.name}"
    return RuleResult(b.name, False, reason, b.limit, None, b.scope)


def _unvalued_reason(account: AccountSnapshot, rule: str, where: str) -> str:
    """'' when the account is fully valued, else why ``rule`` cannot be checked."""
    if not account.unvalued:
        return ""
    what = "; ".join(account.unvalued.values())
    return f"account {account.account} cannot be fully valued ({what}): cannot check {rule} {where}"


def _no_price(b: Binding) -> RuleResult:
    reason = f"no last price for {b.symbol}: cannot value the order for {b.name} {b.where}"
    return RuleResult(b.name, False, reason, b.limit, None, b.scope)


# ---- system rules ---------------------------------------------------------------------------------------------

_KILL_SWITCH_RELEASED: Final = RuleResult("kill_switch", True, "kill switch is released", False, False, Scope.SYSTEM)


def _kill_switch(ctx: OrderContext) -> RuleResult:
    controls = ctx.controls
    if not controls.kill_switch_engaged:
        return _KILL_SWITCH_RELEASED
    why = f" ({controls.kill_switch_reason})" if controls.kill_switch_reason else ""
    reason = f"kill switch is engaged{why}: every order is blocked until it is released"
    return RuleResult("kill_switch", False, reason, False, True, Scope.SYSTEM)


def _circuit_breaker(account: str) -> Evaluate:
    clear = RuleResult(
        "circuit_breaker", True, f"no circuit breaker tripped for account {account}", None, (), Scope.SYSTEM
    )

    def rule(ctx: OrderContext) -> RuleResult:
        breakers = ctx.controls.breakers
        if not breakers:
            return clear
        trips = [t for t in breakers if t.account is None or t.account == account]
        if not trips:
            return clear
        names = tuple(t.breaker for t in trips)
        detail = "; ".join(t.reason for t in trips)
        if ctx.reduces:
            reason = f"circuit breaker tripped for account {account} ({detail}), {_REDUCES}"
            return RuleResult("circuit_breaker", True, reason, None, names, Scope.SYSTEM)
        reason = (
            f"circuit breaker tripped for account {account} ({detail}): only orders that reduce a position are allowed"
        )
        return RuleResult("circuit_breaker", False, reason, None, names, Scope.SYSTEM)

    return rule


# ---- policy rules: each factory binds its limit, scope and wording once -------------------------------------


def _allowed_modes(b: Binding) -> Evaluate:
    limit: tuple[str, ...] = b.limit
    tail = f"allowed_modes ({', '.join(limit) or 'none'}) {b.where}"
    outcomes = {
        mode: RuleResult(
            b.name, mode in limit, f"mode {mode} is {'' if mode in limit else 'not '}in {tail}", limit, mode, b.scope
        )
        for mode in get_args(TradingMode)
    }

    def rule(ctx: OrderContext) -> RuleResult:
        return outcomes[ctx.order.mode]

    return rule


def _allowed_symbols(b: Binding) -> Evaluate:
    limit: tuple[str, ...] = b.limit
    allowed = b.symbol in limit  # compiled for one symbol: decided once
    tail = f"allowed_symbols ({', '.join(limit) or 'none'}) {b.where}"
    outcome = RuleResult(
        b.name, allowed, f"{b.symbol} is {'' if allowed else 'not '}in {tail}", limit, b.symbol, b.scope
    )

    def rule(ctx: OrderContext) -> RuleResult:
        return outcome

    return rule


def _allowed_order_types(b: Binding) -> Evaluate:
    values = tuple(str(t) for t in b.limit)
    tail = f"allowed_order_types ({', '.join(values) or 'none'}) {b.where}"
    outcomes = {
        kind: RuleResult(
            b.name,
            kind in values,
            f"{kind} orders are {'' if kind in values else 'not '}in {tail}",
            values,
            kind.value,
            b.scope,
        )
        for kind in OrderType
    }

    def rule(ctx: OrderContext) -> RuleResult:
        return outcomes[ctx.order.type]

    return rule


def _trading_windows(b: Binding) -> Evaluate:
    windows: tuple[TradingWindow, ...] = b.limit
    scope = b.scope
    texts = tuple(w.text for w in windows)
    inside = tuple((w.contains, f"inside trading window {w.text} {b.where}") for w in windows)
    outside = f"outside trading_windows ({', '.join(texts) or 'none'}) {b.where}"

    def rule(ctx: OrderContext) -> RuleResult:
        now = ctx.now
        seen = f"{_WEEKDAY_NAMES[now.weekday()]} {now.hour:02d}:{now.minute:02d} UTC"
        for contains, text in inside:
            if contains(now):
                return RuleResult("trading_windows", True, text, texts, seen, scope)
        return RuleResult("trading_windows", False, f"{seen} is {outside}", texts, seen, scope)

    return rule


def _quote_note(ctx: OrderContext) -> str:
    quote = ctx.quote
    return f" ({quote.note})" if quote is not None and quote.note else ""


def _max_quote_age(b: Binding) -> Evaluate:
    """A number limits every mode; a mapping (``{sandbox: 300, live: 120}``) only the modes it names, and an
    order in another mode passes with the quote's age and any replay note in its reason."""
    raw: float | dict[str, float] = b.limit
    scope, symbol, where = b.scope, b.symbol, b.where
    per_mode = raw if isinstance(raw, dict) else dict.fromkeys(get_args(TradingMode), raw)
    if isinstance(raw, dict):
        shown = ", ".join(f"{mode} {limit:g}" for mode, limit in raw.items()) or "no mode"
        tails = {mode: f"max_quote_age_seconds {limit:g} for {mode} orders {where}" for mode, limit in raw.items()}
    else:
        shown = f"{raw:g}"
        tails = {mode: f"max_quote_age_seconds {raw:g} {where}" for mode in per_mode}
    passed = {mode: f"last price of {symbol} is within {tail}" for mode, tail in tails.items()}
    no_time = {
        mode: RuleResult(
            b.name, False, f"no time-stamped last price for {symbol}: cannot check {tail}", per_mode[mode], None, scope
        )
        for mode, tail in tails.items()
    }
    unlimited = f"quote age is not limited for %s orders (max_quote_age_seconds: {shown} {where})"

    def rule(ctx: OrderContext) -> RuleResult:
        mode = ctx.order.mode
        limit = per_mode.get(mode)
        if ctx.last is None or ctx.last_time is None:
            if limit is None:
                return RuleResult(b.name, True, unlimited % mode, None, None, scope)
            return no_time[mode]
        age = max((ctx.now - ctx.last_time).total_seconds(), 0.0)
        if limit is None:
            reason = f"{unlimited % mode}; last price of {symbol} is {describe_age(age)} old{_quote_note(ctx)}"
            return RuleResult("max_quote_age_seconds", True, reason, None, age, scope)
        if age <= limit:
            return RuleResult("max_quote_age_seconds", True, passed[mode] + _quote_note(ctx), limit, age, scope)
        told = f"{age:.0f} s" if age < 120 else f"{describe_age(age)} ({age:,.0f} s)"
        reason = f"last price of {symbol} is {told} old, over {tails[mode]}{_quote_note(ctx)}"
        return RuleResult("max_quote_age_seconds", False, reason, limit, age, scope)

    return rule


def _price_collar(b: Binding) -> Evaluate:
    limit: Decimal = b.limit
    scope, quote = b.scope, b.quote
    tail = f"price_collar_pct {format_percent(limit)} {b.where}"
    passed = f"limit price is within {tail} of the last price"
    no_limit_price = RuleResult(b.name, True, "the order has no limit price to collar", limit, None, scope)
    no_last = RuleResult(b.name, False, f"no last price for {b.symbol}: cannot check {tail}", limit, None, scope)

    def rule(ctx: OrderContext) -> RuleResult:
        price = ctx.order.price
        if price is None:
            return no_limit_price
        last = ctx.last
        if last is None:
            return no_last
        deviation = abs(price - last) / last * HUNDRED
        if deviation <= limit:
            return RuleResult("price_collar_pct", True, passed, limit, deviation, scope)
        reason = (
            f"limit price {format_amount(price)} {quote} is {format_percent(deviation)} from the last price "
            f"{format_amount(last)} {quote}, beyond {tail}"
        )
        return RuleResult("price_collar_pct", False, reason, limit, deviation, scope)

    return rule


def _max_order_qty(b: Binding) -> Evaluate:
    limit: Decimal = b.limit
    scope, base = b.scope, b.base
    tail = f"max_order_qty {format_quantity(limit)} {base} {b.where}"
    passed = f"order quantity is within {tail}"

    def rule(ctx: OrderContext) -> RuleResult:
        qty = ctx.order.quantity
        if qty <= limit:
            return RuleResult("max_order_qty", True, passed, limit, qty, scope)
        reason = f"order quantity {format_quantity(qty)} {base} exceeds {tail}"
        return RuleResult("max_order_qty", False, reason, limit, qty, scope)

    return rule


def _min_order_notional(b: Binding) -> Evaluate:
    limit: Decimal = b.limit
    scope, quote = b.scope, b.quote
    tail = f"min_order_notional {format_amount(limit)} {quote} {b.where}"
    passed = f"order notional meets {tail}"
    no_price = _no_price(b)

    def rule(ctx: OrderContext) -> RuleResult:
        notional = ctx.notional
        if notional is None:
            return no_price
        if notional >= limit:
            return RuleResult("min_order_notional", True, passed, limit, notional, scope)
        reason = f"order notional {format_amount(notional)} {quote} is below {tail}"
        return RuleResult("min_order_notional", False, reason, limit, notional, scope)

    return rule


def _max_order_notional(b: Binding) -> Evaluate:
    limit: Decimal = b.limit
    scope, quote = b.scope, b.quote
    tail = f"max_order_notional {format_amount(limit)} {quote} {b.where}"
    passed = f"order notional is within {tail}"
    no_price = _no_price(b)

    def rule(ctx: OrderContext) -> RuleResult:
        notional = ctx.notional
        if notional is None:
            return no_price
        if notional <= limit:
            return RuleResult("max_order_notional", True, passed, limit, notional, scope)
        reason = f"order notional {format_amount(notional)} {quote} exceeds {tail}"
        return RuleResult("max_order_notional", False, reason, limit, notional, scope)

    return rule


def _max_position_qty(b: Binding) -> Evaluate:
    limit: Decimal = b.limit
    scope, base = b.scope, b.base
    tail = f"max_position_qty {format_quantity(limit)} {base} {b.where}"
    passed = f"position after the order is within {tail}"
    reducing = f"position after the order exceeds {tail}, {_REDUCES}"

    def rule(ctx: OrderContext) -> RuleResult:
        projected = abs(ctx.projected)
        if projected <= limit:
            return RuleResult("max_position_qty", True, passed, limit, projected, scope)
        if ctx.reduces:
            return RuleResult("max_position_qty", True, reducing, limit, projected, scope)
        reason = f"position after the order {format_quantity(ctx.projected)} {base} exceeds {tail}"
        return RuleResult("max_position_qty", False, reason, limit, projected, scope)

    return rule


def _max_position_notional(b: Binding) -> Evaluate:
    limit: Decimal = b.limit
    scope, quote = b.scope, b.quote
    tail = f"max_position_notional {format_amount(limit)} {quote} {b.where}"
    passed = f"position notional after the order is within {tail}"
    reducing = f"position notional after the order exceeds {tail}, {_REDUCES}"
    no_price = _no_price(b)
    no_price_reducing = RuleResult(b.name, True, f"no price for {b.symbol}, {_REDUCES}", limit, None, scope)

    def rule(ctx: OrderContext) -> RuleResult:
        if ctx.value_price is None:
            return no_price_reducing if ctx.reduces else no_price
        notional = abs(ctx.projected) * ctx.value_price
        if notional <= limit:
            return RuleResult("max_position_notional", True, passed, limit, notional, scope)
        if ctx.reduces:
            return RuleResult("max_position_notional", True, reducing, limit, notional, scope)
        reason = f"position notional after the order {format_amount(notional)} {quote} exceeds {tail}"
        return RuleResult("max_position_notional", False, reason, limit, notional, scope)

    return rule


def _allow_short(b: Binding) -> Evaluate:
    limit: bool = b.limit
    scope, base, where = b.scope, b.base, b.where
    allowed = f"short positions are allowed {where}"
    not_short = f"the order leaves no short position (allow_short is false {where})"
    reducing = f"the position is short, {_REDUCES}"

    def rule(ctx: OrderContext) -> RuleResult:
        projected = ctx.projected
        if limit:
            return RuleResult("allow_short", True, allowed, limit, projected, scope)
        if projected >= 0:
            return RuleResult("allow_short", True, not_short, limit, projected, scope)
        if ctx.reduces:
            return RuleResult("allow_short", True, reducing, limit, projected, scope)
        reason = (
            f"position after the order {format_quantity(projected)} {base} would be short; allow_short is false {where}"
        )
        return RuleResult("allow_short", False, reason, limit, projected, scope)

    return rule


def _max_open_positions(b: Binding) -> Evaluate:
    limit: int = b.limit
    scope = b.scope
    tail = f"max_open_positions {limit} {b.where}"
    opens_none = f"the order opens no new position ({tail})"
    passed = f"open positions after the order are within {tail}"

    def rule(ctx: OrderContext) -> RuleResult:
        held = 0 if ctx.account is None else len(ctx.account.positions)
        if ctx.position != 0 or ctx.projected == 0:
            return RuleResult("max_open_positions", True, opens_none, limit, held, scope)
        count = held + 1
        if count <= limit:
            return RuleResult("max_open_positions", True, passed, limit, count, scope)
        reason = f"{count} open positions after the order exceed {tail}"
        return RuleResult("max_open_positions", False, reason, limit, count, scope)

    return rule


def _gross_after(ctx: OrderContext) -> Decimal | None:
    """Gross exposure of the account after the order (valuation currency), None when it cannot be valued."""
    if ctx.gross_done:
        return ctx.gross_after
    account = ctx.account
    gross: Decimal | None = None
    others_valued = account is not None and all(
        p.market_value is not None for s, p in account.positions.items() if s != ctx.order.symbol
    )
    if account is not None and others_valued and ctx.value_price is not None and ctx.fx is not None:
        held = account.positions.get(ctx.order.symbol)
        current = ZERO if held is None or held.market_value is None else abs(held.market_value)
        gross = account.gross_exposure - current + abs(ctx.projected) * ctx.value_price * ctx.fx
    ctx.gross_after, ctx.gross_done = gross, True
    return gross


def _max_gross_exposure(b: Binding) -> Evaluate:
    limit: Decimal = b.limit
    scope, where, quote = b.scope, b.where, b.quote
    shown = format_amount(limit)
    passed = f"gross exposure after the order is within max_gross_exposure {shown} {where}"
    reducing = f"gross exposure after the order exceeds max_gross_exposure {shown} {where}, {_REDUCES}"
    unvalued_reducing = RuleResult(b.name, True, f"cannot value the gross exposure, {_REDUCES}", limit, None, scope)
    no_account = _no_account(b)

    def rule(ctx: OrderContext) -> RuleResult:
        account = ctx.account
        if account is None:
            return no_account
        gross = _gross_after(ctx)
        if gross is None:
            if ctx.reduces:
                return unvalued_reducing
            currency = account.valuation_currency
            reason = (
                _unvalued_reason(account, "max_gross_exposure", where)
                or f"no price or {quote}/{currency} rate: cannot value the order for max_gross_exposure {where}"
            )
            return RuleResult("max_gross_exposure", False, reason, limit, None, scope)
        if gross <= limit:
            return RuleResult("max_gross_exposure", True, passed, limit, gross, scope)
        if ctx.reduces:
            return RuleResult("max_gross_exposure", True, reducing, limit, gross, scope)
        currency = account.valuation_currency
        reason = (
            f"gross exposure after the order {format_amount(gross)} {currency} exceeds max_gross_exposure "
            f"{shown} {currency} {where}"
        )
        return RuleResult("max_gross_exposure", False, reason, limit, gross, scope)

    return rule


def _max_leverage(b: Binding) -> Evaluate:
    limit: Decimal = b.limit
    scope, quote = b.scope, b.quote
    tail = f"max_leverage {format_quantity(limit)}x {b.where}"
    passed = f"leverage after the order is within {tail}"
    no_account = _no_account(b)
    reducing = RuleResult(b.name, True, f"the order reduces a position ({tail})", limit, None, scope)

    def rule(ctx: OrderContext) -> RuleResult:
        account = ctx.account
        if account is None:
            return no_account
        if ctx.reduces:
            return reducing
        gross = _gross_after(ctx)
        if gross is None:
            reason = (
                _unvalued_reason(account, "max_leverage", b.where)
                or f"no price or {quote}/{account.valuation_currency} rate: cannot check {tail}"
            )
            return RuleResult("max_leverage", False, reason, limit, None, scope)
        if account.unvalued:
            reason = _unvalued_reason(account, "max_leverage", b.where)
            return RuleResult("max_leverage", False, reason, limit, None, scope)
        equity = account.equity
        if equity <= 0:
            reason = f"account equity is {format_amount(equity)} {account.valuation_currency}: no leverage is available"
            return RuleResult("max_leverage", False, reason, limit, None, scope)
        leverage = gross / equity
        if leverage <= limit:
            return RuleResult("max_leverage", True, passed, limit, leverage, scope)
        return RuleResult(
            "max_leverage", False, f"leverage after the order {leverage:.2f}x exceeds {tail}", limit, leverage, scope
        )

    return rule


def _max_orders_per_minute(b: Binding) -> Evaluate:
    limit: int = b.limit
    scope, symbol = b.scope, b.symbol
    symbol_only = scope is Scope.SYMBOL  # a symbol-scope limit counts that symbol's orders only
    what = f"{symbol} orders" if symbol_only else "orders"
    tail = f"max_orders_per_minute {limit} {b.where}"
    passed = f"{what} in the last minute, this one included, are within {tail}"

    def rule(ctx: OrderContext) -> RuleResult:
        account = ctx.account
        count = 1
        if account is not None and account.recent_orders:
            since = ctx.now - RATE_WINDOW
            for recent in account.recent_orders:
                if recent.ts > since and (not symbol_only or recent.symbol == symbol):
                    count += 1
        if count <= limit:
            return RuleResult("max_orders_per_minute", True, passed, limit, count, scope)
        reason = f"{count} {what} in the last minute, this one included, exceed {tail}"
        return RuleResult("max_orders_per_minute", False, reason, limit, count, scope)

    return rule


def _max_daily_loss(b: Binding) -> Evaluate:
    limit: Decimal = b.limit
    scope, where = b.scope, b.where
    shown = format_amount(limit)
    passed = f"today's loss is within max_daily_loss {shown} {where}"
    reducing = f"today's loss exceeds max_daily_loss {shown} {where}, {_REDUCES}"
    unvalued_reducing = "the account cannot be fully valued, "
    no_account = _no_account(b)

    def rule(ctx: OrderContext) -> RuleResult:
        account = ctx.account
        if account is None:
            return no_account
        if account.unvalued:
            if ctx.reduces:
                return RuleResult("max_daily_loss", True, f"{unvalued_reducing}{_REDUCES}", limit, None, scope)
            return RuleResult(
                "max_daily_loss", False, _unvalued_reason(account, "max_daily_loss", where), limit, None, scope
            )
        loss = account.day_start_equity - account.equity
        if loss <= limit:
            return RuleResult("max_daily_loss", True, passed, limit, loss, scope)
        if ctx.reduces:
            return RuleResult("max_daily_loss", True, reducing, limit, loss, scope)
        currency = account.valuation_currency
        reason = f"today's loss {format_amount(loss)} {currency} exceeds max_daily_loss {shown} {currency} {where}"
        return RuleResult("max_daily_loss", False, reason, limit, loss, scope)

    return rule


def _max_drawdown(b: Binding) -> Evaluate:
    limit: Decimal = b.limit
    scope = b.scope
    tail = f"max_drawdown {format_percent(limit * HUNDRED)} {b.where}"
    passed = f"drawdown from peak equity is within {tail}"
    reducing = f"drawdown from peak equity exceeds {tail}, {_REDUCES}"
    no_account = _no_account(b)

    def rule(ctx: OrderContext) -> RuleResult:
        account = ctx.account
        if account is None:
            return no_account
        if account.unvalued:
            if ctx.reduces:
                reason = f"the account cannot be fully valued, {_REDUCES}"
                return RuleResult("max_drawdown", True, reason, limit, None, scope)
            reason = _unvalued_reason(account, "max_drawdown", b.where)
            return RuleResult("max_drawdown", False, reason, limit, None, scope)
        drawdown = account.drawdown
        if drawdown <= limit:
            return RuleResult("max_drawdown", True, passed, limit, drawdown, scope)
        if ctx.reduces:
            return RuleResult("max_drawdown", True, reducing, limit, drawdown, scope)
        reason = (
            f"drawdown {format_percent(drawdown * HUNDRED)} from peak equity "
            f"{format_amount(account.peak_equity)} {account.valuation_currency} exceeds {tail}"
        )
        return RuleResult("max_drawdown", False, reason, limit, drawdown, scope)

    return rule


_Factory = Callable[[Binding], Evaluate]

RULE_FACTORIES: Final[dict[str, _Factory]] = {
    "allowed_modes": _allowed_modes,
    "allowed_symbols": _allowed_symbols,
    "allowed_order_types": _allowed_order_types,
    "trading_windows": _trading_windows,
    "max_quote_age_seconds": _max_quote_age,
    "price_collar_pct": _price_collar,
    "max_order_qty": _max_order_qty,
    "min_order_notional": _min_order_notional,
    "max_order_notional": _max_order_notional,
    "max_position_qty": _max_position_qty,
    "max_position_notional": _max_position_notional,
    "allow_short": _allow_short,
    "max_open_positions": _max_open_positions,
    "max_gross_exposure": _max_gross_exposure,
    "max_leverage": _max_leverage,
    "max_orders_per_minute": _max_orders_per_minute,
    "max_daily_loss": _max_daily_loss,
    "max_drawdown": _max_drawdown,
}
"""Policy limits that are pre-trade rules, in evaluation order."""

SYSTEM_RULES: Final = ("kill_switch", "circuit_breaker")
RULE_NAMES: Final = (*SYSTEM_RULES, *RULE_FACTORIES)
"""Every rule a verdict can hold."""


def compile_rules(policy: RiskPolicy, account: str, symbol: str) -> CompiledRules:
    """Resolve the policy for (account, symbol) and bind each set limit into a rule."""
    resolved = policy.resolve(account, symbol)
    base, quote = base_currency(symbol), quote_currency(symbol)
    rules: list[Evaluate] = [_kill_switch, _circuit_breaker(account)]
    for name, factory in RULE_FACTORIES.items():
        limit = resolved.get(name)
        if limit is not None:
            where = _where(limit.scope, account, symbol)
            rules.append(factory(Binding(name, limit.value, limit.scope, where, account, symbol, base, quote)))
    return CompiledRules(policy_version=policy.version, account=account, symbol=symbol, rules=tuple(rules))


def order_context(
    order: OrderIntent,
    account: AccountSnapshot | None,
    controls: TradingControls,
    now: datetime,
    last: Decimal | None,
    last_time: datetime | None,
    fx: Decimal | None,
    quote: Quote | None = None,
) -> OrderContext:
    """Value the order and project the position once, for every rule."""
    value_price = last
    price, stop = order.price, order.stop_price
    if price is not None and (value_price is None or price > value_price):
        value_price = price
    if stop is not None and (value_price is None or stop > value_price):
        value_price = stop
    held = None if account is None else account.positions.get(order.symbol)
    position = ZERO if held is None else held.quantity
    quantity = order.quantity
    signed = quantity if order.side is OrderSide.BUY else -quantity
    reduces = position != 0 and (position > 0) != (signed > 0) and quantity <= abs(position)
    return OrderContext(
        order,
        account,
        controls,
        now,
        last,
        last_time,
        quote,
        value_price,
        None if value_price is None else quantity * value_price,
        fx,
        position,
        position + signed,
        reduces,
    )
