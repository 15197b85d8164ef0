"""The embedded model: a GGUF file run in-process by llama.cpp (``xllamacpp``), tools by constrained decoding.

``xllamacpp.Server`` embeds llama.cpp's server and answers OpenAI-format chat completions in-process, including
``response_format`` with a JSON schema, which its grammar sampler enforces token by token. This module:

* loads one engine per (file, threads, context) and shares it (loading costs a second and about 2 GB);
* turns LangChain messages into chat messages (tool calls are shown back to the model as the JSON it wrote, tool
  results as user turns: the model never needs a native tool format);
* asks for output constrained to :func:`agent.models.constrained.decision_schema` and turns the validated
  decision into an ``AIMessage`` (a tool call, or the answer);
* streams: the answer's characters are decoded out of the JSON as it is generated, so the user sees words, not
  braces; a tool call arrives as one chunk at the end.

The engine's own HTTP listener (which it always opens on a loopback port) is locked with a random API key that is
never stored: only in-process calls reach the model.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, PrivateAttr

from agent.models.constrained import (
    FINAL_ANSWER,
    ConstrainedOutputError,
    Decision,
    ToolSpec,
    decision_schema,
    output_instructions,
    parse_decision,
    tool_catalogue,
    tool_specs,
)
from engine.telemetry import get_logger

log = get_logger(__name__)


class LocalModelError(RuntimeError):
    """The embedded runtime failed (could not load the file, or answered with an error)."""


def default_threads() -> int:
    """1 when the machine is busy (shared boxes collapse with 2), otherwise the idle cores (at most 4)."""
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = 0.0
    return max(1, min(4, int(cores - load)))


@dataclass
class _Engine:
    server: Any
    lock: threading.Lock


_engines: dict[tuple[str, int, int], _Engine] = {}
_engines_lock = threading.Lock()


def load_engine(path: str, threads: int, context: int) -> _Engine:
    """The shared engine for this file and configuration (loaded on first use)."""
    key = (path, threads, context)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is not None:
            return engine
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = path
        params.n_ctx = context
        params.n_parallel = 1  # one slot: its prompt cache holds the stable system prompt + tool catalogue
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.warmup = False
        params.verbosity = -1
        params.api_keys = [secrets.token_urlsafe(32)]  # the embedded HTTP listener refuses everyone
        params.endpoint_metrics = False
        params.endpoint_slots = False
        params.endpoint_props = False
        started = time.monotonic()
        try:
            server = xllamacpp.Server(params)
        except Exception as error:
            raise LocalModelError(f"llama.cpp could not load {path}: {error}") from error
        log.info(
            "local_model.loaded", path=path, threads=threads, context=context, s=round(time.monotonic() - started, 2)
        )
        engine = _Engine(server=server, lock=threading.Lock())
        _engines[key] = engine
        return engine


class AnswerStream:
    """Decode the ``answer`` string of a ``final_answer`` decision out of JSON text as it grows."""

    _PREFIX_KEYS = ("{", '"tool"', ":", f'"{FINAL_ANSWER}"', ",", '"answer"', ":", '"')

    def __init__(self) -> None:
        self.raw = ""
        self._start: int | None = None
        self._pos = 0
        self._done = False
        self._rejected = False

    def _find_start(self) -> None:
        text = self.raw
        i = 0
        for token in self._PREFIX_KEYS:
            while i < len(text) and text[i] in " \t\r\n":
                i += 1
            if not text.startswith(token, i):
                if len(text) - i < len(token) and token.startswith(text[i:]):
                    return  # not enough text yet
                self._rejected = True
                return
            i += len(token)
        self._start = self._pos = i

    def feed(self, delta: str) -> str:
        """Append generated text; return the newly decodable answer characters."""
        self.raw += delta
        if self._done or self._rejected:
            return ""
        if self._start is None:
            self._find_start()
            if self._start is None:
                return ""
        out: list[str] = []
        text, i = self.raw, self._pos
        while i < len(text):
            ch = text[i]
            if ch == '"':
                self._done = True
                i += 1
                break
            if ch == "\\":
                if i + 1 >= len(text):
                    break
                nxt = text[i + 1]
                if nxt == "u":
                    if i + 6 > len(text):
                        break
                    try:
                        out.append(json.loads(f'"{text[i : i + 6]}"'))
                    except json.JSONDecodeError:
                        out.append(text[i : i + 6])
                    i += 6
                    continue
                out.append({"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}.get(nxt, nxt))
                i += 2
                continue
            out.append(ch)
            i += 1
        self._pos = i
        return "".join(out)


def _content_text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    return "\n".join(parts)


def to_chat_messages(messages: Sequence[BaseMessage], system_suffix: str) -> list[dict[str, str]]:
    """LangChain messages as plain chat turns for a model that speaks only JSON decisions."""
    out: list[dict[str, str]] = []
    system_parts = [_content_text(m) for m in messages if isinstance(m, SystemMessage)]
    system = "\n\n".join([*system_parts, system_suffix]).strip()
    if system:
        out.append({"role": "system", "content": system})
    for message in messages:
        if isinstance(message, SystemMessage):
            continue
        if isinstance(message, HumanMessage):
            out.append({"role": "user", "content": _content_text(message)})
        elif isinstance(message, AIMessage):
            if message.tool_calls:
                call = message.tool_calls[0]
                text = json.dumps({"tool": call["name"], "arguments": call["args"]}, ensure_ascii=False)
            else:
                text = json.dumps({"tool": FINAL_ANSWER, "answer": _content_text(message)}, ensure_ascii=False)
            out.append({"role": "assistant", "content": text})
        elif isinstance(message, ToolMessage):
            name = message.name or "tool"
            out.append({"role": "user", "content": f"Result of {name}:\n{_content_text(message)}"})
    # a chat template wants user/assistant turns to alternate: merge neighbours of the same role
    merged: list[dict[str, str]] = []
    for turn in out:
        if merged and merged[-1]["role"] == turn["role"] and turn["role"] != "system":
            merged[-1] = {"role": turn["role"], "content": merged[-1]["content"] + "\n\n" + turn["content"]}
        else:
            merged.append(turn)
    return merged


def decision_to_message(decision: Decision, metadata: dict[str, Any]) -> AIMessage:
    if decision.tool == FINAL_ANSWER:
        return AIMessage(content=decision.answer or "", response_metadata=metadata)
    call = {"name": decision.tool, "args": decision.arguments or {}, "id": f"call_{uuid.uuid4().hex[:16]}"}
    return AIMessage(content="", tool_calls=[call], response_metadata=metadata)  # type: ignore[list-item]


class LocalChatModel(BaseChatModel):
    """A chat model over an in-process llama.cpp engine, with tools by JSON-schema-constrained decoding."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_path: str
    label: str
    threads: int = Field(default_factory=default_threads)
    context: int = 8192
    max_tokens: int = 512
    temperature: float = 0.0
    seed: int = 7
    tools: list[dict[str, Any]] = Field(default_factory=list)

    _specs: list[ToolSpec] = PrivateAttr(default_factory=list)

    def model_post_init(self, context: Any, /) -> None:
        self._specs = tool_specs(self.tools)

    @property
    def _llm_type(self) -> str:
        return "iqts-local-llamacpp"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_path": self.model_path, "threads": self.threads, "context": self.context}

    @property
    def specs(self) -> list[ToolSpec]:
        return list(self._specs)

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """A copy of this model whose output is constrained to these tools (plus the final answer)."""
        return self.model_copy(update={"tools": [convert_to_openai_tool(t) for t in tools]})

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> LocalChatModel:
        copied = super().model_copy(update=update, deep=deep)
        copied._specs = tool_specs(copied.tools)
        return copied

    # -- the request ---------------------------------------------------------------------------------------

    def _request(self, messages: Sequence[BaseMessage], *, stream: bool) -> dict[str, Any]:
        suffix = output_instructions(self._specs)
        if self._specs:
            suffix = f"Tools you can call:\n{tool_catalogue(self._specs)}\n\n{suffix}"
        return {
            "messages": to_chat_messages(messages, suffix),
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "seed": self.seed,
            "stream": stream,
            "cache_prompt": True,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "decision", "strict": True, "schema": decision_schema(self._specs)},
            },
        }

    async def awarm(self, system: str) -> float:
        """Load the engine and prefill the system prompt and tool catalogue into its cache (the first question then
        skips that cost); returns the seconds it took. Nothing is generated beyond one token."""
        request = self._request([SystemMessage(content=system), HumanMessage(content="hello")], stream=False)
        request["max_tokens"] = 1
        started = time.monotonic()
        await asyncio.to_thread(self._complete, request)
        seconds = time.monotonic() - started
        log.info("local_model.warm", s=round(seconds, 2))
        return seconds

    def _engine(self) -> _Engine:
        return load_engine(self.model_path, self.threads, self.context)

    def _complete(self, request: dict[str, Any]) -> dict[str, Any]:
        engine = self._engine()
        with engine.lock:
            response = engine.server.handle_chat_completions(request)
        if not isinstance(response, dict) or "choices" not in response:
            raise LocalModelError(f"llama.cpp answered with an error: {str(response)[:300]}")
        return response

    def _finish(self, text: str, finish_reason: str | None, timings: dict[str, Any] | None) -> AIMessage:
        metadata = {"model_name": self.label, "finish_reason": finish_reason, "timings": timings or {}}
        try:
            decision = parse_decision(text, self._specs)
        except ConstrainedOutputError as error:
            if finish_reason != "length":
                raise
            partial = AnswerStream()
            answer = partial.feed(text).strip()
            if answer:  # an answer cut off at the token limit is still an answer: keep it, say so
                return AIMessage(content=answer + " [cut off at the token limit]", response_metadata=metadata)
            raise ConstrainedOutputError(
                f"the model ran out of tokens ({self.max_tokens}) before finishing its reply: {error}"
            ) from None
        return decision_to_message(decision, metadata)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        response = self._complete(self._request(messages, stream=False))
        choice = response["choices"][0]
        message = self._finish(
            str(choice["message"].get("content") or ""), choice.get("finish_reason"), response.get("timings")
        )
        usage = response.get("usage") or {}
        if usage:
            message.usage_metadata = {
                "input_tokens": int(usage.get("prompt_tokens", 0)),
                "output_tokens": int(usage.get("completion_tokens", 0)),
                "total_tokens": int(usage.get("total_tokens", 0)),
            }
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return await asyncio.to_thread(self._generate, messages, stop, None, **kwargs)

    # -- streaming ----------------------------------------------------------------------------------------

    def _run_stream(self, request: dict[str, Any], emit: Callable[[dict[str, Any]], None]) -> None:
        engine = self._engine()

        def callback(chunk: dict[str, Any]) -> bool:
            emit(chunk)
            return False  # keep going

        with engine.lock:
            engine.server.handle_chat_completions(request, callback)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        collected: list[dict[str, Any]] = []
        self._run_stream(self._request(messages, stream=True), collected.append)
        decoder = _Decoder(self)
        for item in collected:
            for chunk in decoder.feed(item):
                if run_manager and chunk.message.content:
                    run_manager.on_llm_new_token(str(chunk.message.content), chunk=chunk)
                yield chunk
        yield from decoder.close()

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any] | BaseException | None] = asyncio.Queue()
        request = self._request(messages, stream=True)

        def hand_over(chunk: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, chunk)

        def work() -> None:
            try:
                self._run_stream(request, hand_over)
            except BaseException as error:  # handed to the consumer
                loop.call_soon_threadsafe(queue.put_nowait, error)
            else:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        worker = loop.run_in_executor(None, work)
        decoder = _Decoder(self)
        try:
            while True:
                item = await queue.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                for chunk in decoder.feed(item):
                    if run_manager and chunk.message.content:
                        await run_manager.on_llm_new_token(str(chunk.message.content), chunk=chunk)
                    yield chunk
            for chunk in decoder.close():
                yield chunk
        finally:
            with contextlib.suppress(BaseException):
                await worker


