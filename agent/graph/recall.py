"""Recall before answering: a question about what the user wrote down (their notes, rules, preferences, journal)
is answered from the knowledge base, so the graph searches it before the model's first step, over MCP like any
call, and the model starts with the passages in view.

The small local model sent "my own sizing rule", "when am I not supposed to trade on FOMC days" and "my preferred
parameters" to the risk status or the strategy list, where no answer was. The signal here is the person's own
record, named in the first person ("my notes", "my stop-loss rule", "did I write", "I am supposed to"), not a topic:
"my positions" or "my risk status" are not recalled. The model can still call any tool after the recall, including
another search with other words.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig

from agent.events import ToolEndEvent, ToolStartEvent
from agent.graph.nodes import AgentDeps, emit, result_message, run_tool
from agent.graph.state import AgentState
from engine.telemetry import get_logger

log = get_logger(__name__)

SEARCH_TOOL = "search_knowledge"
RECALL_HITS = 3
"""Passages the recall asks for: enough for a rule and its neighbour, few enough to read quickly."""
QUERY_CHARS = 500
OWN_KINDS = ["note", "journal", "report"]
"""What the user wrote or keeps (not the strategy documents, glossary or risk policy that IQTS ships): a question
about "my sizing rule" was answered from the risk policy's position limits when those ranked beside the note."""

_RECORDS = (
    r"notes?|journal|journals|playbook|thesis|theses|lessons?|rules?|rulebook|guidelines?|checklist|preferences?|"
    r"preferred|settings|principles?|plan|habits?"
)
_SIGNALS = (
    re.compile(rf"\b(?:my|our)\s+(?:own\s+)?(?:[a-z\-]+\s+){{0,2}}(?:{_RECORDS})\b"),
    re.compile(r"\baccording to (?:my|our)\b"),
    re.compile(r"\b(?:did|have|had) (?:i|we) (?:ever )?(?:note|noted|write|written|save|saved|record|recorded|jot)"),
    re.compile(r"\b(?:i|we) (?:wrote|noted|saved|recorded|jotted|decided)\b"),
    re.compile(r"\b(?:am i|are we) (?:not )?(?:supposed|allowed|meant) to\b"),
)
_ACTIONS = re.compile(r"\b(?:save|add|write down|store|remember|record)\b.{0,40}\b(?:note|this|that)\b")
"""A request to write a note, not to read one."""


def recall_query(text: str) -> str | None:
    """The search for a question about the user's own records (None when it is not one)."""
    lowered = " ".join(text.lower().split())
    if not lowered or _ACTIONS.search(lowered) or not any(s.search(lowered) for s in _SIGNALS):
        return None
    return text.strip()[:QUERY_CHARS]


def on_topic(result: dict[str, Any]) -> dict[str, Any]:
    """The search result without the passages that share no content word with the question, when others do: with
    only the user's notes to rank, the nearest can be about anything ("dark roast beans" beside the FOMC rule, then
    retold in the answer). When no passage shares a word, all are kept: the match may be by meaning alone."""
    hits = [h for h in result.get("hits", []) if isinstance(h, dict)]
    overlapping = [h for h in hits if h.get("words_found")]
    if not overlapping or len(overlapping) == len(hits):
        return result
    return {**result, "hits": overlapping}


def make_recall(deps: AgentDeps) -> Any:
    """The node: search the knowledge base for such a question, as a call the model sees as its own first step."""

    async def recall(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        tool = deps.tools.get(SEARCH_TOOL)
        query = recall_query(state.get("user_text", ""))
        if tool is None or query is None:
            return {}
        call_id = f"recall_{uuid.uuid4().hex[:12]}"
        args = {"query": query, "k": RECALL_HITS, "kinds": OWN_KINDS}
        emit(ToolStartEvent(call_id=call_id, tool=SEARCH_TOOL, arguments=args))
        message, structured, duration = await run_tool(tool, call_id, SEARCH_TOOL, args, config, deps)
        ok = message.status != "error"
        emit(
            ToolEndEvent(
                call_id=call_id,
                tool=SEARCH_TOOL,
                status="ok" if ok else "error",
                result=structured,
                text="" if ok else str(message.text),
                duration_ms=duration,
            )
        )
        log.info("agent.recalled", ok=ok, ms=round(duration, 1))
        if not ok or structured is None:  # the model goes on without it (and may search itself)
            return {}
        kept = on_topic(structured)
        if kept is not structured:  # the view and the artifacts hold only the passages on the question's subject
            message = result_message(call_id, SEARCH_TOOL, kept, deps)
        call = {"name": SEARCH_TOOL, "args": args, "id": call_id, "type": "tool_call"}
        return {"messages": [AIMessage(content="", tool_calls=[call]), message]}

    return recall
