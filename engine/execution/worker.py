"""The execution worker (`iqts worker`): approved orders from the bus to the venue, and the follow-up.

At start (``ExecutionWorker.startup``, before any message is taken): the trading mode was validated when the
OMS was built (``build_order_manager`` -> ``modes.validate_mode``: which accounts the mode allows, keys, the live
confirmation); every exchange account's API key is checked (withdrawal rights refused); every not-final order is
reconciled with its venue (``OrderManager.reconcile_on_start``); the start is written to the audit log.

* ``orders.approved`` (group ``execution``): load the approved intent, ``OrderManager.submit_approved``.
  A venue outage leaves the message unacked; the reclaim after ``bus_reclaim_idle_ms`` retries it and the
  OMS reconciles by client order id, so a crash between submit and ack never sends a second order.
* ``risk.kill_switch`` (group ``execution-kill``): on engage, cancel every open order at once.
* at start and every ``execution_sweep_s``: every approved order with no terminal result, read from PostgreSQL
  (``sweep``), and the outbox relayed to the bus; the bus only wakes the worker sooner.
* every ``execution_poll_s``: feed the paper venue the latest bars, follow open orders, mark the portfolio.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.audit.log import append as audit
from engine.bus.consumer import PoisonMessageError, consume_forever
from engine.bus.protocol import Message
from engine.bus.relay import run_relay
from engine.errors import IQTSError
from engine.execution import gate, metrics
from engine.execution.broker import VenueOrder, VenueUnavailableError
from engine.execution.modes import ModeCheck, validate_mode, verify_key_permissions
from engine.execution.oms import (
    WORKER_ACTOR,
    OrderManager,
    OrderRecord,
    SubmissionBusyError,
    check_lease_covers_receive_window,
    get_order,
)
from engine.execution.router import Router
from engine.portfolio.service import portfolio_snapshot
from engine.risk.killswitch import controls as load_controls
from engine.risk.store import active_policy
from engine.runtime import Runtime
from engine.store import approval_requests
from engine.telemetry import get_logger

log = get_logger(__name__)


class ApprovedMessage(BaseModel):
    """What ``orders.approved`` carries: the id of an approved request (the worker reads the rest from PostgreSQL)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    approval_id: str = Field(pattern=r"^apr[_-][A-Za-z0-9_-]{1,64}$")


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "payload"
    return f"{where}: {first['msg']}"


APPROVED_TOPIC = "orders.approved"
KILL_TOPIC = "risk.kill_switch"
CANCELS_TOPIC = "orders.cancel_approved"  # approvals.service publishes an approved cancel request's id here


def build_order_manager(
    runtime: Runtime, router: Router | None = None, *, mode_check: ModeCheck | None = None
) -> OrderManager:
    """The OMS on this runtime's database, bus and configured accounts, after validating the trading mode
    (``modes.validate_mode``: raises ``ModeError`` before any venue adapter is built; asks for the live
    confirmation). A caller that validated already (before starting the database) passes its ``mode_check``."""
    db, settings = runtime.db, runtime.settings
    if mode_check is None or mode_check.mode != settings.mode:
        mode_check = validate_mode(settings)
    router = router or Router.from_settings(settings, db)

    def on_update(record: OrderRecord, venue: VenueOrder | None, latency: float | None) -> None:
        metrics.observe_order_update(record, venue, latency)
        manager.publish_later(record)

    manager = OrderManager(
        db,
        runtime.bus,
        router,
        mode=settings.mode,
        mode_check=mode_check,
        snapshots=lambda: portfolio_snapshot(db, settings),
        policy=lambda: active_policy(db),
        controls=lambda: load_controls(db),
        on_verdict=metrics.observe_verdict,
        on_update=on_update,
        lease_s=settings.execution_lease_s,
    )
    check_lease_covers_receive_window(settings.execution_lease_s, router)
    return manager


