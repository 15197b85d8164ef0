"""A scripted chat model: deterministic replies for graph tests and evals (never chosen by ``IQTS_LLM``).

Each step of the script is an ``AIMessage`` or a function of the messages the model was given (so a step can quote
a figure from a tool result the real MCP server returned). The model records every prompt it saw.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from pydantic import ConfigDict, Field

Step = AIMessage | Callable[[Sequence[BaseMessage]], AIMessage]


def tool_call(name: str, **args: Any) -> AIMessage:
    """A scripted reply that calls one tool."""
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": f"call_{uuid.uuid4().hex[:12]}"}])


class ScriptExhaustedError(RuntimeError):
    """The graph asked the scripted model for more replies than the script has."""


class ScriptedChatModel(BaseChatModel):
    """Replies with the next step of its script; ``bind_tools`` records the tools and shares the script."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    script: list[Any]
    position: list[int] = Field(default_factory=lambda: [0])
    prompts: list[list[BaseMessage]] = Field(default_factory=list)
    bound_tools: list[str] = Field(default_factory=list)
    label: str = "scripted test model"

    @property
    def _llm_type(self) -> str:
        return "iqts-scripted"

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        names = [t.name if isinstance(t, BaseTool) else str(getattr(t, "__name__", t)) for t in tools]
        self.bound_tools[:] = names
        return self

    def _next(self, messages: list[BaseMessage]) -> AIMessage:
        self.prompts.append(list(messages))
        index = self.position[0]
        if index >= len(self.script):
            raise ScriptExhaustedError(f"the script has {len(self.script)} steps; step {index + 1} was asked for")
        self.position[0] += 1
        step = self.script[index]
        reply = step(messages) if callable(step) else step
        if not isinstance(reply, AIMessage):
            raise TypeError(f"script step {index + 1} did not give an AIMessage")
        return reply.model_copy(update={"response_metadata": {"model_name": self.label}})

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._next(messages))])

    def _chunks(self, reply: AIMessage) -> Iterator[ChatGenerationChunk]:
        text = reply.content if isinstance(reply.content, str) else ""
        words = text.split(" ")
        for i, word in enumerate(words):
            piece = word if i == len(words) - 1 else word + " "
            if piece:
                yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
        chunks = [
            tool_call_chunk(name=c["name"], args=_json(c["args"]), id=c["id"], index=i)
            for i, c in enumerate(reply.tool_calls)
        ]
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="", tool_call_chunks=chunks, response_metadata=reply.response_metadata, chunk_position="last"
            )
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in self._chunks(self._next(messages)):
            if run_manager and chunk.message.content:
                run_manager.on_llm_new_token(str(chunk.message.content), chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._chunks(self._next(messages)):
            if run_manager and chunk.message.content:
                await run_manager.on_llm_new_token(str(chunk.message.content), chunk=chunk)
            yield chunk


def _json(value: Any) -> str:
    import json

    return json.dumps(value)
