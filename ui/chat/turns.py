"""A conversation turn played onto the chat: the agent's events become steps, tokens, cards and an answer; an
approval card follows its request until the order is executed, rejected, expired or failed.

The chat window is a :class:`Sink` (Chainlit in :mod:`ui.chat.app`; a recording fake in the tests), so what is
shown for which event is decided here, once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from typing import Protocol

from agent.events import (
    ApprovalPendingEvent,
    Event,
    FinalEvent,
    TokenEvent,
    ToolEndEvent,
    ToolStartEvent,
)
from agent.session import Copilot
from engine.telemetry import get_logger
from ui.chat.render import (
    ApprovalState,
    EquityChart,
    ToolView,
    equity_chart,
    outcome_text,
    tool_finished,
    tool_started,
)

log = get_logger(__name__)


class Sink(Protocol):
    """Where a turn is shown."""

    async def tool_started(self, view: ToolView) -> None: ...

    async def tool_finished(self, view: ToolView, chart: EquityChart | None) -> None: ...

    async def token(self, text: str) -> None: ...

    async def approval_card(self, card: ApprovalPendingEvent) -> None:
        """Show a new approval card (status pending)."""

    async def approval_status(self, card: ApprovalPendingEvent, state: ApprovalState) -> None:
        """Update a card's live status."""

    async def answer(self, final: FinalEvent | None, charts: list[EquityChart]) -> None:
        """The turn's answer (None when the turn paused on an approval) with the charts of its backtests."""

    async def notice(self, text: str) -> None:
        """A message of the chat's own (an approval's outcome that arrived after the conversation moved on)."""


@dataclass
class TurnResult:
    final: FinalEvent | None = None
    pending: list[ApprovalPendingEvent] = field(default_factory=list)
    tools: list[ToolView] = field(default_factory=list)
    charts: list[EquityChart] = field(default_factory=list)


async def play(events: AsyncIterable[Event], sink: Sink) -> TurnResult:
    """Show a turn's events as they arrive."""
    result = TurnResult()
    started: dict[str, ToolView] = {}
    async for event in events:
        if isinstance(event, TokenEvent):
            await sink.token(event.text)
        elif isinstance(event, ToolStartEvent):
            view = tool_started(event)
            started[event.call_id] = view
            await sink.tool_started(view)
        elif isinstance(event, ToolEndEvent):
            view = tool_finished(event, started.pop(event.call_id, None))
            chart = equity_chart(event.tool, event.result) if event.status == "ok" else None
            if chart is not None:
                result.charts.append(chart)
            result.tools.append(view)
            await sink.tool_finished(view, chart)
        elif isinstance(event, ApprovalPendingEvent):
            result.pending.append(event)
            await sink.approval_card(event)
        elif isinstance(event, FinalEvent):
            result.final = event
            await sink.answer(event, result.charts)
    if result.final is None and result.charts:
        await sink.answer(None, result.charts)
    return result


class ApprovalFollower(Protocol):
    """What following a card needs of the session (``ui.chat.copilot.ChatAgent``)."""

    lock: asyncio.Lock

    async def copilot(self) -> Copilot: ...

    async def approval_state(self, approval_id: str) -> ApprovalState | None: ...


def _changed(old: ApprovalState, new: ApprovalState) -> bool:
    return (old.status, old.decided_by, old.result) != (new.status, new.decided_by, new.result)


async def _read(agent: ApprovalFollower, approval_id: str) -> ApprovalState | None:
    try:
        return await agent.approval_state(approval_id)
    except Exception as error:  # the API restarted, the network hiccuped: try again at the next tick
        log.warning("chat.approval_read_failed", approval_id=approval_id, error=str(error)[:200])
        return None


async def follow_approval(
    agent: ApprovalFollower,
    card: ApprovalPendingEvent,
    sink: Sink,
    *,
    poll_s: float = 2.0,
    after_decision_s: float = 900.0,
) -> ApprovalState:
    """Keep a card's status live: wait for the decision, resume the conversation paused on it (the agent reads the
    outcome back and says it), then follow an approved order until the worker reports its fill or failure.

    Returns the last state seen. Anything the conversation did not already say is posted as a notice.
    """
    state = ApprovalState(status="pending")
    while state.status == "pending":
        read = await _read(agent, card.approval_id)
        if read is not None and _changed(state, read):
            state = read
            await sink.approval_status(card, state)
        if state.status == "pending":
            await asyncio.sleep(poll_s)

    told: str | None = None
    async with agent.lock:
        copilot = await agent.copilot()
        waiting = await copilot.pending_approval(card.thread_id)
        if waiting is not None and waiting.approval_id == card.approval_id:
            turn = await play(copilot.resume(card.thread_id, state.status), sink)
            if turn.final is not None and turn.final.approval is not None:
                told = turn.final.approval.status
                reported = ApprovalState.from_outcome(turn.final.approval)
                if reported.status != "unknown" and _changed(state, reported):
                    state = reported
                    await sink.approval_status(card, state)

    deadline = time.monotonic() + after_decision_s
    while not state.final and time.monotonic() < deadline:
        await asyncio.sleep(poll_s)
        read = await _read(agent, card.approval_id)
        if read is not None and _changed(state, read):
            state = read
            await sink.approval_status(card, state)
    if told != state.status:
        await sink.notice(outcome_text(card, state))
    return state
