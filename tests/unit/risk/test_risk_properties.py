"""Property tests of the policy language: a stricter policy never passes an order that a looser one rejects.

"Stricter" is judged limit by limit where each limit is set: every maximum lower or equal, every minimum higher or
equal, every allowed set (modes, symbols, order types, trading windows) a subset, shorting allowed only if the looser
policy allows it, and limits the looser policy leaves unset free to be set at all.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from engine.execution.models import OrderIntent
from engine.portfolio.models import AccountSnapshot, PortfolioSnapshot, RecentOrder
from engine.risk import BreakerTrip, MarketSnapshot, RiskPolicy, TradingControls, check

from .stubs import NOW, account, position

SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
LAST = {"BTC/USDT": Decimal(60000), "ETH/USDT": Decimal(3000), "SOL/USDT": Decimal(150)}
MODES = ("dry-run", "sandbox", "live")
TYPES = ("market", "limit", "stop", "stop_limit")
WINDOWS = ("mon-fri 08:00-17:00", "00:00-06:00", "sat,sun 10:00-22:00", "wed 22:00-03:00", "12:00-12:30")


def _dec(low: str, high: str, places: int = 2) -> st.SearchStrategy[Decimal]:
    return st.decimals(min_value=Decimal(low), max_value=Decimal(high), places=places)


def _subset(pool: tuple[str, ...]) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(pool), unique=True, max_size=len(pool))


LIMIT_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "allowed_modes": _subset(MODES),
    "allowed_order_types": _subset(TYPES),
    "trading_windows": _subset(WINDOWS),
    "max_quote_age_seconds": st.floats(min_value=1, max_value=120),
    "price_collar_pct": _dec("0.5", "20"),
    "max_order_qty": _dec("0.01", "10"),
    "min_order_notional": _dec("0", "1000"),
    "max_order_notional": _dec("0", "100000"),
    "max_position_qty": _dec("0", "10"),
    "max_position_notional": _dec("0", "200000"),
    "allow_short": st.booleans(),
    "max_open_positions": st.integers(min_value=0, max_value=4),
    "max_gross_exposure": _dec("0", "300000"),
    "max_leverage": _dec("0.1", "5"),
    "max_orders_per_minute": st.integers(min_value=0, max_value=10),
    "max_daily_loss": _dec("0", "5000"),
    "max_drawdown": _dec("0.01", "1"),
}
ACCOUNT_ONLY: dict[str, st.SearchStrategy[Any]] = {"allowed_symbols": _subset(SYMBOLS)}
POSITIVE = {"max_quote_age_seconds", "price_collar_pct", "max_order_qty", "max_leverage", "max_drawdown"}


@st.composite
def limits(draw: st.DrawFn, *, account_scope: bool) -> dict[str, Any]:
    pool = {**LIMIT_VALUES, **(ACCOUNT_ONLY if account_scope else {})}
    keys = draw(st.lists(st.sampled_from(sorted(pool)), unique=True))
    return {key: draw(pool[key]) for key in keys}


def tighten(draw: st.DrawFn, key: str, value: Any) -> Any:
    """A value of ``key`` at least as strict as ``value``."""
    if isinstance(value, list):
        return draw(st.lists(st.sampled_from(value), unique=True)) if value else []
    if key == "allow_short":
        return draw(st.booleans()) if value else False
    if key == "min_order_notional":
        return value + draw(_dec("0", "500"))
    if isinstance(value, bool):
        raise AssertionError(key)
    if isinstance(value, int):
        return draw(st.integers(min_value=0, max_value=value))
    factor = (
        draw(st.floats(min_value=0.01, max_value=1)) if key in POSITIVE else draw(st.floats(min_value=0, max_value=1))
    )
    if isinstance(value, float):
        return value * factor
    return (value * Decimal(repr(factor))).quantize(Decimal("0.0001")) or (
        Decimal("0.0001") if key in POSITIVE else Decimal(0)
    )


@st.composite
def policy_pairs(draw: st.DrawFn) -> tuple[RiskPolicy, RiskPolicy]:
    scopes = {
        "defaults": draw(limits(account_scope=True)),
        "account": draw(limits(account_scope=True)),
        "symbol": draw(limits(account_scope=False)),
    }
    strict = {name: {k: tighten(draw, k, v) for k, v in scope.items()} for name, scope in scopes.items()}
    unset_everywhere = sorted(set(LIMIT_VALUES) - set().union(*(s.keys() for s in scopes.values())))
    for key in draw(st.lists(st.sampled_from(unset_everywhere), unique=True)) if unset_everywhere else []:
        strict["defaults"][key] = draw(LIMIT_VALUES[key])

    def build(parts: dict[str, dict[str, Any]], version: str) -> RiskPolicy:
        return RiskPolicy.from_dict(
            {
                "version": version,
                "defaults": parts["defaults"],
                "accounts": {"main": {**parts["account"], "symbols": {"BTC/USDT": parts["symbol"]}}},
            }
        )

    return build(scopes, "loose"), build(strict, "strict")


@st.composite
def orders(draw: st.DrawFn) -> OrderIntent:
    symbol = draw(st.sampled_from(SYMBOLS))
    kind = draw(st.sampled_from(TYPES))
    near = st.floats(min_value=0.8, max_value=1.2).map(
        lambda f: (LAST[symbol] * Decimal(repr(f))).quantize(Decimal("0.01"))
    )
    return OrderIntent(
        account="main",
        symbol=symbol,
        side=draw(st.sampled_from(["buy", "sell"])),
        type=kind,
        quantity=draw(_dec("0.001", "5", places=3)),
        price=draw(near) if kind in ("limit", "stop_limit") else None,
        stop_price=draw(near) if kind in ("stop", "stop_limit") else None,
        mode=draw(st.sampled_from(MODES)),
    )


@st.composite
def accounts(draw: st.DrawFn) -> AccountSnapshot:
    held = draw(st.lists(st.sampled_from(SYMBOLS), unique=True))
    positions = tuple(
        position(s, str(draw(_dec("-3", "3", places=2).filter(lambda q: q != 0))), str(LAST[s]), LAST[s]) for s in held
    )
    recent = tuple(
        RecentOrder(symbol=draw(st.sampled_from(SYMBOLS)), ts=NOW - timedelta(seconds=draw(st.integers(0, 90))))
        for _ in range(draw(st.integers(0, 8)))
    )
    base = account(cash=str(draw(_dec("-50000", "300000"))), positions=positions, recent=recent)
    return base.model_copy(
        update={
            "day_start_equity": base.equity + draw(_dec("-5000", "5000")),
            "peak_equity": base.equity + draw(_dec("0", "50000")),
        }
    )


@st.composite
def markets(draw: st.DrawFn) -> MarketSnapshot:
    known = draw(st.lists(st.sampled_from(SYMBOLS), unique=True, min_size=1))
    return MarketSnapshot(
        last_prices={s: LAST[s] for s in known},
        price_times={s: NOW - timedelta(seconds=draw(st.integers(0, 120))) for s in known},
    )


@st.composite
def controls(draw: st.DrawFn) -> TradingControls:
    trips = tuple(
        BreakerTrip(
            breaker="max_daily_loss",
            account="main",
            reason="loss",
            limit=Decimal(1),
            observed=Decimal(2),
            tripped_at=NOW,
        )
        for _ in range(draw(st.integers(0, 1)))
    )
    engaged = draw(st.sampled_from([False, False, False, True]))
    return TradingControls(kill_switch_engaged=engaged, breakers=trips)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pair=policy_pairs(),
    order=orders(),
    acct=st.one_of(accounts(), st.none()),
    market=markets(),
    ctl=controls(),
    minutes=st.integers(min_value=0, max_value=7 * 24 * 60),
)
def test_a_stricter_policy_never_passes_what_a_looser_one_rejects(
    pair: tuple[RiskPolicy, RiskPolicy],
    order: OrderIntent,
    acct: AccountSnapshot | None,
    market: MarketSnapshot,
    ctl: TradingControls,
    minutes: int,
) -> None:
    loose, strict = pair
    now = NOW + timedelta(minutes=minutes)
    snapshot = PortfolioSnapshot(ts=now, accounts={} if acct is None else {"main": acct})
    v_loose = check(order, snapshot, market, policy=loose, controls=ctl, now=now)
    v_strict = check(order, snapshot, market, policy=strict, controls=ctl, now=now)
    assert set(v_loose.failed_rules) <= set(v_strict.failed_rules), (v_loose.summary(), v_strict.summary())
    if not v_loose.allowed:
        assert not v_strict.allowed
    event(f"loose {'allows' if v_loose.allowed else 'rejects'}, strict {'allows' if v_strict.allowed else 'rejects'}")


@settings(max_examples=200, deadline=None)
@given(pair=policy_pairs())
def test_every_resolved_limit_of_the_stricter_policy_is_at_least_as_strict(pair: tuple[RiskPolicy, RiskPolicy]) -> None:
    loose, strict = pair
    for symbol in SYMBOLS:
        a, b = loose.resolve("main", symbol), strict.resolve("main", symbol)
        assert set(a) <= set(b)
        for key, limit in a.items():
            tight = b[key].value
            if isinstance(limit.value, tuple):
                assert set(tight) <= set(limit.value)
            elif key == "allow_short":
                assert tight <= limit.value
            elif key == "min_order_notional":
                assert tight >= limit.value
            else:
                assert tight <= limit.value
