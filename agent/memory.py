"""What the model remembers: the current turn in full, earlier turns as question and answer only.

Tool calls and results of earlier turns stay in the checkpoint (the UI can show them) but are not sent to the model
again: they would crowd a small model's context, and a figure from an old tool result is no evidence for today.
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage

from agent.guards.citations import HEAD as SOURCES_HEAD
from agent.guards.figures import BLOCK_HEAD as FIGURES_HEAD
from agent.guards.trade_intent import BLOCKED_NOTE_HEAD

PAST_TURN_MESSAGES = 6
APPENDIX_MARKERS = tuple(f"\n\n{head}" for head in (FIGURES_HEAD, SOURCES_HEAD, BLOCKED_NOTE_HEAD))
"""Where the rendered appendices of a final answer begin: the model's own words come before them. A small model
shown an earlier answer with its figure block copies the block (and its old figures) into the next answer."""


def own_words(message: AIMessage) -> AIMessage:
    """An earlier answer as the model wrote it: the rendered appendices cut off."""
    text = str(message.text)
    cut = min((i for i in (text.find(m) for m in APPENDIX_MARKERS) if i > 0), default=-1)
    return message if cut < 0 else message.model_copy(update={"content": text[:cut]})


def model_window(
    messages: Sequence[AnyMessage], turn_start: int, *, past: int = PAST_TURN_MESSAGES
) -> list[BaseMessage]:
    """Earlier questions and final answers (the last ``past`` of them, in the model's own words), then everything
    of this turn."""
    earlier: list[BaseMessage] = [
        own_words(m) if isinstance(m, AIMessage) else m
        for m in messages[:turn_start]
        if isinstance(m, HumanMessage) or (isinstance(m, AIMessage) and not m.tool_calls and m.content)
    ]
    return [*earlier[-past:], *messages[turn_start:]]


def transcript(messages: Sequence[AnyMessage]) -> list[tuple[str, str]]:
    """(role, text) of the questions and final answers of a thread, for showing a resumed conversation."""
    out: list[tuple[str, str]] = []
    for message in messages:
        if isinstance(message, HumanMessage):
            out.append(("user", str(message.text)))
        elif isinstance(message, AIMessage) and not message.tool_calls and message.content:
            out.append(("assistant", str(message.text)))
    return out
