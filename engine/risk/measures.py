"""The risk monitor's math: exposure, daily PnL, drawdown, VaR and ES, and the circuit breakers. All pure.

VaR and ES are computed on float64 internally (they are statistics) and returned as Decimal, as positive
fractions of portfolio value: a one-period 99% VaR of 0.03 means a loss above 3% is expected once in 100 periods.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, time
from decimal import Decimal
from statistics import NormalDist
from typing import Final

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from engine.errors import ValidationFailedError
from engine.portfolio.models import AccountSnapshot
from engine.risk.models import BreakerLimits, BreakerTrip, VarMethod
from engine.risk.text import format_amount, format_percent

ZERO: Final = Decimal(0)
HUNDRED: Final = Decimal(100)
MIN_RETURNS: Final = 2
"""Fewest returns a VaR or ES is computed from (a standard deviation needs two)."""
_STANDARD_NORMAL: Final = NormalDist()


class Exposure(BaseModel):
    model_config = ConfigDict(frozen=True)

    gross: Decimal
    net: Decimal
    long: Decimal
    short: Decimal


class Drawdown(BaseModel):
    model_config = ConfigDict(frozen=True)

    current: Decimal
    """Fraction below the running peak at the last point."""
    maximum: Decimal
    """Largest fraction below a running peak over the series."""
    peak: Decimal
    """The running peak at the last point."""


class TailRisk(BaseModel):
    model_config = ConfigDict(frozen=True)

    method: VarMethod
    confidence: float
    var: Decimal
    es: Decimal
    observations: int


class BreakerReport(BaseModel):
    """What the monitor measured for one account and which breakers tripped."""

    model_config = ConfigDict(frozen=True)

    account: str
    evaluated_at: datetime
    daily_pnl: Decimal
    drawdown: Decimal
    tail_risk: TailRisk | None
    trips: tuple[BreakerTrip, ...]

    @property
    def tripped(self) -> bool:
        return bool(self.trips)


# ---- exposure, PnL, drawdown ----------------------------------------------------------------------------------


def exposure(market_values: Iterable[Decimal]) -> Exposure:
    """Gross (sum of |value|), net (sum of value), long and short exposure from signed position values."""
    long = short = ZERO
    for value in market_values:
        if value > 0:
            long += value
        else:
            short -= value
    return Exposure(gross=long + short, net=long - short, long=long, short=short)


def account_exposure(account: AccountSnapshot) -> Exposure:
    """Exposure of the positions that could be valued (see ``AccountSnapshot.unvalued`` for the rest)."""
    return exposure(p.market_value for p in account.positions.values() if p.market_value is not None)


def daily_pnl(equity_curve: Sequence[tuple[datetime, Decimal]], now: datetime) -> Decimal:
    """Equity now minus equity at the start of ``now``'s UTC day.

    The day's start is the last point at or before midnight UTC, or the day's first point if the curve starts later
    that day. ``equity_curve`` is (timezone-aware time, equity), in time order; points after ``now`` are ignored.
    """
    if now.tzinfo is None:
        raise ValidationFailedError("daily_pnl needs a timezone-aware now")
    midnight = datetime.combine(now.astimezone(UTC).date(), time(0), tzinfo=UTC)
    start: Decimal | None = None
    current: Decimal | None = None
    for ts, equity in equity_curve:
        if ts > now:
            break
        if ts <= midnight or start is None:
            start = equity
        current = equity
    if start is None or current is None:
        raise ValidationFailedError("daily_pnl needs at least one equity point at or before now")
    return current - start


def drawdown(equity: Sequence[Decimal]) -> Drawdown:
    """Current and maximum drawdown, as fractions of the running peak, of an equity series in time order."""
    if not equity:
        raise ValidationFailedError("drawdown needs at least one equity point")
    peak = equity[0]
    worst = ZERO
    current = ZERO
    for value in equity:
        peak = max(peak, value)
        if peak <= 0:
            raise ValidationFailedError(f"drawdown is undefined for a non-positive peak equity ({peak})")
        current = (peak - value) / peak
        worst = max(worst, current)
    return Drawdown(current=current, maximum=worst, peak=peak)


# ---- VaR and ES -----------------------------------------------------------------------------------------------


def _returns_array(returns: Iterable[Decimal | float]) -> npt.NDArray[np.float64]:
    values = np.asarray([float(r) for r in returns], dtype=np.float64)
    if values.size < MIN_RETURNS:
        raise ValidationFailedError(f"VaR and ES need at least {MIN_RETURNS} returns, got {values.size}")
    if not np.all(np.isfinite(values)):
        raise ValidationFailedError("returns must be finite numbers")
    return values


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValidationFailedError(f"confidence must be between 0 and 1 (exclusive), got {confidence}")


def _to_decimal(value: float) -> Decimal:
    return Decimal(repr(float(value)))


def historical_var(returns: Iterable[Decimal | float], confidence: float) -> Decimal:
    """The loss not exceeded with probability ``confidence``: minus the (1 - confidence) quantile of returns
    (linear interpolation between order statistics)."""
    _check_confidence(confidence)
    values = _returns_array(returns)
    return _to_decimal(-float(np.quantile(values, 1.0 - confidence)))


def historical_es(returns: Iterable[Decimal | float], confidence: float) -> Decimal:
    """Expected shortfall: the mean loss over returns at or below the VaR quantile (never below the VaR)."""
    _check_confidence(confidence)
    values = _returns_array(returns)
    cutoff = float(np.quantile(values, 1.0 - confidence))
    tail = values[values <= cutoff]
    return _to_decimal(max(-float(tail.mean()), -cutoff))


def parametric_var(returns: Iterable[Decimal | float], confidence: float) -> Decimal:
    """Gaussian VaR: ``z * sigma - mu`` with the sample mean and standard deviation (ddof 1)."""
    _check_confidence(confidence)
    values = _returns_array(returns)
    mu, sigma = float(values.mean()), float(values.std(ddof=1))
    return _to_decimal(_STANDARD_NORMAL.inv_cdf(confidence) * sigma - mu)


def parametric_es(returns: Iterable[Decimal | float], confidence: float) -> Decimal:
    """Gaussian ES: ``sigma * pdf(z) / (1 - confidence) - mu``."""
    _check_confidence(confidence)
    values = _returns_array(returns)
    mu, sigma = float(values.mean()), float(values.std(ddof=1))
    z = _STANDARD_NORMAL.inv_cdf(confidence)
    return _to_decimal(sigma * _STANDARD_NORMAL.pdf(z) / (1.0 - confidence) - mu)


def tail_risk(returns: Sequence[Decimal | float], confidence: float, method: VarMethod = "historical") -> TailRisk:
    """VaR and ES together, by one method."""
    if method == "historical":
        var, es = historical_var(returns, confidence), historical_es(returns, confidence)
    else:
        var, es = parametric_var(returns, confidence), parametric_es(returns, confidence)
    return TailRisk(method=method, confidence=confidence, var=var, es=es, observations=len(returns))


def returns_from_equity(equity: Sequence[Decimal]) -> list[float]:
    """Simple period returns of an equity series (statistics: float)."""
    out: list[float] = []
    for previous, current in itertools.pairwise(equity):
        if previous <= 0:
            raise ValidationFailedError(f"returns are undefined after a non-positive equity ({previous})")
        out.append(float(current / previous - 1))
    return out


# ---- circuit breakers -----------------------------------------------------------------------------------------


def evaluate_breakers(
    account: str,
    *,
    equity: Decimal,
    day_start_equity: Decimal,
    peak_equity: Decimal,
    limits: BreakerLimits,
    now: datetime,
    returns: Sequence[Decimal | float] = (),
    currency: str = "",
) -> BreakerReport:
    """Which circuit breakers trip for ``account`` and why: daily loss, drawdown from peak, VaR over its limit.

    Losses and limits exceed strictly (a loss equal to the limit does not trip). The VaR breaker is evaluated only
    with a ``max_var`` limit and at least two returns.
    """
    unit = f" {currency}" if currency else ""
    trips: list[BreakerTrip] = []
    pnl = equity - day_start_equity
    loss = -pnl
    if limits.max_daily_loss is not None and loss > limits.max_daily_loss:
        trips.append(
            BreakerTrip(
                breaker="max_daily_loss",
                account=account,
                reason=(
                    f"daily loss {format_amount(loss)}{unit} exceeds max_daily_loss "
                    f"{format_amount(limits.max_daily_loss)}{unit}"
                ),
                limit=limits.max_daily_loss,
                observed=loss,
                tripped_at=now,
            )
        )
    if peak_equity > 0:
        current_drawdown = max(ZERO, (peak_equity - equity) / peak_equity)
    else:
        current_drawdown = Decimal(1) if equity < peak_equity else ZERO
    if limits.max_drawdown is not None and current_drawdown > limits.max_drawdown:
        trips.append(
            BreakerTrip(
                breaker="max_drawdown",
                account=account,
                reason=(
                    f"drawdown {format_percent(current_drawdown * HUNDRED)} from peak equity "
                    f"{format_amount(peak_equity)}{unit} exceeds max_drawdown "
                    f"{format_percent(limits.max_drawdown * HUNDRED)}"
                ),
                limit=limits.max_drawdown,
                observed=current_drawdown,
                tripped_at=now,
            )
        )
    risk: TailRisk | None = None
    if limits.max_var is not None and len(returns) >= MIN_RETURNS:
        risk = tail_risk(returns, limits.var_confidence, limits.var_method)
        if risk.var > limits.max_var:
            trips.append(
                BreakerTrip(
                    breaker="max_var",
                    account=account,
                    reason=(
                        f"{limits.var_method} VaR at {limits.var_confidence * 100:g}% is "
                        f"{format_percent(risk.var * HUNDRED)} of equity, over max_var "
                        f"{format_percent(limits.max_var * HUNDRED)}"
                    ),
                    limit=limits.max_var,
                    observed=risk.var,
                    tripped_at=now,
                )
            )
    return BreakerReport(
        account=account,
        evaluated_at=now,
        daily_pnl=pnl,
        drawdown=current_drawdown,
        tail_risk=risk,
        trips=tuple(trips),
    )


def evaluate_account_breakers(
    snapshot: AccountSnapshot,
    limits: BreakerLimits,
    now: datetime,
    returns: Sequence[Decimal | float] = (),
) -> BreakerReport:
    """:func:`evaluate_breakers` on a marked account."""
    return evaluate_breakers(
        snapshot.account,
        equity=snapshot.equity,
        day_start_equity=snapshot.day_start_equity,
        peak_equity=snapshot.peak_equity,
        limits=limits,
        now=now,
        returns=returns,
        currency=snapshot.valuation_currency,
    )
