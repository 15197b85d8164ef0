"""Prometheus metrics of the order path, risk and the portfolio (registered in ``engine.telemetry.REGISTRY``).

Each metric is created once per process: importing this module again (a reload, a second import path) finds the
collector already registered and reuses it instead of failing on a duplicate name.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Final, Literal

from prometheus_client import Counter, Gauge, Histogram

from engine.telemetry import metric

if TYPE_CHECKING:
    from engine.execution.broker import VenueOrder
    from engine.execution.models import OrderSide
    from engine.execution.oms import OrderRecord
    from engine.portfolio.models import PortfolioSnapshot
    from engine.risk.models import Verdict

OrderOutcome = Literal["filled", "partially_filled", "rejected", "cancelled", "expired", "failed"]
ORDER_OUTCOMES: Final = ("filled", "partially_filled", "rejected", "cancelled", "expired", "failed")
RiskStage = Literal["proposal", "submission"]
RISK_STAGES: Final = ("proposal", "submission")
BPS: Final = Decimal(10_000)

SUBMIT_TO_ACK: Final = metric(
    Histogram,
    "iqts_order_submit_to_ack_seconds",
    "Time from sending an order to the venue acknowledging it.",
    ("venue",),
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
ORDERS: Final = metric(
    Counter, "iqts_orders_total", "Orders that reached a final outcome, by venue and outcome.", ("venue", "outcome")
)
ORDER_REJECTS: Final = metric(
    Counter, "iqts_order_rejects_total", "Orders the venue rejected, by kind of reason.", ("venue", "reason_kind")
)
FILL_SLIPPAGE: Final = metric(
    Histogram,
    "iqts_fill_slippage_bps",
    "Fill price against the reference price in basis points; positive is worse for us.",
    # signed buckets: price improvement shows as negative slippage (so no _sum is exported: use the quantiles)
    ("venue", "side"),
    buckets=(-100.0, -50.0, -20.0, -10.0, -5.0, -2.0, -1.0, 0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 250.0),
)
FILL_RATE: Final = metric(
    Gauge, "iqts_fill_rate", "Filled quantity over ordered quantity since the process started.", ("venue",)
)
RISK_RULE_FAILURES: Final = metric(
    Counter, "iqts_risk_rule_failures_total", "Risk rules that failed a check, by rule.", ("rule",)
)
RISK_CHECKS: Final = metric(
    Counter, "iqts_risk_checks_total", "Pre-trade risk checks, by stage and outcome.", ("stage", "outcome")
)
KILL_SWITCH: Final = metric(Gauge, "iqts_kill_switch_engaged", "1 while the kill switch is engaged.")
PNL: Final = metric(Gauge, "iqts_pnl", "Account PnL in its valuation currency.", ("account", "kind"))
EQUITY: Final = metric(Gauge, "iqts_equity", "Account equity in its valuation currency.", ("account",))


# ---- recording helpers ----------------------------------------------------------------------------------------


def observe_verdict(verdict: Verdict, stage: RiskStage | str) -> None:
    """Count a pre-trade check (stage ``proposal`` or ``submission``) and each rule it failed."""
    if stage not in RISK_STAGES:
        raise ValueError(f"unknown risk check stage {stage!r}: use proposal or submission")
    RISK_CHECKS.labels(stage=stage, outcome="allowed" if verdict.allowed else "rejected").inc()
    for result in verdict.results:
        if not result.passed:
            RISK_RULE_FAILURES.labels(rule=result.rule).inc()


def observe_ack(venue: str, seconds: float) -> None:
    """Record one submit-to-acknowledgement latency."""
    SUBMIT_TO_ACK.labels(venue=venue).observe(max(0.0, seconds))


@contextmanager
def submit_timer(venue: str) -> Iterator[None]:
    """Time a submit call up to the venue's acknowledgement (only a call that returns is recorded)."""
    start = time.perf_counter()
    yield
    observe_ack(venue, time.perf_counter() - start)


