"""The roles the graph wires together: intake guard, agent (the model), tools (over MCP), the approval wait, and
the final answer with its evidence. Each is a function of the state; what they share is in :class:`AgentDeps`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.config import get_stream_writer
from langgraph.types import interrupt
from pydantic import BaseModel

from agent.events import (
    AnswerCheckOut,
    ApprovalOutcome,
    FinalEvent,
    TokenResetEvent,
    ToolEndEvent,
    ToolStartEvent,
)
from agent.graph.prompts import system_prompt
from agent.graph.result_view import result_view
from agent.graph.state import AgentState
from agent.guards.answers import (
    NO_PROPOSAL,
    ProposalSummary,
    parse_proposals,
    replace_cancel_claim,
)
from agent.guards.arguments import ground_arguments
from agent.guards.citations import citation_line
from agent.guards.evidence import collect_evidence, numbers_in_text, numbers_in_value, to_decimal, ungrounded_numbers
from agent.guards.figures import Figure, figure_block, figure_sources, render_figures
from agent.guards.intake import IntakeVerdict, check_intake
from agent.guards.parameters import complete_indicators, complete_strategy_params
from agent.guards.trade_intent import BLOCKED_NOTE_HEAD, GuardBlock, TradeIntent, check_action_call, parse_trade_intent
from agent.memory import model_window
from agent.models.capabilities import ModelInfo
from agent.models.constrained import (
    ANSWER_LIMIT_KEY,
    BRIEF_ANSWER_LIMIT,
    SHORT_ANSWER_LIMIT,
    cut_at_a_bound,
    strict_schema,
    whole_clauses,
    whole_sentences,
)
from engine.settings import AgentSettings
from engine.telemetry import get_logger
from engine.untrusted import wrap_untrusted

log = get_logger(__name__)

TERMINAL = frozenset({"executed", "failed", "rejected", "expired"})


@dataclass
class AgentDeps:
    """What the nodes need besides the state: the bound model, the MCP tools, configuration."""

    model: Runnable[Any, Any]
    model_info: ModelInfo
    tools: dict[str, BaseTool]
    instructions: str
    settings: AgentSettings
    state_dir: Path
    known_secrets: list[str] = field(default_factory=list)
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    strategy_parameters: dict[str, list[str]] = field(default_factory=dict)
    """Each strategy's parameter names in order (``list_strategies``, read at session start)."""

    @classmethod
    def build(
        cls,
        model: BaseChatModel,
        model_info: ModelInfo,
        tools: Iterable[BaseTool],
        *,
        instructions: str,
        settings: AgentSettings,
        state_dir: Path,
        known_secrets: Iterable[str] = (),
        strategy_parameters: Mapping[str, list[str]] | None = None,
    ) -> AgentDeps:
        tool_list = list(tools)
        schemas = {}
        for tool in tool_list:
            raw = tool.args_schema
            if not isinstance(raw, dict):
                raw = convert_to_openai_tool(tool)["function"].get("parameters") or {}
            schemas[tool.name] = strict_schema(raw)
        return cls(
            model=model.bind_tools(tool_list),
            model_info=model_info,
            tools={t.name: t for t in tool_list},
            instructions=instructions,
            settings=settings,
            state_dir=state_dir,
            known_secrets=list(known_secrets),
            schemas=schemas,
            strategy_parameters=dict(strategy_parameters or {}),
        )


def emit(payload: Any) -> None:
    try:
        writer = get_stream_writer()
    except RuntimeError:  # not running inside a streaming graph
        return
    writer({"iqts_event": payload.model_dump(mode="json")})


def _turn(state: AgentState) -> list[AnyMessage]:
    return list(state["messages"][state.get("turn_start", 0) :])


def _tool_results(state: AgentState) -> list[ToolMessage]:
    return [m for m in _turn(state) if isinstance(m, ToolMessage)]


