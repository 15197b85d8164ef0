"""The Copilot: one object the chat UI (or any caller) talks to.

    async with Copilot.connect(settings, mcp=McpHttp(url=..., token=...), checkpoint_url=db_url) as copilot:
        async for event in copilot.ask(thread_id, "buy 0.01 BTC/USD"):
            ...                                   # token, tool_start, tool_end, approval_pending, final
        async for event in copilot.resume(thread_id, "approved"):   # after the person decided in the inbox
            ...
        events = await copilot.resume(thread_id)  # or collect them all at once

The agent acts only through its MCP session; ``engine.settings`` and ``engine.telemetry`` are used for
configuration and logging only.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Generator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, HumanMessage
from langgraph.types import Command, Interrupt
from pydantic import ValidationError

from agent.events import EVENT_ADAPTER, ApprovalPendingEvent, Event, FinalEvent, TokenEvent
from agent.graph.checkpointer import open_checkpointer
from agent.graph.nodes import AgentDeps
from agent.graph.prompts import system_prompt
from agent.graph.setup import build_graph
from agent.guards.redaction import redact_secrets
from agent.mcp import McpConnection, McpStdio, McpTarget, open_mcp
from agent.memory import transcript
from agent.models.capabilities import Capabilities, ModelInfo
from agent.models.factory import describe_model, make_chat_model
from engine.settings import AgentSettings, Settings
from engine.telemetry import get_logger

log = get_logger(__name__)


class EventStream:
    """Events of one turn: iterate with ``async for``, or ``await`` to collect them all."""

    def __init__(self, source: AsyncIterator[Event]) -> None:
        self._source = source

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._source

    async def collect(self) -> list[Event]:
        return [event async for event in self._source]

    def __await__(self) -> Generator[Any, None, list[Event]]:
        return self.collect().__await__()


def _info_for(model: BaseChatModel) -> ModelInfo:
    label = str(getattr(model, "label", None) or getattr(model, "model_name", None) or type(model).__name__)
    native = hasattr(model, "bind_tools")
    return ModelInfo(
        provider="scripted",
        model=label,
        label=label,
        capabilities=Capabilities(
            native_tool_calling=native,
            constrained_decoding=False,
            streaming=True,
            json_schema_output=False,
            runs_offline=True,
        ),
    )


class Copilot:
    """The agent graph bound to an MCP session, a model and a checkpointer."""

    def __init__(self, graph: Any, deps: AgentDeps, connection: McpConnection, settings: Settings) -> None:
        self._graph = graph
        self._deps = deps
        self.connection = connection
        self.settings = settings
        self._warming: asyncio.Task[float] | None = None

    async def ready(self) -> float | None:
        """Wait until the local model has loaded and prefilled its prompt (started by ``connect``); the seconds it
        took, or None for models that need no warm-up."""
        if self._warming is None:
            return None
        seconds: float = await asyncio.shield(self._warming)
        return seconds

    @property
    def model_label(self) -> str:
        """Which model answers, to show in the chat."""
        return self._deps.model_info.label

    @property
    def model_info(self) -> ModelInfo:
        return self._deps.model_info

    @property
    def tool_names(self) -> list[str]:
        return sorted(self._deps.tools)

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        settings: Settings,
        *,
        mcp: McpTarget | None = None,
        checkpoint_url: str | None = None,
        model: BaseChatModel | None = None,
        model_info: ModelInfo | None = None,
        agent_settings: AgentSettings | None = None,
    ) -> AsyncIterator[Copilot]:
        """Open the MCP session and the checkpointer, build the model (``settings.llm`` unless one is given)."""
        agent_settings = agent_settings or settings.agent
        if model is None:
            info = describe_model(settings.llm, settings)
            model = make_chat_model(settings.llm, settings, agent_settings)
        else:
            info = model_info or _info_for(model)
        async with AsyncExitStack() as stack:
            connection = await stack.enter_async_context(open_mcp(mcp or McpStdio(), settings))
            saver = await stack.enter_async_context(open_checkpointer(checkpoint_url))
            deps = AgentDeps.build(
                model,
                info,
                connection.tools,
                instructions=connection.instructions,
                settings=agent_settings,
                state_dir=settings.state_dir,
                known_secrets=settings.secret_values(),
                strategy_parameters=await connection.strategy_parameters(),
            )
            log.info("agent.ready", model=info.label, tools=len(connection.tools), transport=connection.transport)
            copilot = cls(build_graph(deps, saver), deps, connection, settings)
            warm = getattr(deps.model, "awarm", None)
            warming = asyncio.create_task(warm(system_prompt(info.label, connection.instructions))) if warm else None
            copilot._warming = warming
            try:
                yield copilot
            finally:
                if warming is not None:
                    warming.cancel()
                    with contextlib.suppress(BaseException):
                        await warming

    @staticmethod
    def new_thread_id() -> str:
        return f"thr_{uuid.uuid4().hex[:16]}"

    def _config(self, thread_id: str) -> dict[str, Any]:
        return {
            "configurable": {"thread_id": thread_id},
            "recursion_limit": 4 * self._deps.settings.agent_max_steps + 10,
        }

    def ask(self, thread_id: str, text: str) -> EventStream:
        """Ask a question in a thread; stream the turn's events."""
        return EventStream(self._ask(thread_id, text))

    def resume(self, thread_id: str, decision: str | None = None) -> EventStream:
        """Continue a thread paused on an approval: the outcome is read back through ``get_approval`` (``decision``,
        what the caller believes happened, is only recorded). A thread that is not paused yields no events."""
        return EventStream(self._resume(thread_id, decision))

    async def _resume(self, thread_id: str, decision: str | None) -> AsyncIterator[Event]:
        if await self.pending_approval(thread_id) is None:
            return
        async for event in self._run(Command(resume={"decision": decision}), thread_id):
            yield event

    async def _ask(self, thread_id: str, text: str) -> AsyncIterator[Event]:
        pending = await self.pending_approval(thread_id)
        if pending is not None:  # a new question while waiting: first read the approval back, then go on
            async for event in self._run(Command(resume={"decision": None}), thread_id):
                yield event
        # redact before the graph's first checkpoint, so a secret never reaches storage; intake reports the kinds
        clean, kinds = redact_secrets(text, self.settings.secret_values())
        message = HumanMessage(content=clean, additional_kwargs={"iqts_redactions": kinds} if kinds else {})
        async for event in self._run({"messages": [message]}, thread_id):
            yield event

    async def _run(self, payload: Any, thread_id: str) -> AsyncIterator[Event]:
        config = self._config(thread_id)
        async for mode, data in self._graph.astream(payload, config, stream_mode=["messages", "custom", "updates"]):
            for event in self._events(mode, data, thread_id):
                yield event

    def _events(self, mode: str, data: Any, thread_id: str) -> list[Event]:
        if mode == "messages":
            chunk, metadata = data
            if (
                isinstance(chunk, AIMessageChunk)
                and metadata.get("langgraph_node") == "agent"
                and isinstance(chunk.content, str)
                and chunk.content
            ):
                return [TokenEvent(text=chunk.content)]
            return []
        if mode == "custom":
            if isinstance(data, dict) and "iqts_event" in data:
                try:
                    return [EVENT_ADAPTER.validate_python(data["iqts_event"])]
                except ValidationError as error:
                    log.error("agent.bad_event", error=str(error)[:300])
            return []
        if mode == "updates" and isinstance(data, dict) and "__interrupt__" in data:
            return [self._pending_event(i, thread_id) for i in data["__interrupt__"]]
        return []

    @staticmethod
    def _pending_event(item: Interrupt, thread_id: str) -> ApprovalPendingEvent:
        value = dict(item.value) if isinstance(item.value, dict) else {}
        return ApprovalPendingEvent(thread_id=thread_id, **value)

    async def pending_approval(self, thread_id: str) -> ApprovalPendingEvent | None:
        """The approval this thread is waiting on, if any (survives a restart: read from the checkpoint)."""
        snapshot = await self._graph.aget_state(self._config(thread_id))
        for item in snapshot.interrupts or ():
            return self._pending_event(item, thread_id)
        return None

    async def last_final(self, thread_id: str) -> FinalEvent | None:
        snapshot = await self._graph.aget_state(self._config(thread_id))
        final = (snapshot.values or {}).get("final")
        return FinalEvent.model_validate(final) if final else None

    async def history(self, thread_id: str) -> list[tuple[str, str]]:
        """The thread's questions and answers, from the checkpoint."""
        snapshot = await self._graph.aget_state(self._config(thread_id))
        return transcript((snapshot.values or {}).get("messages", []))
