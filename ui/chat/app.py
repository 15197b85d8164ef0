# Chainlit's Message/Step/user_session methods carry no annotations: calling them is all this module does with them.
# mypy: disable-error-code="no-untyped-call"
"""The Chainlit app: IQTS users sign in, the copilot answers with its tool steps, charts and approval cards.

Imported by :mod:`ui.chat.serve` once the app root is set (importing Chainlit writes there). The process-wide
pieces (settings, the database pool, the model factory) are opened once; each chat session gets a
:class:`~ui.chat.copilot.ChatAgent` with an MCP token of its own, closed (and the token revoked) when the session
ends. The agent's thread id is Chainlit's thread id, so a conversation reopened from the sidebar continues the
same checkpointed graph.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import chainlit as cl
from chainlit.types import ThreadDict

from agent import warmup
from agent.events import ApprovalPendingEvent, FinalEvent
from agent.session import Copilot
from approvals.users import AuthError, User, authenticate, get_user
from engine.errors import IQTSError
from engine.settings import Settings, load_settings
from engine.store.database import Database, connect
from engine.telemetry import configure_logging, get_logger
from ui.chat.config import ChatSettings, api_url
from ui.chat.copilot import ChatAgent, ModelFactory, SessionClosedError, load_model_factory
from ui.chat.history import ensure_schema, make_data_layer
from ui.chat.render import ApprovalState, EquityChart, ToolView, approval_card, chart_figure
from ui.chat.turns import follow_approval, play

log = get_logger(__name__)

WARM_UP_TICK_S = 2.0
AGENT_KEY = "iqts_agent"
SINK_KEY = "iqts_sink"
ENDED_KEY = "iqts_ends"  # how often the session ended: a start that sees it change closes what it opened


@dataclass
class Process:
    """What the whole chat process shares."""

    settings: Settings
    chat: ChatSettings
    db: Database
    model_factory: ModelFactory | None
    agents: set[ChatAgent] = field(default_factory=set)


_opened: list[Process] = []
_opening = threading.Lock()


def process() -> Process:
    """Open the process's pieces on first use (Chainlit may ask for the data layer before the startup hook)."""
    with _opening:
        if not _opened:
            settings = load_settings()
            configure_logging(settings.log_level, settings.log_format, settings.secret_values())
            chat = settings.chat
            factory = load_model_factory(chat.model_factory)
            db = connect(settings)
            ensure_schema(db.url)
            _opened.append(Process(settings=settings, chat=chat, db=db, model_factory=factory))
            log.info("chat.ready", api=api_url(settings, chat), port=chat.port, llm=settings.llm)
        return _opened[0]


@cl.on_app_startup  # type: ignore[misc]
async def startup() -> None:
    proc = await asyncio.to_thread(process)
    if proc.model_factory is None:  # the configured model: warm it before the first person asks
        warmup.start(proc.settings)


_notices: set[asyncio.Task[None]] = set()


def _notice_warm_up(copilot: Copilot) -> None:
    task = asyncio.create_task(_show_warm_up(copilot), name="chat-warm-up-notice")
    _notices.add(task)
    task.add_done_callback(_notices.discard)


async def _show_warm_up(copilot: Copilot) -> None:
    """ "warming up the local model (n s)" until the model has its prefix, then how long it took."""
    state = warmup.status()
    ready = asyncio.ensure_future(copilot.ready())
    if ready.done() or (state is not None and state.ready):
        await asyncio.gather(ready, return_exceptions=True)
        return
    started = state.started_at if state is not None else time.time()
    message = cl.Message(content=warmup.notice(time.time() - started, ready=False), metadata={"iqts": "warm-up"})
    await message.send()
    while not ready.done():
        await asyncio.wait({ready}, timeout=WARM_UP_TICK_S)
        message.content = warmup.notice(time.time() - started, ready=ready.done())
        await message.update()
    if ready.exception() is not None:
        message.content = f"The local model could not warm up: {_reason(ready.exception())}"  # type: ignore[arg-type]
        await message.update()


@cl.on_app_shutdown  # type: ignore[misc]
async def shutdown() -> None:
    for proc in _opened:
        await asyncio.gather(*(agent.close() for agent in list(proc.agents)), return_exceptions=True)
        proc.db.close()


@cl.data_layer  # type: ignore[misc]
def data_layer() -> Any:
    return make_data_layer(process().db.url)


@cl.password_auth_callback  # type: ignore[misc]
async def sign_in(username: str, password: str) -> cl.User | None:
    """The IQTS users, their IQTS passwords: the same people as the inbox."""
    try:
        user = await asyncio.to_thread(authenticate, process().db, username, password)
    except AuthError:
        log.info("chat.sign_in_refused", username=username[:64])
        return None
    log.info("chat.signed_in", username=user.username, role=user.role.label)
    return cl.User(identifier=user.username, display_name=user.username, metadata={"role": user.role.label})


# -- the chat window as a sink ---------------------------------------------------------------------------------


def _plotly(chart: EquityChart, index: int) -> Any:
    return cl.Plotly(name=f"equity-{index + 1}", figure=chart_figure(chart), display="inline", size="large")