def _structured(message: ToolMessage) -> dict[str, Any] | None:
    artifact = message.artifact
    if isinstance(artifact, Mapping) and isinstance(artifact.get("structured"), Mapping):
        return dict(artifact["structured"])
    return None


def _artifacts(state: AgentState) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for message in _tool_results(state):
        structured = _structured(message)
        if structured is not None and message.status != "error":
            out.append((message.name or "tool", structured))
    return out


# -- intake ------------------------------------------------------------------------------------------------------


def make_intake(deps: AgentDeps) -> Any:
    async def intake(state: AgentState) -> dict[str, Any]:
        messages = state["messages"]
        last = messages[-1]
        if not isinstance(last, HumanMessage):
            raise ValueError("a turn must start with the user's message")
        follow_up = any(isinstance(m, AIMessage) and not m.tool_calls for m in messages[:-1])
        verdict = check_intake(str(last.text), deps.known_secrets, follow_up=follow_up)
        earlier = [str(k) for k in last.additional_kwargs.get("iqts_redactions", [])]  # redacted by the caller
        if earlier:
            verdict = verdict.model_copy(update={"redactions": [*earlier, *verdict.redactions]})
        update: dict[str, Any] = {
            "turn_start": len(messages) - 1,
            "user_text": verdict.text,
            "intake": verdict.model_dump(mode="json"),
            "steps": 0,
            "blocked": [],
            "failures": [],
            "pending_approval": None,
            "approval_outcome": None,
            "final": None,
        }
        if verdict.text != last.text:  # the stored message too: the secret leaves no trace in the checkpoint
            update["messages"] = [HumanMessage(content=verdict.text, id=last.id)]
        if verdict.decision != "ok":
            log.info("agent.intake_refused", decision=verdict.decision)
        return update

    return intake


# -- agent -------------------------------------------------------------------------------------------------------


