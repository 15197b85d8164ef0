"""The graph's state: the conversation plus what the guards found in the current turn (plain JSON values, so a
checkpoint written by one process reads back in another)."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages


class AgentState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    turn_start: int  # index of this turn's user message in ``messages``
    user_text: str  # the user's latest message, secrets redacted
    intake: dict[str, Any]  # IntakeVerdict
    steps: int  # model calls this turn
    blocked: list[dict[str, Any]]  # GuardBlock, this turn
    failures: list[dict[str, Any]]  # FailedCall, this turn: tool calls that returned an error
    pending_approval: dict[str, Any] | None  # propose_order's result while waiting on a person
    approval_outcome: dict[str, Any] | None  # ApprovalOutcome once read back
    final: dict[str, Any] | None  # FinalEvent of this turn