def _tool_step(view: ToolView) -> cl.Step:
    """A tool step under the current turn (Chainlit parents messages to the turn by itself, steps only when asked),
    so steps and the answer show in the order they happened."""
    parent = cl.context.current_step
    step = cl.Step(
        name=view.name,
        type="tool",
        language="yaml",
        show_input="yaml",
        parent_id=parent.id if parent is not None else None,
    )
    step.input = view.input
    return step


class ChainlitSink:
    """Tool calls as steps, tokens into the answer, cards as messages that are edited when their status moves."""

    def __init__(self) -> None:
        self.steps: dict[str, cl.Step] = {}
        self.cards: dict[str, cl.Message] = {}
        self.streaming: cl.Message | None = None

    async def tool_started(self, view: ToolView) -> None:
        step = _tool_step(view)
        self.steps[view.call_id] = step
        await step.send()

    async def tool_finished(self, view: ToolView, chart: EquityChart | None) -> None:
        step = self.steps.pop(view.call_id, None)
        if step is None:
            step = _tool_step(view)
            await step.send()
        step.output = view.output
        step.is_error = view.is_error
        step.language = "yaml" if view.status == "ok" else "text"
        step.metadata = {"iqts_status": view.status, "duration_ms": round(view.duration_ms, 1)}
        await step.update()

    async def token(self, text: str) -> None:
        if self.streaming is None:
            self.streaming = cl.Message(content="")
        await self.streaming.stream_token(text)

    async def finish_streaming(self) -> None:
        if self.streaming is not None:
            await self.streaming.send()
            self.streaming = None

    async def approval_card(self, card: ApprovalPendingEvent, *, message_id: str | None = None) -> None:
        """Show a card; with ``message_id``, take over the card already in the thread's history."""
        await self.finish_streaming()
        message = cl.Message(
            content=approval_card(card),
            metadata={"iqts": "approval", "approval_id": card.approval_id},
            id=message_id,
        )
        self.cards[card.approval_id] = message
        await (message.update() if message_id else message.send())

    async def approval_status(self, card: ApprovalPendingEvent, state: ApprovalState) -> None:
        message = self.cards.get(card.approval_id)
        if message is None:
            message = cl.Message(content="", metadata={"iqts": "approval", "approval_id": card.approval_id})
            self.cards[card.approval_id] = message
            message.content = approval_card(card, state)
            await message.send()
            return
        message.content = approval_card(card, state)
        await message.update()

    async def answer(self, final: FinalEvent | None, charts: list[EquityChart]) -> None:
        elements = [_plotly(chart, i) for i, chart in enumerate(charts)]
        if final is None:
            await self.finish_streaming()
            await cl.Message(content="Equity chart of this turn's backtest:", elements=elements).send()
            return
        message, self.streaming = self.streaming or cl.Message(content=""), None
        message.content = final.markdown()
        message.elements = elements  # type: ignore[assignment]
        await message.send()

    async def notice(self, text: str) -> None:
        await self.finish_streaming()
        await cl.Message(content=text, metadata={"iqts": "approval-outcome"}).send()


# -- the session -----------------------------------------------------------------------------------------------


def _session_agent() -> tuple[ChatAgent, ChainlitSink] | None:
    agent = cl.user_session.get(AGENT_KEY)
    sink = cl.user_session.get(SINK_KEY)
    if isinstance(agent, ChatAgent) and isinstance(sink, ChainlitSink):
        return agent, sink
    return None


async def _current_user() -> User | None:
    """The signed-in person, read again from the users table (a disabled account stops here)."""
    chat_user = cl.user_session.get("user")
    if chat_user is None:
        return None
    try:
        user = await asyncio.to_thread(get_user, process().db, str(chat_user.identifier))
    except IQTSError:
        return None
    return None if user.disabled else user


def _ends() -> int:
    return int(cl.user_session.get(ENDED_KEY) or 0)


async def _open_session(*, resumed: bool = False) -> tuple[ChatAgent, ChainlitSink] | None:
    ends = _ends()
    user = await _current_user()
    if user is None:
        await cl.ErrorMessage(content="Your account is unknown or disabled: sign out and ask an admin.").send()
        return None
    proc = process()
    agent = ChatAgent(
        db=proc.db,
        settings=proc.settings,
        chat=proc.chat,
        username=user.username,
        session_id=cl.context.session.id,
        model_factory=proc.model_factory,
    )
    sink = ChainlitSink()
    proc.agents.add(agent)
    cl.user_session.set(AGENT_KEY, agent)
    cl.user_session.set(SINK_KEY, sink)
    if _ends() != ends:  # the page went away while the user was read: open nothing
        await _end(agent)
        return None
    try:
        copilot = await agent.copilot()
    except SessionClosedError:
        return None
    except Exception as error:
        log.error("chat.copilot_unavailable", error=str(error)[:300])
        url = api_url(proc.settings, proc.chat)
        await cl.ErrorMessage(
            content=(
                f"The copilot cannot start: {_reason(error)}. It needs the IQTS API at {url} (run `iqts up`, or "
                "`iqts api` beside `iqts chat`) and a working model (IQTS_LLM)."
            )
        ).send()
        return agent, sink
    role_note = {
        "viewer": " Your role is viewer: you can research, but not propose orders.",
    }.get(user.role.label, "")
    if resumed:
        await cl.Message(
            content=f"Conversation reopened. Answering: **{copilot.model_label}** (signed in as {user.username}).",
            metadata={"iqts": "greeting"},
        ).send()
        _notice_warm_up(copilot)
        return agent, sink
    await cl.Message(
        content=(
            f"Answering: **{copilot.model_label}**. Signed in as **{user.username}** ({user.role.label}); the "
            f"copilot uses {len(copilot.tool_names)} IQTS tools over MCP with your role.{role_note}\n\n"
            "Try: *What is the last BTC/USD price?*, *Backtest sma_cross on BTC/USD*, *Buy 0.01 BTC/USD*. "
            "Orders are only proposed: a person with the approver role decides in the inbox."
        ),
        metadata={"iqts": "greeting"},
    ).send()
    _notice_warm_up(copilot)
    return agent, sink