class _Decoder:
    """Streamed llama.cpp chunks to message chunks: answer text as it comes, the decision at the end."""

    def __init__(self, model: LocalChatModel) -> None:
        self.model = model
        self.answer = AnswerStream()
        self.finish_reason: str | None = None
        self.timings: dict[str, Any] | None = None

    def feed(self, chunk: dict[str, Any]) -> list[ChatGenerationChunk]:
        if "choices" not in chunk:
            raise LocalModelError(f"llama.cpp answered with an error: {str(chunk)[:300]}")
        if chunk.get("timings"):
            self.timings = chunk["timings"]
        out = []
        for choice in chunk["choices"]:
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
            delta = (choice.get("delta") or {}).get("content") or ""
            if delta:
                text = self.answer.feed(delta)
                if text:
                    out.append(ChatGenerationChunk(message=AIMessageChunk(content=text)))
        return out

    def close(self) -> list[ChatGenerationChunk]:
        final = self.model._finish(self.answer.raw, self.finish_reason, self.timings)
        if final.tool_calls:
            call = final.tool_calls[0]
            message = AIMessageChunk(
                content="",
                tool_call_chunks=[
                    tool_call_chunk(name=call["name"], args=json.dumps(call["args"]), id=call["id"], index=0)
                ],
                response_metadata=final.response_metadata,
                chunk_position="last",
            )
        else:
            message = AIMessageChunk(content="", response_metadata=final.response_metadata, chunk_position="last")
        return [ChatGenerationChunk(message=message)]