def make_agent(deps: AgentDeps) -> Any:
    prompt = system_prompt(deps.model_info.label, deps.instructions)

    async def agent(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        steps = state.get("steps", 0)
        if steps >= deps.settings.agent_max_steps:
            text = (
                f"I stopped after {steps} steps without a complete answer. Here is what I found so far in the tool "
                "results above; ask me a narrower question."
            )
            return {"messages": [AIMessage(content=text)], "steps": steps}
        failures = [FailedCall.model_validate(f) for f in state.get("failures", [])]
        if len(failures) > deps.settings.agent_error_retries or repeated_a_failure(state):
            return {"messages": [AIMessage(content=gave_up(failures))], "steps": steps}
        window = [SystemMessage(content=prompt), *model_window(state["messages"], state.get("turn_start", 0))]
        recovery = _recovery_hint(state, failures, deps.settings.agent_error_retries)
        if recovery is not None:  # the error is in view above; say plainly what to do with it (not stored)
            window.append(HumanMessage(content=recovery))
        elif (brief := brief_answer_hint(state)) is not None:  # its figures are rendered under the answer
            window.append(brief)
        started = time.monotonic()
        try:
            reply = await deps.model.ainvoke(window, config)
        except (ValueError, RuntimeError) as error:  # constrained output that did not validate, runtime failure
            log.warning("agent.model_failed", error=str(error)[:300])
            reply = AIMessage(content=f"The model could not produce a valid reply ({error}). Please rephrase.")
        log.info("agent.model_call", model=deps.model_info.label, s=round(time.monotonic() - started, 2))
        if not isinstance(reply, AIMessage):
            reply = AIMessage(content=str(getattr(reply, "content", reply)))
        hint = _trade_hint(state, reply)
        if hint is not None:  # asked to trade, answered without trying: remind it once (the guard still checks)
            log.info("agent.trade_hint")
            try:
                retry = await deps.model.ainvoke([*window, reply, HumanMessage(content=hint)], config)
            except (ValueError, RuntimeError) as error:
                log.warning("agent.model_failed", error=str(error)[:300])
            else:
                if isinstance(retry, AIMessage) and retry.tool_calls:
                    if reply.content:
                        emit(TokenResetEvent(reason="the model's draft claimed a trade it had not proposed"))
                    reply = retry
        if reply.tool_calls:
            reply = _ground(reply, state.get("user_text", ""), _conversation_text(state), deps)
        return {"messages": [reply], "steps": steps + 1}

    return agent


class FailedCall(BaseModel):
    """A tool call of this turn that returned an error (what it was, and what the error said)."""

    tool: str
    arguments: dict[str, Any]
    error: str

    @property
    def signature(self) -> str:
        return call_signature(self.tool, self.arguments)


def call_signature(tool: str, arguments: Mapping[str, Any]) -> str:
    return tool + json.dumps(arguments, sort_keys=True, default=str)


def _recovery_hint(state: AgentState, failures: list[FailedCall], retries: int) -> str | None:
    """After a failed call (the last step's results), a reminder to correct it rather than repeat it."""
    turn = _turn(state)
    last_results = []
    for message in reversed(turn):
        if not isinstance(message, ToolMessage):
            break
        last_results.append(message)
    failed_now = [m for m in last_results if m.status == "error" and not _is_blocked(m)]
    if not failed_now or not failures:
        return None
    left = retries - len(failures) + 1
    names = ", ".join(sorted({m.name or "tool" for m in failed_now}))
    return (
        f"(IQTS) The call to {names} failed: the error above names what was wrong and may list the valid values. "
        "Call the tool again with the argument corrected to one of those values (copy it exactly), call another "
        f"tool that lists them, or answer the user with what is missing. Do not repeat the same call. {left} "
        f"attempt{'s' if left != 1 else ''} left."
    )


BRIEF_ANSWER = (
    "(IQTS) The other figures are listed for me under your reply, so in at most two short sentences give only the "
    "one or two figures my question asks about, exactly as shown above."
)
SHORT_ANSWER = (
    "(IQTS) In at most three short sentences, answer my question with what these results say, quoting their "
    "words and numbers."
)
"""The hints hold no sentence a model could copy as its answer ("the results are shown under your answer" was)."""


def brief_answer_hint(state: AgentState) -> HumanMessage | None:
    """After a successful tool result, how long the answer should be, with a bound on its length for models that
    honour it (the local model's grammar). Figures that the final answer renders (:func:`render_figures`) need not
    be repeated: a backtest answer that recited every metric took 300 tokens, 45-90 s at one thread. None after a
    proposal (its summary is checked and written from the result) or an error."""
    turn = _turn(state)
    if not turn or not isinstance(turn[-1], ToolMessage) or turn[-1].status == "error":
        return None
    artifacts = _artifacts(state)
    if any(name in ("propose_order", "propose_cancel") for name, _ in artifacts):
        return None
    if render_figures(artifacts):
        return HumanMessage(content=BRIEF_ANSWER, additional_kwargs={ANSWER_LIMIT_KEY: BRIEF_ANSWER_LIMIT})
    return HumanMessage(content=SHORT_ANSWER, additional_kwargs={ANSWER_LIMIT_KEY: SHORT_ANSWER_LIMIT})


def _is_blocked(message: ToolMessage) -> bool:
    return isinstance(message.artifact, Mapping) and "blocked" in message.artifact


REPEAT_PREFIX = "this exact call"
ANSWERED_ALREADY = "Here is what the tools returned for your question."


def gave_up(failures: list[FailedCall]) -> str:
    """The answer when the bound on corrections is reached: what failed, in the tools' own words; when nothing
    failed but the model kept asking for results it already had, those results (the final node renders them)."""
    if failures and all(f.error.startswith(REPEAT_PREFIX) for f in failures):
        return ANSWERED_ALREADY
    distinct = [f for f in failures if not f.error.startswith(REPEAT_PREFIX)] or failures
    lines = list(dict.fromkeys(f"- {f.tool}: {f.error}" for f in distinct))[-3:]
    return (
        f"I could not complete this: {len(failures)} tool calls failed and I stopped correcting them. The last "
        "errors were:\n" + "\n".join(lines) + "\nTell me which of the valid values you meant and I will try again."
    )


def _trade_hint(state: AgentState, reply: AIMessage) -> str | None:
    """A reminder for a model that answered a trade request without calling a tool (small models claim they did)."""
    if reply.tool_calls or state.get("steps", 0) > 0:
        return None
    intent: TradeIntent = parse_trade_intent(state.get("user_text", ""))
    if not intent.is_trade or intent.side == "close":
        return None
    symbol = "/".join(intent.pairs[0]) if intent.pairs else intent.assets[0]
    quantity = intent.quantities[0]
    return (
        f"(IQTS) My message asks to {intent.side} {quantity} {symbol}. Nothing is proposed until you call "
        "propose_order: call it with exactly that side, symbol and quantity, or answer why you cannot."
    )


CONTEXT_MESSAGES = 8
"""Earlier messages whose values an argument may take ("backtest those" after an answer naming the parameters)."""


def _conversation_text(state: AgentState) -> str:
    """What the user said this turn, with what the conversation showed: the last earlier messages (the user's and
    the answers) and this turn's tool results. A value from any of them is not invented."""
    start = state.get("turn_start", 0)
    earlier = [
        m for m in state["messages"][:start] if not isinstance(m, ToolMessage) and not getattr(m, "tool_calls", None)
    ]
    parts = [str(m.text) for m in earlier[-CONTEXT_MESSAGES:]]
    parts += [str(m.artifact.get("text", "")) for m in _tool_results(state) if isinstance(m.artifact, Mapping)]
    return "\n".join([state.get("user_text", ""), *parts])


def _ground(reply: AIMessage, said: str, context: str, deps: AgentDeps) -> AIMessage:
    """The calls with the numbers the user attached to a name put where they belong (every model, from ``said``,
    this turn's message), then without the optional arguments that neither the user nor the conversation gave
    (``context``; models that declare they invent them)."""
    calls = []
    dropped: dict[str, list[str]] = {}
    read_as: dict[str, list[str]] = {}
    for call in reply.tool_calls:
        args, notes = complete_indicators(call["args"], said)
        args, more = complete_strategy_params(args, said, deps.strategy_parameters)
        if notes or more:
            read_as[str(call["id"])] = [*notes, *more]
        schema = deps.schemas.get(call["name"])
        if schema is not None and deps.model_info.capabilities.ground_optional_arguments:
            args, lost = ground_arguments(args, schema, context)
            if lost:
                dropped[str(call["id"])] = lost
        calls.append({**call, "args": args})
    extra = dict(reply.additional_kwargs)
    if dropped:
        extra["iqts_dropped"] = dropped
    if read_as:
        extra["iqts_read_as"] = read_as
    return reply.model_copy(update={"tool_calls": calls, "additional_kwargs": extra})


# -- tools -------------------------------------------------------------------------------------------------------


def make_tools(deps: AgentDeps) -> Any:
    async def tools(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        last = state["messages"][-1]
        assert isinstance(last, AIMessage)
        user_text = state.get("user_text", "")
        artifacts = [a for _, a in _artifacts(state)]
        proposed = sum(1 for name, _ in _artifacts(state) if name == "propose_order")
        blocked = list(state.get("blocked", []))
        failures = [FailedCall.model_validate(f) for f in state.get("failures", [])]
        dropped = last.additional_kwargs.get("iqts_dropped", {})
        read_as = last.additional_kwargs.get("iqts_read_as", {})
        answered = _answered_calls(state)
        out: list[ToolMessage] = []
        pending: dict[str, Any] | None = None
        for call in last.tool_calls:
            call_id, name, args = str(call["id"]), call["name"], dict(call["args"])
            emit(
                ToolStartEvent(
                    call_id=call_id,
                    tool=name,
                    arguments=args,
                    dropped_arguments=dropped.get(call_id, []),
                    read_as=read_as.get(call_id, []),
                )
            )
            tool = deps.tools.get(name)
            block = check_action_call(name, args, user_text, artifacts, proposed_this_turn=proposed)
            if block is None and tool is None:
                block = GuardBlock(tool=name, reason=f"there is no tool named {name}")
            if block is not None or tool is None:
                reason = block.reason if block else "unknown tool"
                log.warning("agent.call_blocked", tool=name, reason=reason)
                blocked.append(GuardBlock(tool=name, reason=reason).model_dump())
                out.append(
                    ToolMessage(
                        content=f"BLOCKED by the IQTS guard, nothing was sent: {reason}. Tell the user; do not retry.",
                        tool_call_id=call_id,
                        name=name,
                        status="error",
                        artifact={"blocked": reason},
                    )
                )
                emit(ToolEndEvent(call_id=call_id, tool=name, status="blocked", reason=reason))
                continue
            signature = call_signature(name, args)
            repeated = next((f for f in failures if f.signature == signature), None)
            if repeated is not None or signature in answered:  # the same call again: say so instead of sending it
                reason = (
                    f"this exact call already failed ({repeated.error[:300]}); change the arguments"
                    if repeated is not None
                    else "this exact call was already made this turn and its result is above: answer from it"
                )
                failures.append(FailedCall(tool=name, arguments=args, error=reason))
                out.append(
                    ToolMessage(
                        content=wrap_untrusted(f"error: {reason}. Nothing was sent.", source=f"tool:{name}"),
                        tool_call_id=call_id,
                        name=name,
                        status="error",
                        artifact={"structured": None, "text": reason, "repeat": "failed" if repeated else "ok"},
                    )
                )
                emit(ToolEndEvent(call_id=call_id, tool=name, status="error", text=reason))
                continue
            message, structured, duration = await run_tool(tool, call_id, name, args, config, deps)
            out.append(message)
            if message.status != "error":
                answered.add(signature)
            status = "error" if message.status == "error" else "ok"
            if status == "error":
                text = message.artifact.get("text", "") if isinstance(message.artifact, dict) else ""
                failures.append(FailedCall(tool=name, arguments=args, error=str(text)[:500] or "error"))
            emit(
                ToolEndEvent(
                    call_id=call_id,
                    tool=name,
                    status=status,
                    result=structured,
                    text=str(message.artifact.get("text", "")) if isinstance(message.artifact, dict) else "",
                    duration_ms=duration,
                )
            )
            if name == "propose_order" and status == "ok" and structured is not None:
                proposed += 1
                artifacts.append(structured)
                if structured.get("status") == "pending":
                    pending = structured
        return {
            "messages": out,
            "blocked": blocked,
            "failures": [f.model_dump() for f in failures],
            "pending_approval": pending,
        }

    return tools


def _answered_calls(state: AgentState) -> set[str]:
    """Signatures of this turn's calls that returned a result (not an error)."""
    ok = {m.tool_call_id for m in _tool_results(state) if m.status != "error"}
    return {
        call_signature(call["name"], call["args"])
        for message in _turn(state)
        if isinstance(message, AIMessage)
        for call in message.tool_calls
        if call.get("id") in ok
    }


def repeated_a_failure(state: AgentState) -> bool:
    """The last step repeated a call that had already failed: more steps would only repeat it again."""
    for message in reversed(_turn(state)):
        if not isinstance(message, ToolMessage):
            return False
        if isinstance(message.artifact, Mapping) and message.artifact.get("repeat") == "failed":
            return True
    return False


async def run_tool(
    tool: BaseTool, call_id: str, name: str, args: dict[str, Any], config: RunnableConfig, deps: AgentDeps
) -> tuple[ToolMessage, dict[str, Any] | None, float]:
    started = time.monotonic()
    try:
        raw = await tool.ainvoke({"type": "tool_call", "id": call_id, "name": name, "args": args}, config)
    except Exception as error:  # the transport failed: report it to the model as an error result
        log.warning("agent.tool_failed", tool=name, error=str(error)[:300])
        raw = ToolMessage(content=f"the tool could not be reached: {error}", tool_call_id=call_id, status="error")
    duration = (time.monotonic() - started) * 1000
    structured: dict[str, Any] | None = None
    if isinstance(raw, ToolMessage):
        artifact = raw.artifact
        if isinstance(artifact, Mapping) and isinstance(artifact.get("structured_content"), Mapping):
            structured = dict(artifact["structured_content"])
        text_result = str(raw.text) if raw.status == "error" or structured is None else ""
        status = raw.status
    else:
        text_result, status = str(raw), "success"
    if status != "error" and structured is not None:
        return result_message(call_id, name, structured, deps), structured, duration
    body = text_result[: deps.settings.agent_tool_result_chars]
    message = ToolMessage(
        content=wrap_untrusted(body if status != "error" else f"error: {body}", source=f"tool:{name}"),
        tool_call_id=call_id,
        name=name,
        status="error" if status == "error" else "success",
        artifact={"structured": structured, "text": body},
    )
    return message, structured, duration


def result_message(call_id: str, name: str, structured: dict[str, Any], deps: AgentDeps) -> ToolMessage:
    """A successful result as the model reads it (its view, marked untrusted) with the structured result kept."""
    body = result_view(structured, deps.settings.agent_tool_result_chars)
    return ToolMessage(
        content=wrap_untrusted(body, source=f"tool:{name}"),
        tool_call_id=call_id,
        name=name,
        status="success",
        artifact={"structured": structured, "text": body},
    )


# -- the approval wait -------------------------------------------------------------------------------------------


def make_await_approval(deps: AgentDeps) -> Any:
    async def await_approval(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        pending = state.get("pending_approval") or {}
        approval_id = str(pending.get("approval_id", ""))
        summary = ProposalSummary.from_result(pending)
        interrupt(
            {
                "approval_id": approval_id,
                "inbox_url": summary.inbox_url,
                "summary": summary.describe(),
                "intent": pending.get("intent") or {},
                "risk_summary": summary.risk_summary,
                "expires_at": summary.expires_at,
            }
        )
        outcome = await _poll(approval_id, config, deps)
        text = describe_outcome(outcome, summary)
        return {
            "approval_outcome": outcome.model_dump(mode="json"),
            "pending_approval": None,
            "messages": [AIMessage(content=text, additional_kwargs={"iqts_outcome": True})],
        }

    return await_approval


async def _poll(approval_id: str, config: RunnableConfig, deps: AgentDeps) -> ApprovalOutcome:
    """Read the request back through ``get_approval`` until it is final (or the worker had its time)."""
    tool = deps.tools.get("get_approval")
    started = time.monotonic()
    if tool is None:
        return ApprovalOutcome(approval_id=approval_id, status="unknown")
    while True:
        call_id = f"poll_{approval_id}_{int(time.monotonic() * 1000)}"
        args = {"approval_id": approval_id}
        emit(ToolStartEvent(call_id=call_id, tool="get_approval", arguments=args))
        message, structured, duration = await run_tool(tool, call_id, "get_approval", args, config, deps)
        ok = message.status != "error" and structured is not None
        emit(
            ToolEndEvent(
                call_id=call_id,
                tool="get_approval",
                status="ok" if ok else "error",
                result=structured,
                duration_ms=duration,
            )
        )
        waited = time.monotonic() - started
        if not ok or structured is None:
            return ApprovalOutcome(approval_id=approval_id, status="unknown", waited_s=waited)
        status = str(structured.get("status"))
        if status in TERMINAL or status == "pending" or waited >= deps.settings.agent_approval_wait_s:
            return ApprovalOutcome(
                approval_id=approval_id,
                status=status,
                decided_by=structured.get("decided_by"),
                decision_reason=structured.get("decision_reason"),
                result=structured.get("result"),
                inbox_url=structured.get("inbox_url"),
                waited_s=round(waited, 2),
            )
        await asyncio.sleep(deps.settings.agent_approval_poll_s)


def describe_outcome(outcome: ApprovalOutcome, summary: ProposalSummary) -> str:
    """The outcome in plain words, every figure taken from ``get_approval``'s result."""
    what = f"{summary.side} {summary.quantity} {summary.symbol}"
    who = f" by {outcome.decided_by}" if outcome.decided_by else ""
    result = outcome.result or {}
    if outcome.status == "executed":
        filled = result.get("filled_quantity", "?")
        price = result.get("average_price")
        at = f" at an average price of {price}" if price is not None else ""
        return (
            f"Your order to {what} (approval {outcome.approval_id}) was approved{who} and executed: order "
            f"{result.get('order_id', '?')} {result.get('status', 'filled')}, {filled} {summary.symbol}{at}."
        )
    if outcome.status == "failed":
        reason = result.get("reason") or "see the order record"
        return f"Your order to {what} (approval {outcome.approval_id}) was approved{who} but not executed: {reason}."
    if outcome.status == "rejected":
        reason = outcome.decision_reason or "no reason given"
        return (
            f"Your order to {what} (approval {outcome.approval_id}) was rejected{who}: {reason}. Nothing was executed."
        )
    if outcome.status == "expired":
        return (
            f"Your order to {what} (approval {outcome.approval_id}) expired without a decision. Nothing was executed."
        )
    if outcome.status == "approved":
        return (
            f"Your order to {what} (approval {outcome.approval_id}) was approved{who}. The execution worker has not "
            f"reported on it yet (I waited {outcome.waited_s:g} s); it submits approved orders after a second risk "
            "check. Ask me for its status later."
        )
    if outcome.status == "pending":
        return (
            f"Your order to {what} (approval {outcome.approval_id}) is still waiting for a decision in the inbox: "
            f"{outcome.inbox_url or summary.inbox_url}"
        )
    return f"I could not read back approval {outcome.approval_id}; check the inbox: {summary.inbox_url}"


# -- final -------------------------------------------------------------------------------------------------------


async def _render_figures(
    text: str, figures: list[Figure], sources: set[Decimal], deps: AgentDeps
) -> tuple[str, AnswerCheckOut | None]:
    """The model's words with its figures checked against the rendered tool results (repaired when they do not
    match), and the rendered figures it did not state appended."""
    from agent.guards.rails import check_figures

    result = await asyncio.to_thread(check_figures, text, figures, sources, state_dir=deps.state_dir)
    words = result.text.strip() or "Here is what the tools returned."
    block = figure_block(figures, words)
    check = None
    if result.repair is not None:
        log.info("agent.figures_repaired", repair=result.repair.describe()[:300])
        check = AnswerCheckOut(
            passed=False, failures=[result.repair.describe()], validator=result.validator, replaced=True
        )
    return (f"{words}\n\n{block}" if block else words), check


def make_final(deps: AgentDeps) -> Any:
    async def final(state: AgentState) -> dict[str, Any]:
        verdict = IntakeVerdict.model_validate(state.get("intake") or {"decision": "ok", "text": "", "redactions": []})
        turn = _turn(state)
        last_ai = next((m for m in reversed(turn) if isinstance(m, AIMessage) and not m.tool_calls), None)
        artifacts = _artifacts(state)
        evidence = collect_evidence(artifacts)
        blocked = [GuardBlock.model_validate(b) for b in state.get("blocked", [])]
        outcome = state.get("approval_outcome")
        check: AnswerCheckOut | None = None
        if not verdict.allowed:
            text = verdict.reply or "I cannot help with that."
        else:
            text = str(last_ai.text) if last_ai is not None else ""
            if cut_at_a_bound(text):  # a streamed reply reaches here whole: the model adapter cannot cut it back
                text = whole_clauses(whole_sentences(text))
            if not text.strip():
                text = "I have no answer to that."
        sources: set[Decimal] = set()
        for _, artifact in artifacts:
            sources |= numbers_in_value(artifact)
        if outcome:
            sources |= numbers_in_value(outcome)
        for raw in numbers_in_text(state.get("user_text", "")):
            number = to_decimal(raw)
            if number is not None:
                sources.add(number)
        proposals_raw: list[Mapping[str, Any]] = [a for name, a in artifacts if name == "propose_order"]
        from_model = verdict.allowed and last_ai is not None and not last_ai.additional_kwargs.get("iqts_outcome")
        asked_to_trade = parse_trade_intent(state.get("user_text", "")).is_trade
        if (proposals_raw or asked_to_trade) and from_model:
            proposals, schema_failures = parse_proposals(proposals_raw)
            from agent.guards.rails import check_answer

            result = await asyncio.to_thread(check_answer, text, proposals, sources, state_dir=deps.state_dir)
            failures = [*schema_failures, *result.failures]
            replaced = bool(failures)
            if replaced:
                reasons = "an invented figure" if any("figures" in f for f in failures) else "a false claim"
                summary = " ".join(p.describe() for p in proposals) if proposals else NO_PROPOSAL
                text = summary + (
                    f" (This summary replaces the model's wording, which failed the answer checks: {reasons}.)"
                )
            check = AnswerCheckOut(
                passed=not failures, failures=failures, validator=result.validator, replaced=replaced
            )
        cancels = [a for name, a in artifacts if name == "propose_cancel"]
        if from_model and (replacement := replace_cancel_claim(text, cancels, state.get("user_text", ""))):
            log.info("agent.cancel_claim_replaced")
            text = replacement
            check = AnswerCheckOut(
                passed=False,
                failures=["claimed a cancellation no person approved"],
                validator="python",
                replaced=True,
            )
        figures = render_figures(artifacts) if verdict.allowed else []
        sources |= figure_sources(render_figures(artifacts, limit=None, list_items=None))  # all the view showed
        if from_model and figures and not proposals_raw:
            text, check = await _render_figures(text, figures, sources, deps)
        if from_model and not proposals_raw and (cited := citation_line(artifacts, text)):
            text = f"{text}\n\n{cited}"
        if blocked and verdict.allowed:
            notes = "; ".join(f"{b.tool}: {b.reason}" for b in blocked)
            if "blocked" not in text.lower():
                text += f"\n\n{BLOCKED_NOTE_HEAD} ({notes}). Nothing was sent."
        if verdict.redactions:
            text = (
                f"(I removed what looked like a secret ({', '.join(sorted(set(verdict.redactions)))}) from your "
                "message before reading it; it is not stored and no model saw it.)\n\n" + text
            )
        event = FinalEvent(
            text=text,
            model_label=deps.model_info.label,
            evidence=evidence,
            blocked=blocked,
            refused=None if verdict.allowed else verdict.decision,
            redactions=verdict.redactions,
            approval=ApprovalOutcome.model_validate(outcome) if outcome else None,
            answer_check=check,
            unverified_numbers=ungrounded_numbers(text, sources) if verdict.allowed else [],
        )
        emit(event)
        update: dict[str, Any] = {"final": event.model_dump(mode="json")}
        if last_ai is not None and verdict.allowed:
            if text != str(last_ai.text):
                update["messages"] = [last_ai.model_copy(update={"content": text})]
        else:
            update["messages"] = [AIMessage(content=text)]
        return update

    return final
