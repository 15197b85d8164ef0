"""What the model remembers: the current turn in full, earlier turns as question and answer only.

Tool calls and results of earlier turns stay in the checkpoint (the UI can show them) but are not sent to the model
again: they would crowd a small model's context, and a figure from an old tool result is no evidence for today.
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage

PAST_TURN_MESSAGES = 6


def model_window(
    messages: Sequence[AnyMessage], turn_start: int, *, past: int = PAST_TURN_MESSAGES
) -> list[BaseMessage]:
    """Earlier questions and final answers (the last ``past`` of them), then everything of this turn."""
    earlier: list[BaseMessage] = [
        m
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
