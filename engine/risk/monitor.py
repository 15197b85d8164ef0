"""The risk monitor: recompute each account's daily PnL, drawdown and VaR, trip and persist circuit breakers.

Tripped breakers live in ``system_state['breakers']`` (``{"trips": [...]}``) where every pre-trade check reads
them (``killswitch.controls``). A breaker latches: it stays tripped until a person resets it
(:func:`reset_breaker`), except the daily-loss breaker, which the monitor resets itself on a later UTC day once
the day's loss is back within the limit. Every trip and reset is audited.

:func:`risk_status` is the read-only picture (the MCP tool ``get_risk_status`` returns it).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final

from psycopg import Connection
from psycopg.rows import TupleRow
from pydantic import BaseModel, ConfigDict, Field

from engine.audit.log import append as audit
from engine.errors import NotFoundError, ValidationFailedError
from engine.execution import metrics
from engine.portfolio.models import AccountSnapshot, PortfolioSnapshot
from engine.risk.killswitch import BREAKERS_KEY, KillSwitchState, read_breakers
from engine.risk.killswitch import status as kill_switch_status
from engine.risk.measures import (
    MIN_RETURNS,
    TailRisk,
    evaluate_account_breakers,
    returns_from_equity,
    tail_risk,
)
from engine.risk.models import BreakerLimits, BreakerName, BreakerTrip
from engine.risk.policy import RiskPolicy
from engine.risk.store import active_policy
from engine.store import system_state
from engine.store.database import Database
from engine.telemetry import get_logger

log = get_logger(__name__)

MONITOR_ACTOR: Final = "risk-monitor"
DEFAULT_HISTORY: Final = 500
"""Equity points the monitor keeps per account when it samples the history itself."""
_LOCK_KEY: Final = 0x1A75_0B4E
BREAKER_NAMES: Final[tuple[BreakerName, ...]] = ("max_daily_loss", "max_drawdown", "max_var")

SnapshotSource = Callable[[], PortfolioSnapshot]
EquityHistorySource = Callable[[], Mapping[str, Sequence[Decimal]]]


def _subject(account: str | None) -> str:
    return f"account:{account}" if account is not None else "account:*"


def _write_breakers(conn: Connection[TupleRow], trips: Sequence[BreakerTrip]) -> None:
    system_state.write(conn, BREAKERS_KEY, {"trips": [t.model_dump(mode="json") for t in trips]})


def _lock(conn: Connection[TupleRow]) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))


def breakers(db: Database) -> tuple[BreakerTrip, ...]:
    """The tripped circuit breakers in force."""
    with db.connection() as conn:
        return read_breakers(conn)


def reset_breaker(db: Database, account: str | None, breaker: BreakerName | str, actor: str) -> BreakerTrip:
    """Reset one tripped breaker by hand (audited); return the trip it cleared.

    If what tripped it still holds, the monitor trips it again on its next run.
    """
    if breaker not in BREAKER_NAMES:
        raise ValidationFailedError(f"unknown breaker {breaker!r}: use one of {', '.join(BREAKER_NAMES)}")
    with db.connection() as conn:
        _lock(conn)
        trips = list(read_breakers(conn))
        match = next((t for t in trips if t.account == account and t.breaker == breaker), None)
        if match is None:
            who = account if account is not None else "all accounts"
            raise NotFoundError(f"breaker {breaker} is not tripped for {who}")
        trips.remove(match)
        _write_breakers(conn, trips)
        audit(
            conn,
            actor,
            "risk.breaker_reset",
            _subject(account),
            {"breaker": breaker, "account": account, "tripped_at": match.tripped_at, "manual": True},
        )
    return match


def _returns(history: Sequence[Decimal]) -> list[float]:
    try:
        return returns_from_equity(history)
    except ValidationFailedError as error:
        log.warning("risk.returns_unavailable", error=str(error))
        return []


class RiskMonitor:
    """Evaluates every account's breakers with the active policy and persists what trips.

    ``snapshot`` returns the current marked portfolio. ``equity_history`` returns, per account, the equity series
    (time order) the VaR returns are computed from; without it the monitor keeps the equity it sees on each run
    (``history_limit`` points per account).
    """

    def __init__(
        self,
        db: Database,
        snapshot: SnapshotSource,
        *,
        equity_history: EquityHistorySource | None = None,
        policy: Callable[[], RiskPolicy] | None = None,
        history_limit: int = DEFAULT_HISTORY,
        actor: str = MONITOR_ACTOR,
    ) -> None:
        self._db = db
        self._snapshot = snapshot
        self._equity_history = equity_history
        self._policy = policy or (lambda: active_policy(db))
        self._samples: dict[str, deque[Decimal]] = {}
        self._history_limit = history_limit
        self._actor = actor

    def _history(self, snapshot: PortfolioSnapshot) -> Mapping[str, Sequence[Decimal]]:
        if self._equity_history is not None:
            return self._equity_history()
        for name, account in snapshot.accounts.items():
            if account.valued:  # a partial equity is not a sample of the account's returns
                self._samples.setdefault(name, deque(maxlen=self._history_limit)).append(account.equity)
        return self._samples

    def run_once(self, now: datetime | None = None) -> list[BreakerTrip]:
        """Evaluate every account once; persist and audit changes; return the breakers this run tripped."""
        now = (now or datetime.now(UTC)).astimezone(UTC)
        snapshot = self._snapshot()
        policy = self._policy()
        history = self._history(snapshot)
        metrics.observe_portfolio(snapshot)
        evaluated: dict[str, tuple[BreakerTrip, ...]] = {}
        for name, account in snapshot.accounts.items():
            if not account.valued:
                # equity without some positions would trip (or reset) breakers on a loss that is not there;
                # the breakers already tripped stay, and the pre-trade rules that need the value fail meanwhile
                log.warning("risk.monitor_account_unvalued", account=name, unvalued=account.unvalued)
                continue
            report = evaluate_account_breakers(
                account, policy.breaker_limits(name), now, _returns(history.get(name, ()))
            )
            evaluated[name] = report.trips
        return self._persist(evaluated, now, policy)

    def _persist(
        self, evaluated: Mapping[str, tuple[BreakerTrip, ...]], now: datetime, policy: RiskPolicy
    ) -> list[BreakerTrip]:
        new: list[BreakerTrip] = []
        with self._db.connection() as conn:
            _lock(conn)
            current = list(read_breakers(conn))
            held = {(t.account, t.breaker) for t in current}
            kept: list[BreakerTrip] = []
            changed = False
            for trip in current:
                found = evaluated.get(trip.account or "")
                still = found is not None and any(t.breaker == trip.breaker for t in found)
                if (
                    trip.breaker == "max_daily_loss"
                    and found is not None
                    and not still
                    and trip.tripped_at.astimezone(UTC).date() < now.date()
                ):
                    audit(
                        conn,
                        self._actor,
                        "risk.breaker_reset",
                        _subject(trip.account),
                        {
                            "breaker": trip.breaker,
                            "account": trip.account,
                            "tripped_at": trip.tripped_at,
                            "manual": False,
                            "why": "a new UTC day with the daily loss within the limit",
                        },
                    )
                    changed = True
                    continue
                kept.append(trip)
            for trips in evaluated.values():
                for trip in trips:
                    if (trip.account, trip.breaker) in held:
                        continue
                    kept.append(trip)
                    new.append(trip)
                    audit(
                        conn,
                        self._actor,
                        "risk.breaker_tripped",
                        _subject(trip.account),
                        {**trip.model_dump(mode="json"), "policy_version": str(policy.version)},
                    )
                    changed = True
            if changed:
                _write_breakers(conn, kept)
        for trip in new:
            log.warning("risk.breaker_tripped", account=trip.account, breaker=trip.breaker, reason=trip.reason)
        return new

    async def run(self, stop: asyncio.Event, interval_s: float = 5.0) -> None:
        """Run :meth:`run_once` every ``interval_s`` seconds until ``stop`` is set; a failed run is logged."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.run_once, datetime.now(UTC))
            except Exception:
                log.exception("risk.monitor_failed")
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
            except TimeoutError:
                continue


