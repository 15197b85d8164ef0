"""Start the background duties of the process plan on a runtime: the execution worker, and the singletons
(risk monitor, approval expiry, notifier) each inside its leader lock."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engine.runtime import Runtime
from engine.store.leader import Duty as DutyFn
from engine.store.leader import run_as_leader
from engine.telemetry import get_logger
from ui.process.plan import BACKGROUND, Duty

if TYPE_CHECKING:
    from engine.execution.modes import ModeCheck
    from engine.execution.oms import OrderManager

log = get_logger(__name__)


@dataclass
class Background:
    """The running background duties of one process."""

    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    manager: OrderManager | None = None

    async def stop(self, stop: asyncio.Event, grace_s: float) -> None:
        """Ask every duty to finish its round (``stop``), cancel what does not within ``grace_s``, close venues."""
        stop.set()
        try:
            if self.tasks:
                _done, late = await asyncio.wait(self.tasks, timeout=grace_s)
                for task in late:
                    task.cancel()
                await asyncio.gather(*self.tasks, return_exceptions=True)
        finally:
            if self.manager is not None:
                await self.manager.router.close()


def singleton_duty(runtime: Runtime, duty: Duty) -> DutyFn:
    """What a singleton duty runs while its process leads it."""
    settings = runtime.settings
    if duty is Duty.RISK_MONITOR:
        from engine.portfolio.service import portfolio_snapshot
        from engine.risk.monitor import RiskMonitor

        monitor = RiskMonitor(runtime.db, lambda: portfolio_snapshot(runtime.db, settings)[0])
        return lambda stop: monitor.run(stop, interval_s=settings.risk_monitor_s)
    if duty is Duty.APPROVAL_EXPIRY:
        from approvals.jobs import run_expiry

        return lambda stop: run_expiry(runtime, stop, settings.execution_poll_s)
    if duty is Duty.NOTIFIER:
        from approvals.notify import run_notifier

        return lambda stop: run_notifier(runtime, stop)
    if duty is Duty.JOURNAL:
        from knowledge.trade_journal import run_journal

        return lambda stop: run_journal(runtime.db, stop, interval_s=settings.kb.journal_interval_s)
    if duty is Duty.AUDIT_ANCHOR:
        from engine.audit.anchor import run_anchor

        return lambda stop: run_anchor(runtime.db, settings, stop)
    raise ValueError(f"{duty} is not a singleton duty")


async def start_background(
    runtime: Runtime, duties: Sequence[Duty], stop: asyncio.Event, *, mode_check: ModeCheck | None = None
) -> Background:
    """Start the background duties among ``duties``; the execution worker's start-up checks (mode, key
    permissions, reconciliation) run here, so a refusal stops the command before anything else runs."""
    background = Background()
    wanted = [d for d in BACKGROUND if d in duties]
    if Duty.EXECUTION in wanted:
        from engine.execution.worker import ExecutionWorker, build_order_manager

        background.manager = build_order_manager(runtime, mode_check=mode_check)
        worker = ExecutionWorker(runtime, background.manager)
        try:
            await worker.startup()
        except BaseException:
            await background.manager.router.close()
            raise
        background.tasks.append(asyncio.create_task(worker.run(stop), name=Duty.EXECUTION.value))
    for duty in wanted:
        if duty is Duty.EXECUTION:
            continue
        task = run_as_leader(
            runtime.db.url,
            duty.value,
            singleton_duty(runtime, duty),
            stop,
            retry_s=runtime.settings.leader_retry_s,
        )
        background.tasks.append(asyncio.create_task(task, name=duty.value))
    log.info("process.background_started", duties=[d.value for d in wanted])
    return background