class _FillRate:
    """Ordered and filled quantity per venue since the process started."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ordered: dict[str, Decimal] = {}
        self._filled: dict[str, Decimal] = {}

    def add(self, venue: str, *, ordered: Decimal = Decimal(0), filled: Decimal = Decimal(0)) -> None:
        with self._lock:
            total_ordered = self._ordered[venue] = self._ordered.get(venue, Decimal(0)) + ordered
            total_filled = self._filled[venue] = self._filled.get(venue, Decimal(0)) + filled
            if total_ordered > 0:
                FILL_RATE.labels(venue=venue).set(float(total_filled / total_ordered))


_fill_rate = _FillRate()


def observe_submit(venue: str, quantity: Decimal) -> None:
    """An order of ``quantity`` (base units) was sent: the denominator of the fill rate."""
    _fill_rate.add(venue, ordered=quantity)


def slippage_bps(side: OrderSide | str, price: Decimal, reference_price: Decimal) -> Decimal:
    """Basis points the fill is worse than the reference: a buy above it or a sell below it is positive."""
    if reference_price <= 0:
        raise ValueError(f"reference price must be positive, got {reference_price}")
    sign = 1 if str(side) == "buy" else -1
    return sign * (price - reference_price) / reference_price * BPS


def observe_fill(
    venue: str, side: OrderSide | str, quantity: Decimal, price: Decimal, reference_price: Decimal | None
) -> Decimal | None:
    """Record a fill: its quantity for the fill rate and, with a reference price, its slippage (returned, in bps)."""
    _fill_rate.add(venue, filled=quantity)
    if reference_price is None or reference_price <= 0:
        return None
    bps = slippage_bps(side, price, reference_price)
    FILL_SLIPPAGE.labels(venue=venue, side=str(side)).observe(float(bps))
    return bps


def observe_order_outcome(venue: str, outcome: OrderOutcome, *, reason_kind: str | None = None) -> None:
    """An order reached a final outcome; a rejection also counts under its kind of reason."""
    if outcome not in ORDER_OUTCOMES:
        raise ValueError(f"unknown order outcome {outcome!r}: use one of {', '.join(ORDER_OUTCOMES)}")
    ORDERS.labels(venue=venue, outcome=outcome).inc()
    if outcome == "rejected":
        ORDER_REJECTS.labels(venue=venue, reason_kind=reason_kind or "unknown").inc()


def set_kill_switch(engaged: bool) -> None:
    KILL_SWITCH.set(1 if engaged else 0)


def set_account(account: str, *, equity: Decimal, realised_pnl: Decimal, unrealised_pnl: Decimal) -> None:
    EQUITY.labels(account=account).set(float(equity))
    PNL.labels(account=account, kind="realised").set(float(realised_pnl))
    PNL.labels(account=account, kind="unrealised").set(float(unrealised_pnl))


def observe_portfolio(snapshot: PortfolioSnapshot) -> None:
    """Equity and PnL gauges of every account in a snapshot."""
    for account in snapshot.accounts.values():
        set_account(
            account.account,
            equity=account.equity,
            realised_pnl=account.realised_pnl,
            unrealised_pnl=account.unrealised_pnl,
        )


# ---- the OMS's update callback --------------------------------------------------------------------------------

_REASON_KINDS: Final = (
    # the OMS's own refusals
    ("risk check", "risk"),
    ("kill switch", "kill_switch"),
    # the ccxt adapter's messages (engine.execution.ccxt.errors.map_error) and the paper venue's
    ("insufficient", "insufficient_funds"),
    ("does not list", "bad_symbol"),
    ("spot symbols", "bad_symbol"),
    ("api key was not accepted", "authentication"),
    ("post-only", "post_only"),
    ("market is closed", "market_closed"),
    ("not supported", "not_supported"),
    ("breaks its rules", "invalid_order"),
    ("no price for this symbol", "no_price"),
    ("refused by", "exchange_error"),
)
_TRACKED: Final = 100_000
"""Orders whose progress the callback remembers (the oldest are forgotten first)."""


def reason_kind(reason: str | None) -> str:
    """A short, low-cardinality label for a rejection reason, read from its text: ``risk``, ``insufficient_funds``,
    ``bad_symbol``... (the ccxt adapter's kinds), ``venue`` for any other reason, ``unknown`` without one."""
    text = (reason or "").lower()
    for needle, kind in _REASON_KINDS:
        if needle in text:
            return kind
    return "venue" if text else "unknown"


def _outcome(status: str, filled: Decimal) -> OrderOutcome | None:
    if status == "filled":
        return "filled"
    if status == "rejected":
        return "rejected"
    if status == "cancelled":
        return "partially_filled" if filled > 0 else "cancelled"
    if status == "expired":
        return "partially_filled" if filled > 0 else "expired"
    return None


class _OrderTracker:
    """What the update callback already counted per order: acknowledged, filled quantity, final outcome."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: OrderedDict[int, tuple[bool, Decimal, bool]] = OrderedDict()

    def update(self, order_id: int, *, acked: bool, filled: Decimal, final: bool) -> tuple[bool, Decimal, bool]:
        """Record the order's state; return (newly acknowledged, newly filled quantity, newly final)."""
        with self._lock:
            was_acked, was_filled, was_final = self._seen.pop(order_id, (False, Decimal(0), False))
            self._seen[order_id] = (was_acked or acked, max(was_filled, filled), was_final or final)
            while len(self._seen) > _TRACKED:
                self._seen.popitem(last=False)
        return acked and not was_acked, max(Decimal(0), filled - was_filled), final and not was_final


_orders = _OrderTracker()


def observe_order_update(record: OrderRecord, venue: VenueOrder | None, latency: float | None) -> None:
    """The OMS's ``on_update`` callback: latency, ordered and filled quantity, slippage and final outcomes.

    Each order counts once however often it is reported: its quantity when the venue first reports it, its fills
    as they grow, its outcome when it reaches a terminal status. Slippage is measured against the order's limit
    price when it has one (market orders need :func:`observe_fill` with a reference price from the caller).
    """
    venue_name = record.venue
    if latency is not None:
        observe_ack(venue_name, latency)
    status = str(record.status)
    outcome = _outcome(status, record.filled_quantity)
    new_ack, new_fill, new_final = _orders.update(
        record.id, acked=venue is not None, filled=record.filled_quantity, final=outcome is not None
    )
    if new_ack:
        observe_submit(venue_name, record.quantity)
    if new_fill > 0:
        _fill_rate.add(venue_name, filled=new_fill)
    if new_final and outcome is not None:
        observe_order_outcome(venue_name, outcome, reason_kind=reason_kind(record.reason))
        if record.filled_quantity > 0 and record.average_price is not None and record.price is not None:
            bps = slippage_bps(record.side, record.average_price, record.price)
            FILL_SLIPPAGE.labels(venue=venue_name, side=record.side).observe(float(bps))
