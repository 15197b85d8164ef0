"""What a conversation turn streams out: typed events, one discriminated union (the chat UI renders these)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from agent.guards.evidence import Evidence
from agent.guards.trade_intent import GuardBlock


class TokenEvent(BaseModel):
    """A piece of the answer as the model writes it (the final event's text is the authoritative answer)."""

    model_config = ConfigDict(frozen=True)

    type: Literal["token"] = "token"
    text: str


class TokenResetEvent(BaseModel):
    """The tokens streamed so far in this turn were a discarded draft: clear them (the next ones replace them)."""

    model_config = ConfigDict(frozen=True)

    type: Literal["token_reset"] = "token_reset"
    reason: str


class ToolStartEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: Literal["tool_start"] = "tool_start"
    call_id: str
    tool: str
    arguments: dict[str, Any]
    dropped_arguments: list[str] = Field(default_factory=list, description="invented optional arguments removed")
    read_as: list[str] = Field(
        default_factory=list, description="arguments put as the user wrote them (a period attached to its indicator)"
    )


class ToolEndEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: Literal["tool_end"] = "tool_end"
    call_id: str
    tool: str
    status: Literal["ok", "error", "blocked"]
    result: dict[str, Any] | None = Field(None, description="the tool's structured result")
    text: str = Field("", description="the result or error as text (what the model read, unwrapped)")
    reason: str | None = Field(None, description="why a call was blocked")
    duration_ms: float = 0.0


class ApprovalPendingEvent(BaseModel):
    """The turn is paused on a human decision; resume the thread once it is decided."""

    model_config = ConfigDict(frozen=True)

    type: Literal["approval_pending"] = "approval_pending"
    thread_id: str
    approval_id: str
    inbox_url: str
    summary: str
    intent: dict[str, Any] = Field(default_factory=dict)
    risk_summary: str | None = None
    expires_at: str | None = None


class ApprovalOutcome(BaseModel):
    """What became of a proposal, read back through ``get_approval`` after the decision."""

    approval_id: str
    status: str
    decided_by: str | None = None
    decision_reason: str | None = None
    result: dict[str, Any] | None = None
    inbox_url: str | None = None
    waited_s: float = 0.0


class AnswerCheckOut(BaseModel):
    passed: bool
    failures: list[str] = Field(default_factory=list)
    validator: str
    replaced: bool = False


class FinalEvent(BaseModel):
    """The answer, its evidence, and which model gave it."""

    model_config = ConfigDict(frozen=True)

    type: Literal["final"] = "final"
    text: str
    model_label: str
    evidence: Evidence = Field(default_factory=Evidence)
    blocked: list[GuardBlock] = Field(default_factory=list)
    refused: str | None = Field(None, description="out_of_scope | injection | approval_request | empty")
    redactions: list[str] = Field(default_factory=list, description="kinds of secrets removed from the user's text")
    approval: ApprovalOutcome | None = None
    answer_check: AnswerCheckOut | None = None
    unverified_numbers: list[str] = Field(
        default_factory=list, description="figures in the answer that no tool result of this turn contains"
    )

    def markdown(self) -> str:
        """The answer with its evidence and the model's name, for a chat window."""
        lines = [self.text]
        ev = self.evidence
        refs = [
            *(f"run {r}" for r in ev.runs),
            *(f"study {s}" for s in ev.studies),
            *(f"approval {a}" for a in ev.approvals),
            *(f"order {o}" for o in ev.orders),
            *(f"note {n}" for n in ev.notes),
        ]
        if refs:
            lines.append("Evidence: " + ", ".join(refs))
        if ev.citations:
            cites = [f"{c.document}" + (f" § {c.section}" if c.section else "") for c in ev.citations]
            lines.append("Sources: " + "; ".join(cites))
        if self.blocked:
            lines.append("Blocked: " + "; ".join(f"{b.tool} ({b.reason})" for b in self.blocked))
        lines.append(f"_Answered by {self.model_label}._")
        return "\n\n".join(lines)


Event = Annotated[
    TokenEvent | TokenResetEvent | ToolStartEvent | ToolEndEvent | ApprovalPendingEvent | FinalEvent,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
