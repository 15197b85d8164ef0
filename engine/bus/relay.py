"""The outbox relay: publishes the messages committed in ``outbox`` to the bus and marks them sent.

``flush`` runs right after a decision commits (best effort: a bus that is down leaves the rows for later) and
``run_relay`` every few seconds in each worker, so a message written while Redis was away goes out once it is
back. Rows go out in id order; the first failure ends a round (later rows wait, keeping the order).
"""

from __future__ import annotations

import asyncio
import contextlib

from pydantic import BaseModel

from engine import chaos
from engine.bus.protocol import Bus
from engine.errors import DatabaseUnavailableError
from engine.store import outbox
from engine.store.database import Database
from engine.telemetry import get_logger

log = get_logger(__name__)

PUBLISH_TIMEOUT_S = 3.0


class RelayRound(BaseModel):
    sent: int = 0
    failed: int = 0
    error: str | None = None


async def relay_once(db: Database, bus: Bus, *, limit: int = 100) -> RelayRound:
    """Publish up to ``limit`` unsent rows (claimed with SKIP LOCKED, so concurrent relays never share one)."""
    result = RelayRound()
    with db.connection() as conn:
        for row in outbox.claim_unsent(conn, limit=limit):
            try:
                await asyncio.wait_for(bus.publish(row.topic, row.payload), timeout=PUBLISH_TIMEOUT_S)
            except Exception as error:
                result.error = str(error) or type(error).__name__
                result.failed += 1
                outbox.mark_failed(conn, row.id, result.error)
                break
            chaos.reach("relay.published")
            outbox.mark_sent(conn, row.id)
            result.sent += 1
    return result


async def flush(db: Database, bus: Bus) -> RelayRound:
    """``relay_once`` that never raises: what it could not publish stays in the outbox for the next round."""
    try:
        result = await relay_once(db, bus)
    except DatabaseUnavailableError as error:
        log.warning("outbox.flush_failed", error=str(error))
        return RelayRound(error=str(error))
    if result.error is not None:
        log.warning("outbox.publish_deferred", error=result.error, sent=result.sent)
    return result


async def run_relay(db: Database, bus: Bus, stop: asyncio.Event, interval_s: float) -> None:
    """Flush the outbox every ``interval_s`` seconds until ``stop``."""
    rounds = 0
    while not stop.is_set():
        await flush(db, bus)
        rounds += 1
        if rounds % 720 == 1:  # now and then: rows sent a day ago are history
            with contextlib.suppress(DatabaseUnavailableError), db.connection() as conn:
                outbox.purge_sent(conn, older_than_s=86_400)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
