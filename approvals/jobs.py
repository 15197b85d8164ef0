"""Background jobs of the approvals layer, started by ``iqts up`` beside the API."""

from __future__ import annotations

import asyncio

from approvals.service import expire_due
from engine.runtime import Runtime
from engine.telemetry import get_logger

log = get_logger(__name__)


async def run_expiry(runtime: Runtime, stop_event: asyncio.Event, interval_s: float = 5.0) -> None:
    """Mark pending requests past their expiry as expired, every ``interval_s`` seconds, until ``stop_event``.

    A failed sweep (the database restarting, say) is logged and tried again on the next round.
    """
    if interval_s <= 0:
        raise ValueError("interval_s must be positive")
    while not stop_event.is_set():
        try:
            expired = await expire_due(runtime.db, runtime.bus)
        except Exception:
            log.exception("approvals.expiry_failed")
        else:
            if expired:
                log.info("approvals.expired", count=len(expired), ids=expired)
        try:
            await asyncio.wait_for(stop_event.wait(), timeout=interval_s)
        except TimeoutError:
            continue
