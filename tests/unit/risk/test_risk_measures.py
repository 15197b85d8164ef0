"""The monitor's math on hand-computed series, and the circuit breakers."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import ValidationFailedError
from engine.risk import (
    BreakerLimits,
    daily_pnl,
    drawdown,
    evaluate_account_breakers,
    evaluate_breakers,
    exposure,
    historical_es,
    historical_var,
    parametric_es,
    parametric_var,
    tail_risk,
)
from engine.risk.measures import returns_from_equity

from .stubs import NOW, account

GRID = [(i - 50) / 1000 for i in range(100)]  # -0.050, -0.049, ..., 0.049
Z_99 = 2.3263478740408408  # standard normal quantile at 99%
ES_FACTOR_99 = 2.6652142203458076  # pdf(z_99) / 0.01


def test_exposure() -> None:
    e = exposure([Decimal(100), Decimal(-40), Decimal(10)])
    assert (e.gross, e.net, e.long, e.short) == (Decimal(150), Decimal(70), Decimal(110), Decimal(40))
    assert exposure([]).gross == Decimal(0)


def test_drawdown_of_an_equity_series() -> None:
    d = drawdown([Decimal(v) for v in (100, 120, 90, 110, 80, 130)])
    assert d.maximum == Decimal(40) / Decimal(120)
    assert d.current == Decimal(0)
    assert d.peak == Decimal(130)
    still_down = drawdown([Decimal(v) for v in (100, 120, 90)])
    assert still_down.current == Decimal("0.25")
    with pytest.raises(ValidationFailedError, match="non-positive peak"):
        drawdown([Decimal(0), Decimal(-5)])
    with pytest.raises(ValidationFailedError):
        drawdown([])


def test_daily_pnl_is_measured_from_the_last_point_before_midnight() -> None:
    midnight = datetime(2024, 5, 2, tzinfo=UTC)
    curve = [
        (midnight - timedelta(hours=2), Decimal(1000)),
        (midnight - timedelta(minutes=5), Decimal(1010)),
        (midnight + timedelta(hours=3), Decimal(990)),
        (midnight + timedelta(hours=6), Decimal(1025)),
        (midnight + timedelta(hours=9), Decimal(2000)),  # after now: ignored
    ]
    assert daily_pnl(curve, midnight + timedelta(hours=7)) == Decimal(15)
    assert daily_pnl(curve[2:4], midnight + timedelta(hours=7)) == Decimal(35)  # the day's first point
    with pytest.raises(ValidationFailedError):
        daily_pnl(curve[4:], midnight)


def test_historical_var_and_es_on_a_grid() -> None:
    # 1% quantile by linear interpolation: -0.050 + 0.99 * 0.001 = -0.04901; the tail below it is -0.050 alone
    assert historical_var(GRID, 0.99) == Decimal("0.04901")
    assert historical_es(GRID, 0.99) == Decimal("0.05")
    assert historical_var(GRID, 0.5) == Decimal("0.0005")
    assert isinstance(historical_var([Decimal("-0.01"), Decimal("0.02")], 0.9), Decimal)


def test_parametric_var_and_es_match_the_gaussian_closed_form() -> None:
    mu, sigma = statistics.fmean(GRID), statistics.stdev(GRID)
    assert float(parametric_var(GRID, 0.99)) == pytest.approx(Z_99 * sigma - mu, rel=1e-12)
    assert float(parametric_es(GRID, 0.99)) == pytest.approx(ES_FACTOR_99 * sigma - mu, rel=1e-12)


def test_var_inputs_are_checked() -> None:
    with pytest.raises(ValidationFailedError, match="at least 2 returns"):
        historical_var([0.01], 0.99)
    with pytest.raises(ValidationFailedError, match="confidence"):
        parametric_var(GRID, 1.0)
    with pytest.raises(ValidationFailedError, match="finite"):
        historical_es([0.01, float("nan")], 0.95)


returns_lists = st.lists(st.floats(min_value=-0.5, max_value=0.5), min_size=2, max_size=200)


@settings(max_examples=200, deadline=None)
@given(returns=returns_lists, low=st.floats(0.5, 0.98), step=st.floats(0.001, 0.019))
def test_es_is_never_below_var_and_both_grow_with_confidence(returns: list[float], low: float, step: float) -> None:
    high = low + step
    for method in ("historical", "parametric"):
        at_low, at_high = tail_risk(returns, low, method), tail_risk(returns, high, method)
        assert at_low.es >= at_low.var - Decimal("1e-12")
        assert at_high.var >= at_low.var - Decimal("1e-12")


def test_returns_from_equity() -> None:
    assert returns_from_equity([Decimal(100), Decimal(110), Decimal(99)]) == pytest.approx([0.1, -0.1])
    with pytest.raises(ValidationFailedError):
        returns_from_equity([Decimal(0), Decimal(1)])


# ---- circuit breakers ----------------------------------------------------------------------------------------

LIMITS = BreakerLimits(max_daily_loss=Decimal(1000), max_drawdown=Decimal("0.1"), max_var=Decimal("0.03"))


def test_no_breaker_trips_within_limits_or_exactly_at_them() -> None:
    report = evaluate_breakers(
        "main",
        equity=Decimal(90000),
        day_start_equity=Decimal(91000),  # loss exactly 1,000
        peak_equity=Decimal(100000),  # drawdown exactly 10%
        limits=LIMITS,
        now=NOW,
        returns=[0.01, -0.01, 0.005, -0.005],
    )
    assert not report.tripped
    assert report.daily_pnl == Decimal(-1000)
    assert report.drawdown == Decimal("0.1")
    assert report.tail_risk is not None


def test_each_breaker_trips_and_says_why() -> None:
    report = evaluate_breakers(
        "main",
        equity=Decimal(85000),
        day_start_equity=Decimal(87500),
        peak_equity=Decimal(100000),
        limits=LIMITS,
        now=NOW,
        returns=GRID,
        currency="USDT",
    )
    assert [t.breaker for t in report.trips] == ["max_daily_loss", "max_drawdown", "max_var"]
    loss, dd, var = report.trips
    assert loss.reason == "daily loss 2,500 USDT exceeds max_daily_loss 1,000 USDT"
    assert (loss.observed, loss.limit, loss.account, loss.tripped_at) == (Decimal(2500), Decimal(1000), "main", NOW)
    assert dd.reason == "drawdown 15% from peak equity 100,000 USDT exceeds max_drawdown 10%"
    assert var.reason == "historical VaR at 99% is 4.9% of equity, over max_var 3%"
    assert var.observed == Decimal("0.04901")


def test_unset_limits_and_short_histories_trip_nothing() -> None:
    report = evaluate_breakers(
        "main",
        equity=Decimal(1),
        day_start_equity=Decimal(100000),
        peak_equity=Decimal(100000),
        limits=BreakerLimits(max_var=Decimal("0.01")),
        now=NOW,
        returns=[-0.5],
    )
    assert report.trips == ()
    assert report.tail_risk is None


def test_breakers_on_a_marked_account() -> None:
    snapshot = account(cash="90000", day_start="95000", peak="100000")
    report = evaluate_account_breakers(snapshot, BreakerLimits(max_daily_loss=Decimal(4000)), NOW)
    assert [t.breaker for t in report.trips] == ["max_daily_loss"]
    assert "5,000 USDT" in report.trips[0].reason
