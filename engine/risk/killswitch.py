"""The kill switch: persisted in ``system_state`` (key ``kill_switch``), checked on every submit.

Engaging is instant and open to anyone allowed to trade: the state and its audit row commit together, then
``{"engaged": true, ...}`` goes out on the bus topic ``risk.kill_switch`` so that execution workers cancel open
orders. Releasing needs a human approval: a ``kill_switch_release`` request that is approved (for exactly the
request shown: its decided hash equals its intent hash), unexpired, requested after the switch was engaged and not
used before; it is marked ``executed`` in the same transaction that releases the switch.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, Final

from psycopg import Connection
from psycopg.rows import TupleRow
from pydantic import BaseModel, ConfigDict

from engine.audit.log import append as audit
from engine.audit.log import record
from engine.bus.protocol import Bus
from engine.errors import BusUnavailableError, IQTSError, ValidationFailedError
from engine.execution import metrics
from engine.intents import KillSwitchReleaseIntent
from engine.risk.models import BreakerTrip, TradingControls
from engine.store import approval_requests, system_state
from engine.store.database import Database
from engine.store.system_state import StateKey
from engine.telemetry import get_logger

log = get_logger(__name__)

KILL_SWITCH_KEY: Final[StateKey] = "kill_switch"
BREAKERS_KEY: Final[StateKey] = "breakers"
KILL_SWITCH_TOPIC: Final = "risk.kill_switch"
RELEASE_KIND: Final = "kill_switch_release"
SUBJECT: Final = "kill_switch"
_LOCK_KEY: Final = 0x1A75_0C11


class KillSwitchError(IQTSError):
    """The kill switch cannot be released (no valid approval, or it is not engaged)."""


class KillSwitchBroadcastError(BusUnavailableError):
    """The switch changed (and is in force for every submit) but the bus message could not be published."""


class KillSwitchState(BaseModel):
    """The persisted switch. ``by`` and ``at`` name the last act (engage or release)."""

    model_config = ConfigDict(frozen=True)

    engaged: bool = False
    by: str | None = None
    at: datetime | None = None
    reason: str | None = None
    approval_id: str | None = None
    """The approval a release was made with."""


def _read_state(conn: Connection[TupleRow], *, lock: bool = False) -> KillSwitchState:
    if lock:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
    value = system_state.read(conn, KILL_SWITCH_KEY)
    return KillSwitchState() if value is None else KillSwitchState.model_validate(value)


def _write_state(conn: Connection[TupleRow], state: KillSwitchState) -> None:
    system_state.write(conn, KILL_SWITCH_KEY, state)


def state_in(conn: Connection[TupleRow], *, lock: bool = False) -> KillSwitchState:
    """The switch inside the caller's transaction; ``lock`` serialises with engage and release until commit."""
    return _read_state(conn, lock=lock)


def status(db: Database) -> KillSwitchState:
    """The switch as persisted (released when never engaged)."""
    with db.connection() as conn:
        state = _read_state(conn)
    metrics.set_kill_switch(state.engaged)
    return state


def read_breakers(conn: Connection[TupleRow]) -> tuple[BreakerTrip, ...]:
    """The tripped circuit breakers persisted under ``system_state['breakers']``."""
    value = system_state.read(conn, BREAKERS_KEY)
    if value is None:
        return ()
    return tuple(BreakerTrip.model_validate(trip) for trip in value.get("trips", []))


def controls_in(conn: Connection[TupleRow]) -> TradingControls:
    """:func:`controls` inside the caller's transaction (one query)."""
    rows = system_state.read_many(conn, (KILL_SWITCH_KEY, BREAKERS_KEY))
    switch = KillSwitchState.model_validate(rows.get(KILL_SWITCH_KEY) or {})
    trips = tuple(BreakerTrip.model_validate(t) for t in (rows.get(BREAKERS_KEY) or {}).get("trips", []))
    metrics.set_kill_switch(switch.engaged)
    return TradingControls(
        kill_switch_engaged=switch.engaged,
        kill_switch_reason=_describe(switch) if switch.engaged else None,
        breakers=trips,
    )


def controls(db: Database) -> TradingControls:
    """What every pre-trade check must honour besides the policy: the kill switch and the tripped breakers."""
    with db.connection() as conn:
        return controls_in(conn)


def _describe(state: KillSwitchState) -> str:
    who = f" by {state.by}" if state.by else ""
    when = f" at {state.at.isoformat(timespec='seconds')}" if state.at else ""
    why = f": {state.reason}" if state.reason else ""
    return f"engaged{who}{when}{why}"


def _message(state: KillSwitchState) -> dict[str, Any]:
    return state.model_dump(mode="json")


async def _broadcast(bus: Bus, state: KillSwitchState) -> None:
    try:
        await bus.publish(KILL_SWITCH_TOPIC, _message(state))
    except Exception as error:  # the switch is persisted either way: say what did not happen
        log.error("kill_switch.broadcast_failed", engaged=state.engaged, error=str(error))
        what = "engaged (new orders are blocked)" if state.engaged else "released"
        consequence = "; open orders are not cancelled until a worker sees it" if state.engaged else ""
        raise KillSwitchBroadcastError(
            f"the kill switch is {what} but the bus message on {KILL_SWITCH_TOPIC} failed: {error}{consequence}"
        ) from error


