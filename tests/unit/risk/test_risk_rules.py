"""Each pre-trade rule with a passing and a failing case, the kill switch, breakers and scope recording."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from engine.errors import ValidationFailedError
from engine.portfolio.models import RecentOrder
from engine.risk import BreakerTrip, MarketSnapshot, RuleResult, Scope, TradingControls, Verdict, check
from engine.risk.rules import RULE_NAMES

from .stubs import NOW, account, market, order, policy, portfolio, position, result, verdict

LONG_BTC = position("BTC/USDT", "1", "50000", Decimal(60000))


# ---- allowed sets --------------------------------------------------------------------------------------------


def test_allowed_modes() -> None:
    pol = policy({"allowed_modes": ["dry-run", "sandbox"]})
    assert result(verdict(pol, order(mode="sandbox")), "allowed_modes").passed
    failed = result(verdict(pol, order(mode="live")), "allowed_modes")
    assert not failed.passed
    assert failed.reason == "mode live is not in allowed_modes (dry-run, sandbox) (policy default)"
    assert failed.observed == "live"


def test_allowed_symbols() -> None:
    pol = policy({"allowed_symbols": ["BTC/USDT"]})
    assert result(verdict(pol, order()), "allowed_symbols").passed
    failed = result(verdict(pol, order(symbol="ETH/USDT")), "allowed_symbols")
    assert not failed.passed
    assert "ETH/USDT is not in allowed_symbols (BTC/USDT)" in failed.reason


def test_allowed_order_types() -> None:
    pol = policy({"allowed_order_types": ["market", "limit"]})
    assert result(verdict(pol, order(type="limit", price=Decimal(60000))), "allowed_order_types").passed
    failed = result(verdict(pol, order(type="stop", stop_price=Decimal(59000))), "allowed_order_types")
    assert not failed.passed
    assert "stop orders are not in allowed_order_types (market, limit)" in failed.reason


def test_trading_windows() -> None:
    pol = policy({"trading_windows": ["mon-fri 08:00-17:00"]})
    assert result(verdict(pol, order(), now=NOW), "trading_windows").passed  # Wednesday 12:00
    saturday = NOW + timedelta(days=3)
    failed = result(verdict(pol, order(), now=saturday), "trading_windows")
    assert not failed.passed
    assert failed.reason == "Saturday 12:00 UTC is outside trading_windows (mon-fri 08:00-17:00) (policy default)"
    evening = NOW + timedelta(hours=6)  # 18:00
    assert not result(verdict(pol, order(), now=evening), "trading_windows").passed


def test_trading_window_across_midnight_belongs_to_its_start_day() -> None:
    pol = policy({"trading_windows": ["fri 22:00-02:00"]})
    friday_late = NOW + timedelta(days=2, hours=11)  # Friday 23:00
    saturday_early = NOW + timedelta(days=2, hours=13)  # Saturday 01:00
    saturday_late = NOW + timedelta(days=3, hours=11)  # Saturday 23:00
    assert result(verdict(pol, order(), now=friday_late), "trading_windows").passed
    assert result(verdict(pol, order(), now=saturday_early), "trading_windows").passed
    assert not result(verdict(pol, order(), now=saturday_late), "trading_windows").passed


def test_an_empty_window_list_allows_no_time() -> None:
    pol = policy({"trading_windows": []})
    assert not result(verdict(pol, order()), "trading_windows").passed


# ---- market data ---------------------------------------------------------------------------------------------


def test_max_quote_age_seconds() -> None:
    pol = policy({"max_quote_age_seconds": 30})
    assert result(verdict(pol, order(), mkt=market(fresh_seconds=10)), "max_quote_age_seconds").passed
    failed = result(verdict(pol, order(), mkt=market(fresh_seconds=95)), "max_quote_age_seconds")
    assert not failed.passed
    assert failed.reason.startswith("last price of BTC/USDT is 95 s old, over max_quote_age_seconds 30")
    untimed = MarketSnapshot(last_prices={"BTC/USDT": Decimal(60000)})
    assert not result(verdict(pol, order(), mkt=untimed), "max_quote_age_seconds").passed


def test_price_collar_pct() -> None:
    pol = policy({"price_collar_pct": 5})
    inside = order(type="limit", price=Decimal(62000))  # 3.33% above 60,000
    assert result(verdict(pol, inside), "price_collar_pct").passed
    failed = result(verdict(pol, order(type="limit", price=Decimal(66000))), "price_collar_pct")
    assert not failed.passed
    assert failed.observed == Decimal(10)
    assert failed.reason == (
        "limit price 66,000 USDT is 10% from the last price 60,000 USDT, beyond price_collar_pct 5% (policy default)"
    )
    below = result(verdict(pol, order(type="limit", side="sell", price=Decimal(50000))), "price_collar_pct")
    assert not below.passed


def test_price_collar_passes_orders_without_a_limit_price_and_fails_without_a_last_price() -> None:
    pol = policy({"price_collar_pct": 5})
    assert result(verdict(pol, order()), "price_collar_pct").passed
    no_last = MarketSnapshot(last_prices={"ETH/USDT": Decimal(3000)})
    failed = result(verdict(pol, order(type="limit", price=Decimal(60000)), mkt=no_last), "price_collar_pct")
    assert not failed.passed
    assert "no last price for BTC/USDT" in failed.reason


# ---- order size ----------------------------------------------------------------------------------------------


def test_max_order_qty() -> None:
    pol = policy({"max_order_qty": "0.5"})
    assert result(verdict(pol, order(quantity=Decimal("0.5"))), "max_order_qty").passed
    failed = result(verdict(pol, order(quantity=Decimal("0.75"))), "max_order_qty")
    assert not failed.passed
    assert failed.reason == "order quantity 0.75 BTC exceeds max_order_qty 0.5 BTC (policy default)"


def test_min_order_notional() -> None:
    pol = policy({"min_order_notional": 100})
    assert result(verdict(pol, order(quantity=Decimal("0.01"))), "min_order_notional").passed  # 600 USDT
    failed = result(verdict(pol, order(quantity=Decimal("0.001"))), "min_order_notional")  # 60 USDT
    assert not failed.passed
    assert "order notional 60 USDT is below min_order_notional 100 USDT" in failed.reason


def test_max_order_notional_reason_reads_like_a_sentence() -> None:
    pol = policy({"max_order_notional": 50000}, {"main": {"max_order_notional": 50000}})
    assert result(verdict(pol, order(quantity=Decimal("0.5"))), "max_order_notional").passed
    intent = order(type="limit", quantity=Decimal(1), price=Decimal("61234.5"))
    failed = result(verdict(pol, intent), "max_order_notional")
    assert not failed.passed
    assert failed.reason == "order notional 61,234.50 USDT exceeds max_order_notional 50,000 USDT for account main"
    assert failed.limit == Decimal(50000)
    assert failed.observed == Decimal("61234.5")
    assert failed.scope is Scope.ACCOUNT


def test_order_value_uses_the_larger_of_last_and_limit_price() -> None:
    """A sell limit far below the market cannot understate what the order trades."""
    pol = policy({"max_order_notional": 10000})
    cheap_sell = order(side="sell", type="limit", quantity=Decimal(1), price=Decimal(1))
    failed = result(verdict(pol, cheap_sell), "max_order_notional")
    assert not failed.passed
    assert failed.observed == Decimal(60000)


def test_notional_rules_fail_without_any_price() -> None:
    pol = policy({"max_order_notional": 10000, "min_order_notional": 10})
    no_price = MarketSnapshot()
    v = verdict(pol, order(), mkt=no_price)
    for rule in ("max_order_notional", "min_order_notional"):
        failed = result(v, rule)
        assert not failed.passed
        assert "no last price for BTC/USDT" in failed.reason


# ---- position ------------------------------------------------------------------------------------------------


def test_max_position_qty() -> None:
    pol = policy({"max_position_qty": "1.5"})
    acct = account(positions=(LONG_BTC,))
    assert result(verdict(pol, order(quantity=Decimal("0.5")), acct), "max_position_qty").passed
    failed = result(verdict(pol, order(quantity=Decimal("0.6")), acct), "max_position_qty")
    assert not failed.passed
    assert failed.reason == "position after the order 1.6 BTC exceeds max_position_qty 1.5 BTC (policy default)"


def test_max_position_qty_counts_shorts_by_size() -> None:
    pol = policy({"max_position_qty": "1"})
    assert not result(verdict(pol, order(side="sell", quantity=Decimal(2))), "max_position_qty").passed


def test_max_position_notional() -> None:
    pol = policy({"max_position_notional": 100000})
    acct = account(positions=(LONG_BTC,))
    assert result(verdict(pol, order(quantity=Decimal("0.5")), acct), "max_position_notional").passed
    failed = result(verdict(pol, order(quantity=Decimal(1)), acct), "max_position_notional")
    assert not failed.passed
    assert "position notional after the order 120,000 USDT exceeds max_position_notional 100,000 USDT" in failed.reason


def test_allow_short() -> None:
    pol = policy({"allow_short": False})
    acct = account(positions=(LONG_BTC,))
    assert result(verdict(pol, order(side="sell", quantity=Decimal(1)), acct), "allow_short").passed
    failed = result(verdict(pol, order(side="sell", quantity=Decimal("1.5")), acct), "allow_short")
    assert not failed.passed
    assert failed.reason == "position after the order -0.5 BTC would be short; allow_short is false (policy default)"
    assert result(verdict(policy({"allow_short": True}), order(side="sell")), "allow_short").passed


def test_max_open_positions() -> None:
    pol = policy({"max_open_positions": 1})
    acct = account(positions=(LONG_BTC,))
    assert result(verdict(pol, order(), acct), "max_open_positions").passed  # adds to the open one
    failed = result(verdict(pol, order(symbol="ETH/USDT"), acct), "max_open_positions")
    assert not failed.passed
    assert failed.reason == "2 open positions after the order exceed max_open_positions 1 (policy default)"


# ---- account exposure and losses -----------------------------------------------------------------------------


def test_max_gross_exposure() -> None:
    pol = policy({"max_gross_exposure": 100000})
    acct = account(positions=(LONG_BTC,))  # 60,000 USDT
    assert result(verdict(pol, order(quantity=Decimal("0.5")), acct), "max_gross_exposure").passed
    failed = result(verdict(pol, order(symbol="ETH/USDT", quantity=Decimal(20)), acct), "max_gross_exposure")
    assert not failed.passed
    assert "gross exposure after the order 120,000 USDT exceeds max_gross_exposure 100,000 USDT" in failed.reason


def test_max_gross_exposure_converts_the_quote_currency() -> None:
    pol = policy({"max_gross_exposure": 100000})
    usd_order = order(symbol="BTC/USD", quantity=Decimal(1))
    no_rate = MarketSnapshot(last_prices={"BTC/USD": Decimal(60000)})
    failed = result(verdict(pol, usd_order, mkt=no_rate), "max_gross_exposure")
    assert not failed.passed
    assert "no price or USD/USDT rate" in failed.reason
    with_rate = MarketSnapshot(last_prices={"BTC/USD": Decimal(60000)}, fx_rates={"USD/USDT": Decimal("0.999")})
    passed = result(verdict(pol, usd_order, mkt=with_rate), "max_gross_exposure")
    assert passed.passed
    assert passed.observed == Decimal("59940.000")


def test_max_leverage() -> None:
    pol = policy({"max_leverage": 2})
    acct = account(cash="50000", positions=(LONG_BTC,))  # equity 110,000, gross 60,000
    assert result(verdict(pol, order(quantity=Decimal(2)), acct), "max_leverage").passed  # 180,000 / 110,000
    failed = result(verdict(pol, order(quantity=Decimal(3)), acct), "max_leverage")  # 240,000 / 110,000
    assert not failed.passed
    assert failed.reason == "leverage after the order 2.18x exceeds max_leverage 2x (policy default)"


def test_max_leverage_fails_on_non_positive_equity() -> None:
    pol = policy({"max_leverage": 2})
    broke = account(cash="-60000", positions=(LONG_BTC,))  # equity 0
    failed = result(verdict(pol, order(), broke), "max_leverage")
    assert not failed.passed
    assert "no leverage is available" in failed.reason


def test_max_orders_per_minute_counts_the_last_minute_and_this_order() -> None:
    pol = policy({"max_orders_per_minute": 3})
    two = tuple(RecentOrder(symbol="BTC/USDT", ts=NOW - timedelta(seconds=s)) for s in (10, 20))
    stale = (RecentOrder(symbol="BTC/USDT", ts=NOW - timedelta(seconds=61)),)
    assert result(verdict(pol, order(), account(recent=two + stale)), "max_orders_per_minute").passed
    three = (*two, RecentOrder(symbol="ETH/USDT", ts=NOW - timedelta(seconds=30)))
    failed = result(verdict(pol, order(), account(recent=three)), "max_orders_per_minute")
    assert not failed.passed
    assert failed.observed == 4
    assert failed.reason == (
        "4 orders in the last minute, this one included, exceed max_orders_per_minute 3 (policy default)"
    )


def test_a_symbol_scope_rate_limit_counts_that_symbol_only() -> None:
    pol = policy(accounts={"main": {"symbols": {"BTC/USDT": {"max_orders_per_minute": 2}}}})
    others = tuple(RecentOrder(symbol="ETH/USDT", ts=NOW - timedelta(seconds=s)) for s in (5, 6, 7))
    assert result(verdict(pol, order(), account(recent=others)), "max_orders_per_minute").passed
    mine = others + (RecentOrder(symbol="BTC/USDT", ts=NOW - timedelta(seconds=3)),) * 2
    failed = result(verdict(pol, order(), account(recent=mine)), "max_orders_per_minute")
    assert not failed.passed
    assert "3 BTC/USDT orders in the last minute" in failed.reason


def test_max_daily_loss() -> None:
    pol = policy({"max_daily_loss": 1000})
    assert result(verdict(pol, order(), account(day_start="100900")), "max_daily_loss").passed
    failed = result(verdict(pol, order(), account(day_start="101500")), "max_daily_loss")
    assert not failed.passed
    assert failed.reason == "today's loss 1,500 USDT exceeds max_daily_loss 1,000 USDT (policy default)"


def test_max_drawdown() -> None:
    pol = policy({"max_drawdown": "0.1"})
    assert result(verdict(pol, order(), account(peak="110000")), "max_drawdown").passed  # 9.09%
    failed = result(verdict(pol, order(), account(peak="125000")), "max_drawdown")  # 20%
    assert not failed.passed
    assert failed.reason == "drawdown 20% from peak equity 125,000 USDT exceeds max_drawdown 10% (policy default)"


def test_orders_that_reduce_a_position_pass_exposure_and_loss_rules() -> None:
    pol = policy(
        {
            "max_daily_loss": 100,
            "max_drawdown": "0.05",
            "max_position_qty": "0.5",
            "max_gross_exposure": 1000,
            "max_leverage": "0.1",
        }
    )
    losing = account(positions=(LONG_BTC,), day_start="200000", peak="300000")
    reduce = verdict(pol, order(side="sell", quantity=Decimal("0.4")), losing)
    assert reduce.allowed, reduce.summary()
    add = verdict(pol, order(side="buy", quantity=Decimal("0.4")), losing)
    assert set(add.failed_rules) == {
        "max_daily_loss",
        "max_drawdown",
        "max_position_qty",
        "max_gross_exposure",
        "max_leverage",
    }
    flip = verdict(pol, order(side="sell", quantity=Decimal(2)), losing)  # through zero: not a reduction
    assert not flip.allowed


# ---- system rules --------------------------------------------------------------------------------------------


def test_the_kill_switch_blocks_every_order_with_its_reason() -> None:
    pol = policy()
    engaged = TradingControls(kill_switch_engaged=True, kill_switch_reason="engaged by alice")
    acct = account(positions=(LONG_BTC,))
    for intent in (order(), order(side="sell", quantity=Decimal("0.1"))):  # even a reduction
        v = verdict(pol, intent, acct, controls=engaged)
        assert not v.allowed
        assert v.failed_rules == ("kill_switch",)
        assert v.failures[0].reason == (
            "kill switch is engaged (engaged by alice): every order is blocked until it is released"
        )
        assert v.failures[0].scope is Scope.SYSTEM
    assert result(verdict(pol, order()), "kill_switch").passed


def _trip(account_name: str | None) -> BreakerTrip:
    return BreakerTrip(
        breaker="max_drawdown",
        account=account_name,
        reason="drawdown 25% from peak equity 100,000 exceeds max_drawdown 20%",
        limit=Decimal("0.2"),
        observed=Decimal("0.25"),
        tripped_at=NOW,
    )


def test_a_tripped_breaker_blocks_orders_that_add_risk_and_lets_reductions_through() -> None:
    pol = policy()
    acct = account(positions=(LONG_BTC,))
    tripped = TradingControls(kill_switch_engaged=False, breakers=(_trip("main"),))
    add = verdict(pol, order(), acct, controls=tripped)
    assert add.failed_rules == ("circuit_breaker",)
    assert "circuit breaker tripped for account main (drawdown 25%" in add.failures[0].reason
    assert add.failures[0].observed == ("max_drawdown",)
    assert verdict(pol, order(side="sell", quantity=Decimal("0.5")), acct, controls=tripped).allowed


def test_breakers_apply_to_their_account_or_to_all() -> None:
    pol = policy()
    other = TradingControls(kill_switch_engaged=False, breakers=(_trip("other"),))
    everyone = TradingControls(kill_switch_engaged=False, breakers=(_trip(None),))
    assert verdict(pol, order(), controls=other).allowed
    assert not verdict(pol, order(), controls=everyone).allowed


# ---- scopes, missing data, the verdict -----------------------------------------------------------------------


def test_results_record_the_scope_each_limit_came_from() -> None:
    pol = policy(
        {"max_order_notional": 1000, "max_order_qty": 5, "min_order_notional": 1},
        {"main": {"max_order_notional": 2000, "symbols": {"BTC/USDT": {"max_order_qty": 1}}}},
    )
    v = verdict(pol, order(quantity=Decimal("0.01")))
    assert result(v, "max_order_qty").scope is Scope.SYMBOL
    assert result(v, "max_order_qty").limit == Decimal(1)
    assert "for BTC/USDT in account main" in result(v, "max_order_qty").reason
    assert result(v, "max_order_notional").scope is Scope.ACCOUNT
    assert result(v, "min_order_notional").scope is Scope.DEFAULT
    assert result(v, "kill_switch").scope is Scope.SYSTEM
    elsewhere = verdict(pol, order(account="other", quantity=Decimal("0.01")), account(name="other"))
    assert result(elsewhere, "max_order_qty").scope is Scope.DEFAULT
    assert result(elsewhere, "max_order_notional").limit == Decimal(1000)


def test_account_rules_fail_without_a_portfolio_for_the_account() -> None:
    pol = policy({"max_daily_loss": 1000, "max_drawdown": "0.2", "max_leverage": 1, "max_gross_exposure": 10})
    v = check(
        order(account="ghost"),
        portfolio(account()),
        market(),
        policy=pol,
        controls=TradingControls(kill_switch_engaged=False),
        now=NOW,
    )
    assert set(v.failed_rules) == {"max_daily_loss", "max_drawdown", "max_leverage", "max_gross_exposure"}
    assert all("no portfolio snapshot for account ghost" in r.reason for r in v.failures)


def test_unset_limits_are_not_checked() -> None:
    v = verdict(policy(), order(quantity=Decimal(1000)))
    assert v.allowed
    assert [r.rule for r in v.results] == ["kill_switch", "circuit_breaker"]


def test_every_rule_of_a_full_policy_runs_in_order() -> None:
    pol = policy(
        {
            "allowed_modes": ["dry-run"],
            "allowed_symbols": ["BTC/USDT"],
            "allowed_order_types": ["market"],
            "trading_windows": ["00:00-24:00"],
            "max_quote_age_seconds": 60,
            "price_collar_pct": 5,
            "max_order_qty": 1,
            "min_order_notional": 10,
            "max_order_notional": 10000,
            "max_position_qty": 1,
            "max_position_notional": 10000,
            "allow_short": False,
            "max_open_positions": 3,
            "max_gross_exposure": 10000,
            "max_leverage": 1,
            "max_orders_per_minute": 5,
            "max_daily_loss": 100,
            "max_drawdown": "0.1",
        }
    )
    v = verdict(pol, order())
    assert v.allowed, v.summary()
    assert tuple(r.rule for r in v.results) == RULE_NAMES
    assert len(v.results) == 20
    assert v.summary() == "allowed (20 rules passed, policy 7)"


def test_check_needs_an_aware_time() -> None:
    with pytest.raises(ValidationFailedError, match="timezone-aware"):
        verdict(policy(), order(), now=NOW.replace(tzinfo=None))


def test_verdict_records_the_policy_version_and_round_trips_through_json() -> None:
    pol = policy({"max_order_notional": 1000, "price_collar_pct": 5})
    v = verdict(pol, order(type="limit", price=Decimal(70000)))
    assert v.policy_version == 7
    assert not v.allowed
    assert v.summary().startswith("rejected by policy 7: limit price 70,000 USDT is 16.67% from the last price")
    again = Verdict.model_validate_json(v.model_dump_json())
    assert again.allowed == v.allowed
    assert [(r.rule, r.passed, r.reason, r.scope) for r in again.results] == [
        (r.rule, r.passed, r.reason, r.scope) for r in v.results
    ]
    assert isinstance(again.results[0], RuleResult)
    assert Verdict.model_validate(v.model_dump()) == v


def test_verdict_json_schema_describes_rule_results_as_objects() -> None:
    schema = Verdict.model_json_schema(mode="serialization")
    text = str(schema)
    for field in ("rule", "passed", "reason", "limit", "observed", "scope"):
        assert f"'{field}'" in text


def test_the_policy_is_compiled_once_per_account_and_symbol() -> None:
    pol = policy({"max_order_qty": 1})
    first = pol.compiled("main", "BTC/USDT")
    verdict(pol, order())
    assert pol.compiled("main", "BTC/USDT") is first
    assert pol.compiled("main", "ETH/USDT") is not first
    assert pol == policy({"max_order_qty": 1})  # the cache does not change what the policy is


def test_a_trusted_verdict_is_the_same_as_a_validated_one() -> None:
    v = verdict(policy({"max_order_qty": 1}), order())
    validated = Verdict(**{name: getattr(v, name) for name in Verdict.model_fields})
    assert v == validated
    assert v.model_fields_set == validated.model_fields_set
    assert v.model_dump() == validated.model_dump()
    assert v.model_copy(update={"allowed": False}).allowed is False


# ---- quote age per mode, replayed prices, unvalued holdings --------------------------------------------------


def _replayed_market() -> MarketSnapshot:
    from engine.data.quote import make_quote

    quote = make_quote(exchange="bitstamp", symbol="BTC/USDT", timeframe="1d", bar_open_ms=1_579_219_200_000,
                       close=Decimal(60000), as_of=NOW)  # fmt: skip
    return MarketSnapshot.from_quotes({"BTC/USDT": quote})


def test_a_per_mode_quote_age_limits_only_the_modes_it_names_and_says_why() -> None:
    pol = policy({"max_quote_age_seconds": {"sandbox": 300, "live": 60}})
    stale = _replayed_market()
    sandbox = result(verdict(pol, order(mode="sandbox"), mkt=stale), "max_quote_age_seconds")
    assert not sandbox.passed and sandbox.limit == 300
    assert sandbox.reason.startswith("last price of BTC/USDT is ")
    assert sandbox.reason == (
        "last price of BTC/USDT is 1,565 days (135,259,200 s) old, over max_quote_age_seconds 300 for sandbox orders "
        "(policy default) (replayed price from 2020-01-17 (1,565 days old), series bitstamp:BTC/USDT:1d)"
    )  # Bitstamp BTC/USDT is not a bundled series: "replayed", not "replayed sample"
    dry = result(verdict(pol, order(mode="dry-run"), mkt=stale), "max_quote_age_seconds")
    assert dry.passed and dry.limit is None and dry.observed == stale.quotes["BTC/USDT"].age_seconds
    assert dry.reason.startswith(
        "quote age is not limited for dry-run orders (max_quote_age_seconds: sandbox 300, live 60"
    )
    assert "replayed price from 2020-01-17" in dry.reason
    fresh = result(verdict(pol, order(mode="live"), mkt=market(fresh_seconds=30)), "max_quote_age_seconds")
    assert (
        fresh.passed
        and fresh.reason == "last price of BTC/USDT is within max_quote_age_seconds 60 for live orders (policy default)"
    )
    assert not result(verdict(pol, order(mode="live"), mkt=market(fresh_seconds=61)), "max_quote_age_seconds").passed
    no_price = result(verdict(pol, order(mode="dry-run"), mkt=MarketSnapshot()), "max_quote_age_seconds")
    assert no_price.passed and "not limited for dry-run" in no_price.reason


def test_a_verdict_notes_a_replayed_price_even_when_everything_passes() -> None:
    v = verdict(policy({"max_order_qty": 1}), order(), mkt=_replayed_market())
    assert v.allowed and v.notes == (
        "BTC/USDT: replayed price from 2020-01-17 (1,565 days old), series bitstamp:BTC/USDT:1d",
    )
    assert v.summary().endswith("; note: " + v.notes[0])
    assert verdict(policy({"max_order_qty": 1}), order()).notes == ()


def test_an_unvalued_holding_fails_only_the_rules_that_need_its_value() -> None:
    unvalued = account(positions=(LONG_BTC,)).model_copy(
        update={"unvalued": {"DOGE/USDT": "no price for DOGE/USDT, held by account main: cannot value it"}}
    )
    held = unvalued.positions | {
        "DOGE/USDT": LONG_BTC.model_copy(update={"symbol": "DOGE/USDT", "last_price": None, "notional": None,
                                                 "market_value": None, "unrealised_pnl": None,
                                                 "unvalued_reason": "no price"}),
    }  # fmt: skip
    acct = unvalued.model_copy(update={"positions": held})
    limits = {"max_order_notional": 100000, "max_open_positions": 5, "max_gross_exposure": 10**6,
              "max_leverage": 10, "max_daily_loss": 1000, "max_drawdown": "0.5"}  # fmt: skip
    v = verdict(policy(limits), order(symbol="ETH/USDT", quantity=Decimal(1)), acct)
    failed = {r.rule: r.reason for r in v.results if not r.passed}
    assert set(failed) == {"max_gross_exposure", "max_leverage", "max_daily_loss", "max_drawdown"}
    assert all("account main cannot be fully valued (no price for DOGE/USDT" in reason for reason in failed.values())
    assert result(v, "max_order_notional").passed and result(v, "max_open_positions").passed
    assert v.notes == ("account main: no price for DOGE/USDT, held by account main: cannot value it",)
    cut = verdict(policy(limits), order(side="sell", quantity=Decimal("0.5")), acct)  # reduces the BTC position
    assert result(cut, "max_daily_loss").passed and result(cut, "max_drawdown").passed