class ExecutionWorker:
    """Runs the consumers and the follow-up loop until stopped."""

    def __init__(self, runtime: Runtime, manager: OrderManager, *, name: str | None = None) -> None:
        self.runtime = runtime
        self.manager = manager
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self._started = False

    async def startup(self) -> None:
        """Check the API keys, reconcile every not-final order with its venue, audit the start (once)."""
        if self._started:
            return
        settings = self.runtime.settings
        keys = await verify_key_permissions(self.manager.router)
        changed = await self.manager.reconcile_on_start()
        check = self.manager.mode_check
        with self.runtime.db.connection() as conn:
            audit(
                conn,
                WORKER_ACTOR,
                "execution.started",
                f"worker:{self.name}",
                {
                    "mode": settings.mode,
                    "accounts": check.accounts if check else {a: "?" for a in self.manager.router.accounts},
                    "live_confirmation": check.confirmation if check else None,
                    "key_permissions": keys,
                    "reconciled_changes": len(changed),
                },
            )
        self._started = True
        log.info("worker.ready", name=self.name, mode=settings.mode, reconciled=len(changed))

    async def handle_approved(self, message: Message) -> None:
        try:
            approval_id = ApprovedMessage.model_validate(message.payload).approval_id
        except ValidationError as error:
            raise PoisonMessageError(f"not an approved-order message: {_first_error(error)}") from None
        try:
            await self.execute(approval_id)  # a venue outage leaves the message pending: retried on reclaim
        except SubmissionBusyError as busy:  # another worker holds it: acked, the sweep comes back to it
            log.warning("worker.submission_busy", approval_id=approval_id, reason=str(busy))

    async def execute(self, approval_id: str) -> OrderRecord | None:
        """Carry out one approved order (idempotent). Raises ``VenueUnavailableError`` or ``SubmissionBusyError``
        when it must be retried later; a refusal (gate, risk) is recorded on the approval and returns None."""
        with self.runtime.db.connection() as conn:
            try:
                intent = gate.load_approved_intent(conn, approval_id)
            except gate.GateRefusedError as error:
                log.error("worker.bad_message", approval_id=approval_id, error=str(error))
                return None
        try:
            record = await self.manager.submit_approved(intent, approval_id)
        except (VenueUnavailableError, SubmissionBusyError):
            raise  # stays pending: retried after the reclaim idle time, reconciled by client order id
        except IQTSError as error:  # refused by the gate or the risk check: recorded, not retried
            log.warning("worker.not_submitted", approval_id=approval_id, reason=str(error))
            return None
        log.info("worker.submitted", approval_id=approval_id, order_id=record.id, status=record.status.value)
        return record

    async def sweep(self) -> list[str]:
        """Every approved order with no terminal result, from PostgreSQL (the source of truth): execute it, or end
        it ``expired`` if its approval ran out. A lost bus message, an emptied Redis or an in-process bus lost in
        a crash therefore delays an order by one sweep and never loses it. Returns the approval ids it took."""
        with self.runtime.db.connection() as conn:
            due = approval_requests.orders_to_execute(conn)
        taken: list[str] = []
        for approval_id in due:
            try:
                await self.execute(approval_id)
            except SubmissionBusyError as busy:  # another worker has it right now, or its lease has not run out
                log.info("worker.sweep_busy", approval_id=approval_id, reason=str(busy))
                continue
            except VenueUnavailableError:
                log.warning("worker.sweep_venue_unavailable", approval_id=approval_id)
                continue
            taken.append(approval_id)
        if due:
            log.info("worker.swept", due=len(due), taken=len(taken))
        return taken

    async def handle_cancel(self, message: Message) -> None:
        """An approved cancel request: checked like an order approval, then the order is cancelled at its venue and
        the request records what happened (executed with the order's state, or failed with the reason)."""
        try:
            approval_id = ApprovedMessage.model_validate(message.payload).approval_id
        except ValidationError as error:
            raise PoisonMessageError(f"not an approved-cancel message: {_first_error(error)}") from None
        db = self.runtime.db
        with db.connection() as conn:
            try:
                intent = gate.approved_cancel(conn, approval_id)
            except gate.GateRefusedError as error:
                log.warning("worker.cancel_refused", approval_id=approval_id, reason=str(error))
                return
            record = get_order(conn, order_id=intent.order_id)
        if record is None or not record.status.is_open:
            state = "unknown" if record is None else record.status.value
            with db.connection() as conn:
                approval_requests.record_result(
                    conn, approval_id, "failed", {"reason": f"order {intent.order_id} is {state}, not open"}
                )
            return
        try:
            cancelled = await self.manager.cancel(record, f"approval:{approval_id}", "approved cancel request")
        except (VenueUnavailableError, SubmissionBusyError):
            raise  # stays pending: retried after the reclaim idle time
        except IQTSError as error:
            with db.connection() as conn:
                approval_requests.record_result(conn, approval_id, "failed", {"reason": str(error)})
            return
        with db.connection() as conn:
            approval_requests.record_result(
                conn, approval_id, "executed", {"order_id": cancelled.id, "status": cancelled.status.value}
            )
        log.info("worker.cancelled", approval_id=approval_id, order_id=cancelled.id, status=cancelled.status.value)

    async def handle_kill_switch(self, message: Message) -> None:
        if message.payload.get("engaged"):
            cancelled = await self.manager.cancel_all("kill-switch", str(message.payload.get("reason") or ""))
            log.warning("worker.kill_switch_cancelled", orders=len(cancelled))

    async def follow_up(self) -> None:
        """One round of the follow-up: paper fills on new bars, venue updates, portfolio marks."""
        for account in self.manager.router.accounts:
            broker = self.manager.router.broker(account)
            poll = getattr(broker, "poll", None)
            if poll is not None:
                await poll()
        try:
            await self.manager.sync_open_orders()
        except VenueUnavailableError:
            log.warning("worker.venue_unavailable")
        snapshot, _ = await asyncio.to_thread(portfolio_snapshot, self.runtime.db, self.runtime.settings)
        metrics.observe_portfolio(snapshot)

    async def run(self, stop: asyncio.Event) -> None:
        await self.startup()
        settings = self.runtime.settings
        bus = self.runtime.bus
        common = {"block_ms": settings.bus_block_ms, "reclaim_idle_ms": settings.bus_reclaim_idle_ms}
        tasks = [
            asyncio.create_task(
                consume_forever(bus, APPROVED_TOPIC, "execution", self.name, self.handle_approved, stop, **common)
            ),
            asyncio.create_task(
                consume_forever(bus, CANCELS_TOPIC, "execution-cancel", self.name, self.handle_cancel, stop, **common)
            ),
            asyncio.create_task(
                consume_forever(bus, KILL_TOPIC, "execution-kill", self.name, self.handle_kill_switch, stop, **common)
            ),
            asyncio.create_task(self._follow_up_loop(stop)),
            asyncio.create_task(self._sweep_loop(stop)),
            asyncio.create_task(run_relay(self.runtime.db, bus, stop, settings.execution_sweep_s)),
        ]
        log.info("worker.started", name=self.name, started=datetime.now(UTC).isoformat())
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.manager.drain()  # order updates still on their way to the bus

    async def _sweep_loop(self, stop: asyncio.Event) -> None:
        """``sweep`` at start and every ``execution_sweep_s`` seconds, outliving database and venue outages."""
        while not stop.is_set():
            try:
                await self.sweep()
            except IQTSError as error:
                log.error("worker.sweep_failed", error=str(error))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.runtime.settings.execution_sweep_s)

    async def _follow_up_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.follow_up()
            except IQTSError as error:
                log.error("worker.follow_up_failed", error=str(error))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.runtime.settings.execution_poll_s)