def _engage_tx(db: Database, actor: str, reason: str, now: datetime) -> KillSwitchState:
    with db.connection() as conn:
        current = _read_state(conn, lock=True)
        if current.engaged:
            audit(
                conn,
                actor,
                "kill_switch.engage",
                SUBJECT,
                {"reason": reason, "already_engaged": True, "engaged_by": current.by, "engaged_at": current.at},
            )
            return current
        state = KillSwitchState(engaged=True, by=actor, at=now, reason=reason)
        _write_state(conn, state)
        audit(conn, actor, "kill_switch.engage", SUBJECT, {"reason": reason, "already_engaged": False})
    return state


async def engage(db: Database, bus: Bus, actor: str, reason: str, *, now: datetime | None = None) -> KillSwitchState:
    """Engage the switch now (no approval needed) and tell the workers to cancel open orders.

    Engaging an engaged switch keeps the first engagement (who, when, why), audits the attempt and broadcasts
    again, so a worker that missed the first message still cancels. Raises :class:`KillSwitchBroadcastError`
    when the state is persisted but the bus message could not be sent.
    """
    reason = reason.strip()
    if not reason:
        raise ValidationFailedError("say why the kill switch is engaged (a reason is required)")
    if not actor.strip():
        raise ValidationFailedError("the kill switch needs an actor")
    state = await asyncio.to_thread(_engage_tx, db, actor, reason, now or datetime.now(UTC))
    metrics.set_kill_switch(True)
    log.warning("kill_switch.engaged", by=state.by, reason=state.reason)
    await _broadcast(bus, state)
    return state


def release_intent(state: KillSwitchState) -> KillSwitchReleaseIntent:
    """What a ``kill_switch_release`` approval request shows: the engagement it would release."""
    return KillSwitchReleaseIntent(
        engaged_by=state.by,
        engaged_at=None if state.at is None else state.at.isoformat(),
        reason=state.reason,
    )


def _check_approval(conn: Connection[TupleRow], approval_id: str, state: KillSwitchState, now: datetime) -> None:
    found = approval_requests.decision_state(conn, approval_id, for_update=True)
    if found is None:
        raise KillSwitchError(f"refused: no approval {approval_id}")
    kind, status_, intent_hash, decided_hash = found.kind, found.status, found.intent_hash, found.decided_hash
    decided_by, expires_at, created_at = found.decided_by, found.expires_at, found.created_at
    if kind != RELEASE_KIND:
        raise KillSwitchError(f"refused: approval {approval_id} is a {kind} request, not a kill switch release")
    if status_ == "executed":
        raise KillSwitchError(f"refused: approval {approval_id} was already used; request a new one")
    if status_ != "approved" or decided_by is None:
        raise KillSwitchError(f"refused: approval {approval_id} is {status_}, not approved")
    if decided_hash != intent_hash:
        raise KillSwitchError(f"refused: approval {approval_id} was given for a different request")
    if expires_at <= now:
        raise KillSwitchError(f"refused: approval {approval_id} expired at {expires_at.isoformat(timespec='seconds')}")
    if state.at is not None and created_at < state.at:
        raise KillSwitchError(
            f"refused: approval {approval_id} was requested before the kill switch was engaged "
            f"({state.at.isoformat(timespec='seconds')}); request a new one"
        )


def _release_tx(db: Database, actor: str, approval_id: str, now: datetime) -> KillSwitchState:
    with db.connection() as conn:
        current = _read_state(conn, lock=True)
        if not current.engaged:
            raise KillSwitchError("the kill switch is not engaged; nothing to release")
        _check_approval(conn, approval_id, current, now)
        state = KillSwitchState(engaged=False, by=actor, at=now, approval_id=approval_id)
        approval_requests.record_result(
            conn, approval_id, "executed", {"released_by": actor, "released_at": now.isoformat()}
        )
        _write_state(conn, state)
        audit(
            conn,
            actor,
            "kill_switch.release",
            SUBJECT,
            {
                "approval_id": approval_id,
                "engaged_by": current.by,
                "engaged_at": current.at,
                "engaged_reason": current.reason,
            },
        )
    return state


async def release(
    db: Database, bus: Bus, actor: str, approval_id: str, *, now: datetime | None = None
) -> KillSwitchState:
    """Release the switch with an approved, unexpired, unused ``kill_switch_release`` request.

    Raises :class:`KillSwitchError` saying why not (the refused attempt is audited too); nothing changes then.
    """
    approval_id = approval_id.strip()
    moment = now or datetime.now(UTC)
    try:
        state = await asyncio.to_thread(_release_tx, db, actor, approval_id, moment)
    except KillSwitchError as error:
        await asyncio.to_thread(
            record, db, actor, "kill_switch.release_refused", SUBJECT, {"approval_id": approval_id, "error": str(error)}
        )
        raise
    metrics.set_kill_switch(False)
    log.warning("kill_switch.released", by=actor, approval_id=approval_id)
    await _broadcast(bus, state)
    return state