# ---- the status picture ---------------------------------------------------------------------------------------


class AccountRisk(BaseModel):
    """One account's risk measures (amounts in its valuation currency; fractions of equity)."""

    model_config = ConfigDict(frozen=True)

    account: str
    valuation_currency: str
    equity: Decimal
    daily_pnl: Decimal
    drawdown: Decimal
    peak_equity: Decimal
    gross_exposure: Decimal
    net_exposure: Decimal
    leverage: Decimal | None
    realised_pnl: Decimal
    unrealised_pnl: Decimal
    fees: Decimal
    var_historical: TailRisk | None
    var_parametric: TailRisk | None
    returns_observed: int
    limits: BreakerLimits
    breakers: tuple[BreakerTrip, ...]
    unvalued: dict[str, str] = Field(
        default_factory=dict, description="what could not be valued -> why (the totals cover only the rest)"
    )


class RiskStatus(BaseModel):
    """The kill switch, the tripped breakers, the active policy and each account's measures."""

    model_config = ConfigDict(frozen=True)

    as_of: datetime
    policy_version: int | str
    kill_switch: KillSwitchState
    breakers: tuple[BreakerTrip, ...]
    accounts: tuple[AccountRisk, ...]


def _tail(returns: Sequence[float], confidence: float) -> tuple[TailRisk | None, TailRisk | None]:
    if len(returns) < MIN_RETURNS:
        return None, None
    try:
        return tail_risk(returns, confidence, "historical"), tail_risk(returns, confidence, "parametric")
    except ValidationFailedError:
        return None, None


