"""A chat session without a browser: the real Copilot over the live API's MCP endpoint (a token of the session's
own), the scripted chat model, and a recording sink in place of the Chainlit window.

What a turn shows (steps, tokens, the answer, cards), how a card follows its request to the fill or the rejection,
and what is said when the decision comes after the conversation moved on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from agent.events import ApprovalPendingEvent, Event, FinalEvent, TokenEvent, ToolEndEvent, ToolStartEvent
from agent.session import Copilot
from approvals import service as approvals
from approvals.users import issue_token, resolve_token
from engine.runtime import Runtime
from engine.store.database import Database
from tests.integration.chat.conftest import AgentFactory, RecordingSink
from tests.integration.chat.script import LABEL
from tests.unit.agent.conftest import APPROVER, FILL_PRICE, execute_on_paper
from ui.chat.copilot import token_name
from ui.chat.render import ToolView
from ui.chat.turns import ApprovalFollower, ApprovalState, follow_approval, play


def _tokens(db: Database, username: str) -> list[tuple[str, bool]]:
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT t.name, t.revoked_at IS NOT NULL FROM api_tokens t JOIN users u ON u.id = t.user_id "
            "WHERE u.username = %s ORDER BY t.id",
            (username,),
        ).fetchall()
    return [(str(r[0]), bool(r[1])) for r in rows]


class _CountingFollower:
    """The session, with an event set once the follower has read the request ``reads`` times."""

    def __init__(self, agent: ApprovalFollower, reads: int) -> None:
        self._agent, self._left = agent, reads
        self.lock = agent.lock
        self.read_enough = asyncio.Event()

    async def copilot(self) -> Copilot:
        return await self._agent.copilot()

    async def approval_state(self, approval_id: str) -> ApprovalState | None:
        state = await self._agent.approval_state(approval_id)
        self._left -= 1
        if self._left <= 0:
            self.read_enough.set()
        return state


async def _events(*events: Event) -> AsyncIterator[Event]:
    for event in events:
        yield event


async def test_a_price_question_shows_the_step_then_the_answer_with_the_tools_figure(
    chat_agent: AgentFactory,
) -> None:
    sink = RecordingSink()
    async with chat_agent() as agent:
        copilot = await agent.copilot()
        assert copilot.model_label == LABEL
        turn = await play(copilot.ask(Copilot.new_thread_id(), "What is the last BTC/USD price?"), sink)
    kinds = sink.kinds()
    assert kinds[:2] == ["tool_started", "tool_finished"] and kinds[-1] == "answer"
    assert set(kinds[2:-1]) == {"token"}  # streamed as the model wrote it
    started: ToolView = sink.of("tool_started")[0]
    finished, chart = sink.of("tool_finished")[0]
    assert started.name == "get_ticker" and "symbol: BTC/USD" in started.input
    assert finished.input == started.input and not finished.is_error and chart is None
    final, charts = sink.of("answer")[0]
    assert isinstance(final, FinalEvent) and charts == [] and turn.final == final
    last = turn.tools[0].output.split("\nlast: ", 1)[1].split(" ", 1)[0].replace(",", "")
    assert f"The last BTC/USD price is {last}" in final.text
    assert "".join(sink.of("token")).strip() == final.text.strip()
    assert f"Answered by {LABEL}" in final.markdown()


async def test_a_backtest_result_with_an_equity_curve_reaches_the_answer_as_a_chart() -> None:
    sink = RecordingSink()
    result = {
        "run_id": "run_1",
        "strategy": "sma_cross",
        "symbol": "BTC/USD",
        "timeframe": "1d",
        "metrics": {"total_return": 0.1234, "max_drawdown": 0.05},
        "equity_curve": [{"ts": f"2020-01-{d:02d}", "equity": 10_000 + 10 * d} for d in range(1, 31)],
    }
    events = _events(
        ToolStartEvent(call_id="c1", tool="run_backtest", arguments={"strategy": "sma_cross"}),
        ToolEndEvent(call_id="c1", tool="run_backtest", status="ok", result=result),
        TokenEvent(text="Done."),
        FinalEvent(text="Backtest run_1: total return 0.1234.", model_label=LABEL),
    )
    turn = await play(events, sink)
    _, chart = sink.of("tool_finished")[0]
    assert chart is not None and chart.title == "Equity: sma_cross · BTC/USD · 1d"
    assert chart.curves[0].y[0] == 10_010 and chart.curves[0].y[-1] == 10_300
    assert "total return 12.34%" in chart.caption and "run run_1" in chart.caption
    _, charts = sink.of("answer")[0]
    assert charts == [chart] == turn.charts
    step, _ = sink.of("tool_finished")[0]
    assert "equity_curve (oldest first, the last is the latest; 30; the first and the last)" in step.output  # drawn


async def test_a_turn_paused_on_an_approval_shows_the_card_but_no_answer(chat_agent: AgentFactory) -> None:
    sink = RecordingSink()
    async with chat_agent() as agent:
        copilot = await agent.copilot()
        turn = await play(copilot.ask(Copilot.new_thread_id(), "Buy 0.01 BTC/USD"), sink)
    assert sink.kinds() == ["tool_started", "tool_finished", "card"]
    card: ApprovalPendingEvent = sink.of("card")[0]
    assert turn.pending == [card] and turn.final is None
    assert card.intent["symbol"] == "BTC/USD" and card.intent["side"] == "buy"
    assert card.inbox_url.endswith(f"/inbox/{card.approval_id}")


async def test_the_card_follows_the_approval_to_the_fill_and_the_agent_says_it(
    chat_agent: AgentFactory, mcp_api: tuple[str, Runtime]
) -> None:
    _, runtime = mcp_api
    sink = RecordingSink()
    async with chat_agent() as agent:
        copilot = await agent.copilot()
        thread = Copilot.new_thread_id()
        turn = await play(copilot.ask(thread, "Buy 0.01 BTC/USD"), sink)
        card = turn.pending[0]
        counting = _CountingFollower(agent, reads=3)
        follow = asyncio.create_task(follow_approval(counting, card, sink, poll_s=0.05))
        await asyncio.wait_for(counting.read_enough.wait(), timeout=30)  # it has seen "pending" three times
        assert not follow.done() and "status" not in sink.kinds()  # nothing to say while it is pending

        request = approvals.get_request(runtime.db, card.approval_id)
        await approvals.decide(
            runtime.db,
            runtime.bus,
            runtime.settings,
            card.approval_id,
            APPROVER,
            approve=True,
            auth="password",
            seen_hash=request.intent_hash,
        )
        await execute_on_paper(runtime, card.approval_id)
        state = await asyncio.wait_for(follow, timeout=30)
        assert await copilot.pending_approval(thread) is None
    assert state.status == "executed" and state.decided_by == APPROVER.username
    statuses = [s.status for s in sink.of("status")]
    assert statuses[-1] == "executed" and set(statuses) <= {"approved", "executed"}
    final, _ = sink.of("answer")[-1]
    assert final is not None and final.approval is not None and final.approval.status == "executed"
    assert f"approved by {APPROVER.username} and executed" in final.text
    assert state.result is not None and str(state.result["average_price"]) in final.text
    assert abs(float(state.result["average_price"]) - float(FILL_PRICE)) < 50
    assert sink.of("notice") == []  # the conversation said it; no second message


async def test_a_rejection_is_shown_with_its_reason(chat_agent: AgentFactory, mcp_api: tuple[str, Runtime]) -> None:
    _, runtime = mcp_api
    sink = RecordingSink()
    async with chat_agent() as agent:
        copilot = await agent.copilot()
        turn = await play(copilot.ask(Copilot.new_thread_id(), "Buy 0.02 BTC/USD"), sink)
        card = turn.pending[0]
        await approvals.decide(
            runtime.db,
            runtime.bus,
            runtime.settings,
            card.approval_id,
            APPROVER,
            approve=False,
            auth="password",
            reason="not before the CPI print",
        )
        state = await asyncio.wait_for(follow_approval(agent, card, sink, poll_s=0.1), timeout=30)
    assert state.status == "rejected" and state.decision_reason == "not before the CPI print"
    assert [s.status for s in sink.of("status")] == ["rejected"]
    final, _ = sink.of("answer")[-1]
    assert "rejected by ann-approver: not before the CPI print" in final.text
    assert sink.of("notice") == []


async def test_a_decision_after_the_conversation_moved_on_is_posted_as_a_notice(
    chat_agent: AgentFactory, mcp_api: tuple[str, Runtime]
) -> None:
    _, runtime = mcp_api
    sink = RecordingSink()
    async with chat_agent() as agent:
        copilot = await agent.copilot()
        thread = Copilot.new_thread_id()
        card = (await play(copilot.ask(thread, "Buy 0.03 BTC/USD"), sink)).pending[0]
        # a new question while the card waits: the graph reads the approval back (still pending) and goes on
        await play(copilot.ask(thread, "What is the last ETH/USD price?"), sink)
        assert await copilot.pending_approval(thread) is None
        await approvals.decide(
            runtime.db,
            runtime.bus,
            runtime.settings,
            card.approval_id,
            APPROVER,
            approve=False,
            auth="password",
            reason="enough BTC for today",
        )
        state = await asyncio.wait_for(follow_approval(agent, card, sink, poll_s=0.1), timeout=30)
    assert state.status == "rejected"
    notices = sink.of("notice")
    assert len(notices) == 1
    assert notices[0].startswith(
        f"Update on your order to buy 0.03 BTC/USD market on paper (dry-run) (approval {card.approval_id})"
    )
    assert "rejected** by ann-approver: enough BTC for today" in notices[0]


async def test_each_session_has_a_token_of_its_own_revoked_when_it_ends(
    chat_agent: AgentFactory, db: Database, trader: str
) -> None:
    ide_token = issue_token(db, trader, "my-ide", actor="tests")
    async with chat_agent() as first, chat_agent() as second:
        await first.copilot()
        await second.copilot()
        again = await first.copilot()  # the same session keeps its copilot
        assert again is await first.copilot()
        names = [name for name, revoked in _tokens(db, trader) if not revoked]
        assert sorted(names) == sorted(["my-ide", token_name(first.session_id), token_name(second.session_id)])
        await first.close()
        assert sorted(n for n, revoked in _tokens(db, trader) if not revoked) == sorted(
            ["my-ide", token_name(second.session_id)]
        )
    assert [n for n, revoked in _tokens(db, trader) if not revoked] == ["my-ide"]
    assert resolve_token(db, ide_token).username == trader  # the person's other tokens are untouched
    with db.connection() as conn:
        actions = conn.execute(
            "SELECT action, actor FROM audit_log WHERE subject = %s AND action LIKE 'token.%%' ORDER BY seq",
            (f"user:{trader}",),
        ).fetchall()
    assert [a for a, _ in actions].count("token.revoked") == 2
    assert {actor for _, actor in actions} == {"tests", f"chat:{trader}"}


async def test_a_session_that_ends_while_its_copilot_opens_leaves_no_live_token(
    chat_agent: AgentFactory, db: Database, trader: str
) -> None:
    from ui.chat.copilot import SessionClosedError

    async with chat_agent() as agent:
        opening = asyncio.create_task(agent.copilot())
        await asyncio.sleep(0)  # the open has started (it holds the lock) when the page goes away
        await agent.close()
        assert opening.done()  # close waited for the open in flight, then closed what it opened
        assert [revoked for name, revoked in _tokens(db, trader) if name == token_name(agent.session_id)] == [True]
        with pytest.raises(SessionClosedError, match="ended"):
            await agent.copilot()


async def test_the_copilot_reports_an_unreachable_api(chat_agent: AgentFactory, db: Database) -> None:
    from ui.chat.config import ChatSettings
    from ui.chat.copilot import ChatAgent

    async with chat_agent() as template:
        agent = ChatAgent(
            db=db,
            settings=template.settings,
            chat=ChatSettings(api_url="http://127.0.0.1:9"),  # nothing listens on the discard port
            username=template.username,
            session_id="unreachable-test",
            model_factory=template.model_factory,
        )
        try:
            failed = False
            try:
                await asyncio.wait_for(agent.copilot(), timeout=30)
            except Exception:
                failed = True
            assert failed
        finally:
            await agent.close()
    assert (token_name("unreachable-test"), True) in _tokens(db, template.username)
