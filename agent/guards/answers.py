"""Checks on final answers that report an order proposal: schema, no false claims, no invented numbers.

The checks are plain functions. :mod:`agent.guards.rails` runs them as guardrails-ai validators (imported lazily,
offline, metrics off); if guardrails cannot be imported the same functions run directly, so the guarantee does not
depend on that package.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.guards.evidence import ungrounded_numbers

ApprovalStatus = Literal["pending", "approved", "rejected", "expired", "executed", "failed"]

_FALSE_CLAIM = re.compile(
    r"\b(has been|have been|was|were|is now|got|i(?:'ve| have)?)\s+(approved|executed|filled|placed|bought|sold)\b|"
    r"\border (is|was) (filled|executed)\b",
    re.IGNORECASE,
)

_PHANTOM = re.compile(
    r"\b(proposed|placed|submitted|filed)\b.{0,60}\border\b|\border\b.{0,60}\b(proposed|placed|submitted|filed)\b|"
    r"\bapproval\s+(id|request)\b|\bapr_[a-z0-9]+|\b(bought|sold|executed|filled)\b",
    re.IGNORECASE | re.DOTALL,
)
_CANCEL_CLAIM = re.compile(
    r"\b(?:(?:has been|have been|was|were|is now|is|got|been)\s+(?:successfully\s+)?cancell?ed|"
    r"i(?:'ve| have)?\s+cancell?ed|successfully\s+cancell?ed)\b",
    re.IGNORECASE,
)
_UNSAID = re.compile(r"\b(?:not|never|no|nothing|until|once|after|when|if|only)\b", re.IGNORECASE)
NO_CANCEL = (
    "I did not cancel anything: no propose_cancel call succeeded in this turn, so no cancel request waits for "
    "approval. Tell me the order id to cancel (list_orders shows the open ones)."
)


def claims_cancelled(answer: str) -> bool:
    """The answer says an order was cancelled, in a sentence that does not negate it or make it conditional."""
    for sentence in re.split(r"(?<=[.!?\n])\s+", answer):
        match = _CANCEL_CLAIM.search(sentence)
        if match and not _UNSAID.search(sentence[: match.start()] + " " + sentence[match.end() : match.end() + 40]):
            return True
    return False


def describe_cancel_requests(results: Sequence[Mapping[str, Any]]) -> str:
    """What the cancel requests of this turn are, from ``propose_cancel``'s results (the replacement for an answer
    that claimed a cancellation that a person has not approved yet)."""
    if not results:
        return NO_CANCEL
    lines = []
    for result in results:
        intent = result.get("intent") or {}
        order = intent.get("order_id") or result.get("order_id") or "?"
        lines.append(
            f"I asked to cancel order {order}: cancel request {result.get('approval_id', '?')} is "
            f"{result.get('status', 'pending')}."
        )
    url = next((str(r["inbox_url"]) for r in results if r.get("inbox_url")), "")
    lines.append(
        "Nothing is cancelled until a person with the approver role approves it in the inbox"
        + (f": {url}" if url else ".")
    )
    return " ".join(lines)


_CANCEL_ASK = re.compile(r"\bcancel", re.IGNORECASE)


def replace_cancel_claim(answer: str, cancels: Sequence[Mapping[str, Any]], asked: str) -> str | None:
    """The answer to give instead of one that claims a cancellation no person approved (``cancels``: this turn's
    ``propose_cancel`` results; ``asked``: the user's message); None when the answer makes no such claim."""
    if not (cancels or _CANCEL_ASK.search(asked)) or any(c.get("status") == "executed" for c in cancels):
        return None
    if not claims_cancelled(answer):
        return None
    return (
        describe_cancel_requests(cancels)
        + " (This summary replaces the model's wording, which claimed a cancellation.)"
    )


NO_PROPOSAL = (
    "I did not propose any order in this turn: no propose_order call succeeded, so nothing waits for approval. "
    "To propose one, tell me the side, the symbol and the quantity, for example: buy 0.01 BTC/USD."
)


class ProposalSummary(BaseModel):
    """The schema a proposal must have before the answer may talk about it (from ``propose_order``'s result)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    approval_id: str = Field(min_length=4, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")
    status: ApprovalStatus
    symbol: str = Field(min_length=3)
    side: Literal["buy", "sell"]
    quantity: Decimal = Field(gt=0)
    type: str = "market"
    price: Decimal | None = None
    risk_allowed: bool | None = None
    risk_summary: str | None = None
    inbox_url: str
    expires_at: str | None = None

    @classmethod
    def from_result(cls, result: Mapping[str, Any]) -> ProposalSummary:
        intent = result.get("intent") or {}
        return cls.model_validate({**intent, **result, "expires_at": str(result.get("expires_at") or "") or None})

    def describe(self) -> str:
        what = f"{self.side} {self.quantity} {self.symbol} ({self.type}"
        what += f" at {self.price})" if self.price is not None else ")"
        lines = [f"I proposed an order: {what}. Approval request {self.approval_id} is {self.status}."]
        if self.risk_summary:
            lines.append(f"Pre-trade risk check: {self.risk_summary}.")
        if self.status == "pending":
            lines.append(
                f"Nothing has been executed. A person with the approver role decides in the inbox: {self.inbox_url}"
            )
        return " ".join(lines)


class AnswerCheck(BaseModel):
    """The outcome of the answer checks."""

    passed: bool
    failures: list[str] = Field(default_factory=list)
    validator: Literal["guardrails-ai", "python"] = "python"


def check_no_invented_numbers(answer: str, sources: set[Decimal]) -> str | None:
    bad = ungrounded_numbers(answer, sources)
    return f"figures not found in this turn's tool results or the user's words: {', '.join(bad)}" if bad else None


def check_no_false_claims(answer: str, proposals: list[ProposalSummary]) -> str | None:
    if not proposals:
        if _PHANTOM.search(answer):
            return "the answer speaks of an order or an approval, but no order was proposed in this turn"
        return None
    if any(p.status in ("pending", "rejected", "expired", "failed") for p in proposals) and _FALSE_CLAIM.search(answer):
        return "the answer claims the order was approved or executed, but it was not"
    return None


def parse_proposals(results: list[Mapping[str, Any]]) -> tuple[list[ProposalSummary], list[str]]:
    """Proposal results validated against the schema; and the schema failures."""
    proposals, failures = [], []
    for result in results:
        try:
            proposals.append(ProposalSummary.from_result(result))
        except ValidationError as error:
            failures.append(f"proposal result does not fit the schema: {error.errors()[0]['msg']}")
    return proposals, failures


def check_answer_plain(answer: str, proposals: list[ProposalSummary], sources: set[Decimal]) -> AnswerCheck:
    failures = [f for f in (check_no_invented_numbers(answer, sources), check_no_false_claims(answer, proposals)) if f]
    return AnswerCheck(passed=not failures, failures=failures, validator="python")