def _reason(error: BaseException) -> str:
    inner = error
    while isinstance(inner, BaseExceptionGroup) and inner.exceptions:
        inner = inner.exceptions[0]
    return str(inner)[:300] or type(inner).__name__


def _follow(agent: ChatAgent, sink: ChainlitSink, card: ApprovalPendingEvent) -> None:
    async def job() -> None:
        await follow_approval(agent, card, sink, poll_s=agent.chat.approval_poll_s)

    agent.watch(card.approval_id, job)


@cl.on_chat_start  # type: ignore[misc]
async def chat_start() -> None:
    await _open_session()


def _card_in_history(thread: ThreadDict, approval_id: str) -> str | None:
    """The id of the approval card already shown in this thread for ``approval_id``, if any."""
    for step in thread.get("steps") or []:
        metadata = step.get("metadata") or {}
        if metadata.get("iqts") == "approval" and metadata.get("approval_id") == approval_id:
            return str(step["id"])
    return None


@cl.on_chat_resume  # type: ignore[misc]
async def chat_resume(thread: ThreadDict) -> None:
    """A past conversation reopened: Chainlit shows its messages; the agent's graph continues from its checkpoint,
    and a proposal still waiting for its decision gets its card back, live.

    Chainlit sends the thread to the browser only after this callback returns, so the work runs as a task: what it
    shows arrives after the history, not before (where the history would replace it)."""
    task = asyncio.create_task(_resume(thread), name="chat-resume")
    _resuming.add(task)
    task.add_done_callback(_resuming.discard)


_resuming: set[asyncio.Task[None]] = set()


async def _resume(thread: ThreadDict) -> None:
    try:
        await _reopen(thread)
    except Exception as error:
        log.error("chat.resume_failed", error=str(error)[:500])
        await cl.ErrorMessage(content=f"This conversation could not be reopened fully: {_reason(error)}").send()


async def _reopen(thread: ThreadDict) -> None:
    opened = await _open_session(resumed=True)
    if opened is None:
        return
    agent, sink = opened
    try:
        copilot = await agent.copilot()
    except Exception:  # already explained by _open_session
        return
    thread_id = str(thread["id"])
    if not thread.get("steps"):
        history = await copilot.history(thread_id)
        if history:
            lines = [f"**{'You' if role == 'user' else 'Copilot'}:** {text}" for role, text in history]
            await cl.Message(content="Earlier in this conversation:\n\n" + "\n\n".join(lines)).send()
    pending = await copilot.pending_approval(thread_id)
    if pending is not None:
        await sink.approval_card(pending, message_id=_card_in_history(thread, pending.approval_id))
        _follow(agent, sink, pending)


@cl.on_message  # type: ignore[misc]
async def on_message(message: cl.Message) -> None:
    session = _session_agent() or await _open_session()
    if session is None:
        return
    agent, sink = session
    thread_id = cl.context.session.thread_id
    try:
        async with agent.lock:
            copilot = await agent.copilot()
            turn = await play(copilot.ask(thread_id, message.content), sink)
    except asyncio.CancelledError:  # the person pressed stop: close what was being written, then stop
        await sink.finish_streaming()
        raise
    except Exception as error:
        log.error("chat.turn_failed", error=str(error)[:500])
        await sink.finish_streaming()
        await cl.ErrorMessage(content=f"The copilot failed on this question: {_reason(error)}").send()
        return
    await sink.finish_streaming()
    for card in turn.pending:
        _follow(agent, sink, card)


@cl.on_chat_end  # type: ignore[misc]
async def chat_end() -> None:
    cl.user_session.set(ENDED_KEY, _ends() + 1)
    session = _session_agent()
    if session is None:
        return
    agent, _ = session
    cl.user_session.set(AGENT_KEY, None)
    await _end(agent)


async def _end(agent: ChatAgent) -> None:
    """Close a session's copilot and revoke its token (waiting for an open in flight)."""
    for proc in _opened:
        proc.agents.discard(agent)
    await agent.close()