def account_risk(
    account: AccountSnapshot, limits: BreakerLimits, history: Sequence[Decimal], trips: Sequence[BreakerTrip]
) -> AccountRisk:
    returns = _returns(history) if len(history) > 1 else []
    historical, parametric = _tail(returns, limits.var_confidence)
    return AccountRisk(
        account=account.account,
        valuation_currency=account.valuation_currency,
        equity=account.equity,
        daily_pnl=account.daily_pnl,
        drawdown=account.drawdown,
        peak_equity=account.peak_equity,
        gross_exposure=account.gross_exposure,
        net_exposure=account.net_exposure,
        leverage=account.gross_exposure / account.equity if account.equity > 0 else None,
        realised_pnl=account.realised_pnl,
        unrealised_pnl=account.unrealised_pnl,
        fees=account.fees,
        var_historical=historical,
        var_parametric=parametric,
        returns_observed=len(returns),
        limits=limits,
        breakers=tuple(t for t in trips if t.account in (account.account, None)),
        unvalued=dict(account.unvalued),
    )


def risk_status(
    db: Database,
    snapshot: PortfolioSnapshot | None = None,
    *,
    equity_history: Mapping[str, Sequence[Decimal]] | None = None,
    now: datetime | None = None,
) -> RiskStatus:
    """The current risk picture. Without a snapshot, only the switch, the breakers and the policy."""
    policy = active_policy(db)
    switch = kill_switch_status(db)
    trips = breakers(db)
    history = equity_history or {}
    accounts = tuple(
        account_risk(account, policy.breaker_limits(name), history.get(name, ()), trips)
        for name, account in sorted((snapshot.accounts if snapshot else {}).items())
    )
    return RiskStatus(
        as_of=now or (snapshot.ts if snapshot else datetime.now(UTC)),
        policy_version=policy.version,
        kill_switch=switch,
        breakers=trips,
        accounts=accounts,
    )
