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
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

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
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from agent.models import prefill
from agent.models.constrained import (
    ANSWER_LIMIT,
    FINAL_ANSWER,
    ConstrainedOutputError,
    Decision,
    ToolSpec,
    answer_limit,
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
    api_key: str = field(repr=False, default="")
    slot_dir: str | None = None
    prefix: str | None = None  # the system text whose KV cache slot 0 holds (None: unknown)


_engines: dict[tuple[str, int, int, str | None], _Engine] = {}
_engines_lock = threading.Lock()


def load_engine(path: str, threads: int, context: int, slot_dir: str | None = None) -> _Engine:
    """The shared engine for this file and configuration (loaded on first use). With ``slot_dir`` its slot can be
    saved to and restored from files there (:mod:`agent.models.prefill`)."""
    key = (path, threads, context, slot_dir)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is not None:
            return engine
        import xllamacpp

        api_key = secrets.token_urlsafe(32)
        params = xllamacpp.CommonParams()
        params.model.path = path
        params.n_ctx = context
        params.n_parallel = 1  # one slot: its prompt cache holds the stable system prompt + tool catalogue
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.warmup = False
        params.verbosity = -1
        params.api_keys = [api_key]  # the embedded HTTP listener refuses everyone but this process
        params.endpoint_metrics = False
        params.endpoint_slots = slot_dir is not None  # save/restore of the prefix cache, behind the same key
        params.endpoint_props = False
        if slot_dir is not None:
            Path(slot_dir).mkdir(parents=True, exist_ok=True)
            params.slot_save_path = slot_dir.rstrip("/") + "/"  # llama.cpp appends the file name to this string
        started = time.monotonic()
        try:
            server = xllamacpp.Server(params)
        except Exception as error:
            raise LocalModelError(f"llama.cpp could not load {path}: {error}") from error
        log.info(
            "local_model.loaded", path=path, threads=threads, context=context, s=round(time.monotonic() - started, 2)
        )
        engine = _Engine(server=server, lock=threading.Lock(), api_key=api_key, slot_dir=slot_dir)
        _engines[key] = engine
        return engine


def unload_engine(path: str, threads: int, context: int, slot_dir: str | None = None) -> None:
    """Forget a shared engine (its memory is freed once nothing holds it)."""
    with _engines_lock:
        _engines.pop((path, threads, context, slot_dir), None)


def _slot_action(engine: _Engine, action: str, filename: str) -> dict[str, Any]:
    """Save or restore slot 0 through the engine's own loopback listener (the only way xllamacpp exposes it)."""
    body = json.dumps({"filename": filename}).encode()
    address = str(engine.server.listening_address)
    if not address.startswith("http://127.0.0.1:"):
        raise LocalModelError(f"llama.cpp listens on {address!r}, not on loopback: the prompt cache is not used")
    request = urllib.request.Request(  # noqa: S310 (checked above: http on loopback, our own listener)
        f"{address}/slots/0?action={action}",
        data=body,
        headers={"Authorization": f"Bearer {engine.api_key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=300) as reply:  # noqa: S310 (loopback, our own listener)
            answer: dict[str, Any] = json.loads(reply.read())
    except (OSError, ValueError) as error:
        raise LocalModelError(f"llama.cpp could not {action} the prompt cache {filename}: {error}") from error
    return answer


class WarmResult(BaseModel):
    """How the fixed prefix got into the model's cache."""

    source: Literal["held", "restored", "prefilled"]
    seconds: float
    prefix_tokens: int | None = None
    cache_file: str | None = None


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
    cache_dir: str | None = Field(None, description="where the prefix cache files live (None: not persisted)")
    model_sha256: str | None = Field(None, description="the pinned hash of the file, part of the cache key")

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
    def cache_dir_path(self) -> Path | None:
        return Path(self.cache_dir) if self.cache_dir else None

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
                "json_schema": {
                    "name": "decision",
                    "strict": True,
                    "schema": decision_schema(self._specs, answer_limit(messages)),
                },
            },
        }

    async def awarm(self, system: str) -> float:
        """Load the engine and get the system prompt and tool catalogue into its cache (the first question then
        skips that cost): restored from the prefix cache file when there is one, else prefilled and saved. Returns
        the seconds it took. Nothing is generated beyond one token."""
        return (await self.awarm_detail(system)).seconds

    async def awarm_detail(self, system: str) -> WarmResult:
        request = self._request([SystemMessage(content=system), HumanMessage(content="hello")], stream=False)
        request["max_tokens"] = 1
        started = time.monotonic()
        source, tokens, file = await asyncio.to_thread(self._warm, request)
        result = WarmResult(source=source, seconds=time.monotonic() - started, prefix_tokens=tokens, cache_file=file)
        log.info("local_model.warm", source=source, s=round(result.seconds, 2), tokens=tokens)
        return result

    def _warm(self, request: dict[str, Any]) -> tuple[Literal["held", "restored", "prefilled"], int | None, str | None]:
        engine = self._engine()
        prefix_text = request["messages"][0]["content"]
        identity = prefill.model_identity(self.model_path, self.model_sha256)
        key = prefill.prefix_key(identity, self.context, prefix_text)
        directory = Path(self.cache_dir) if self.cache_dir else None
        file = prefill.cache_file(directory, key) if directory is not None else None
        with engine.lock:
            if engine.prefix == prefix_text:
                return "held", None, None
            if file is not None and file.is_file():
                try:
                    answer = _slot_action(engine, "restore", file.name)
                except LocalModelError as error:  # a damaged or foreign file: prefill instead, and overwrite it
                    log.warning("local_model.cache_restore_failed", file=str(file), error=str(error)[:300])
                else:
                    engine.prefix = prefix_text
                    prefill.touch(file)
                    return "restored", int(answer.get("n_restored") or 0) or None, str(file)
            response = engine.server.handle_chat_completions(request)
            if not isinstance(response, dict) or "choices" not in response:
                raise LocalModelError(f"llama.cpp answered with an error: {str(response)[:300]}")
            engine.prefix = prefix_text
            tokens = int((response.get("usage") or {}).get("prompt_tokens") or 0) or None
            if file is None or directory is None:
                return "prefilled", tokens, None
            try:
                _slot_action(engine, "save", file.name)
            except LocalModelError as error:
                log.warning("local_model.cache_save_failed", file=str(file), error=str(error)[:300])
                return "prefilled", tokens, None
            prefill.prune(directory)
            return "prefilled", tokens, str(file)

    def _engine(self) -> _Engine:
        return load_engine(self.model_path, self.threads, self.context, self.cache_dir)

    def _note_prefix(self, engine: _Engine, request: dict[str, Any]) -> None:
        messages = request.get("messages") or []
        if messages and messages[0].get("content") != engine.prefix:
            engine.prefix = None  # another prefix now fills the slot

    def _complete(self, request: dict[str, Any]) -> dict[str, Any]:
        engine = self._engine()
        with engine.lock:
            self._note_prefix(engine, request)
            response = engine.server.handle_chat_completions(request)
        if not isinstance(response, dict) or "choices" not in response:
            raise LocalModelError(f"llama.cpp answered with an error: {str(response)[:300]}")
        return response

    def _finish(
        self, text: str, finish_reason: str | None, timings: dict[str, Any] | None, limit: int = ANSWER_LIMIT
    ) -> AIMessage:
        metadata = {"model_name": self.label, "finish_reason": finish_reason, "timings": timings or {}}
        try:
            decision = parse_decision(text, self._specs, limit)
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
            str(choice["message"].get("content") or ""),
            choice.get("finish_reason"),
            response.get("timings"),
            answer_limit(messages),
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
            self._note_prefix(engine, request)
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
        decoder = _Decoder(self, answer_limit(messages))
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
        decoder = _Decoder(self, answer_limit(messages))
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

    def __init__(self, model: LocalChatModel, limit: int = ANSWER_LIMIT) -> None:
        self.model = model
        self.limit = limit
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
        final = self.model._finish(self.answer.raw, self.finish_reason, self.timings, self.limit)
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
        message.usage_metadata = usage_from_timings(self.timings)
        return [ChatGenerationChunk(message=message)]


def usage_from_timings(timings: dict[str, Any] | None) -> UsageMetadata | None:
    """Token counts of a streamed reply from llama.cpp's timings (streamed chunks carry no ``usage``): the prompt
    counts its cached part too, so figures compare with a non-streamed reply's ``prompt_tokens``."""
    if not timings:
        return None
    prompt = int(timings.get("prompt_n") or 0) + int(timings.get("cache_n") or 0)
    generated = int(timings.get("predicted_n") or 0)
    return {"input_tokens": prompt, "output_tokens": generated, "total_tokens": prompt + generated}


_CALIBRATION_TEXT = (
    "Backtests replay a strategy over stored bars; an optimisation searches its parameters with walk-forward "
    "validation; a proposal waits for a person in the inbox. "
)


def measure_threads(path: str, candidates: Sequence[int], *, context: int = 2048) -> list[prefill.ThreadSample]:
    """Prompt and generation speed of the model on each thread count (a short fixed prompt, greedy): what
    :func:`agent.models.prefill.choose_threads` picks from. Each engine is unloaded after its run."""
    samples = []
    for threads in candidates:
        engine = load_engine(path, threads, context)
        request = {
            "messages": [
                {"role": "system", "content": _CALIBRATION_TEXT * 6},
                {"role": "user", "content": "Count from one to thirty in words, separated by commas."},
            ],
            "max_tokens": 24,
            "temperature": 0.0,
            "seed": 7,
            "cache_prompt": False,
        }
        try:
            with engine.lock:
                response = engine.server.handle_chat_completions(request)
        finally:
            unload_engine(path, threads, context)
        timings = response.get("timings") or {} if isinstance(response, dict) else {}
        prompt_tps = float(timings.get("prompt_per_second") or 0.0)
        generation_tps = float(timings.get("predicted_per_second") or 0.0)
        samples.append(
            prefill.ThreadSample(
                threads=threads,
                prompt_tokens_per_s=round(prompt_tps, 2),
                generation_tokens_per_s=round(generation_tps, 2),
                turn_estimate_s=round(prefill.turn_estimate(prompt_tps, generation_tps), 2),
            )
        )
    return samples
