"""What the answer can stand on: the ids and citations found in this turn's tool results, and their figures."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_ID_KEYS = {
    "run_id": "runs",
    "backtest_id": "runs",
    "study_id": "studies",
    "approval_id": "approvals",
    "order_id": "orders",
    "note_id": "notes",
}
_NUMBER = re.compile(r"(?<![\w.])-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|(?<![\w.])-?\d+(?:\.\d+)?")


class Citation(BaseModel):
    model_config = ConfigDict(frozen=True)

    document: str
    section: str | None = None
    score: float | None = None


class Evidence(BaseModel):
    """Ids and citations the answer rests on (all from tool results of this turn)."""

    runs: list[str] = Field(default_factory=list)
    studies: list[str] = Field(default_factory=list)
    approvals: list[str] = Field(default_factory=list)
    orders: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    citations: list[Citation] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list, description="the tools called this turn, in order")

    def is_empty(self) -> bool:
        return not (self.runs or self.studies or self.approvals or self.orders or self.notes or self.citations)


def _walk(value: Any) -> Iterable[tuple[str, Any, Mapping[str, Any] | None]]:
    stack: list[tuple[str, Any, Mapping[str, Any] | None]] = [("", value, None)]
    while stack:
        key, item, parent = stack.pop()
        yield key, item, parent
        if isinstance(item, Mapping):
            stack.extend((str(k), v, item) for k, v in item.items())
        elif isinstance(item, list | tuple):
            stack.extend((key, v, parent) for v in item)


def collect_evidence(artifacts: Iterable[tuple[str, Mapping[str, Any]]]) -> Evidence:
    """Evidence from ``(tool name, structured result)`` pairs."""
    evidence = Evidence()
    seen_citations: set[tuple[str, str | None]] = set()
    for tool, artifact in artifacts:
        if tool not in evidence.tools:
            evidence.tools.append(tool)
        for key, value, parent in _walk(artifact):
            bucket = _ID_KEYS.get(key)
            if bucket and isinstance(value, str | int) and value not in ("", None):
                target: list[str] = getattr(evidence, bucket)
                if str(value) not in target:
                    target.append(str(value))
            if isinstance(value, Mapping):
                document = value.get("document") or value.get("source") or value.get("path")
                if isinstance(document, str) and ("section" in value or "score" in value or "chunk" in value):
                    section = value.get("section") or value.get("heading")
                    ident = (document, str(section) if section is not None else None)
                    if ident not in seen_citations:
                        seen_citations.add(ident)
                        score = value.get("score")
                        evidence.citations.append(
                            Citation(
                                document=document,
                                section=ident[1],
                                score=float(score) if isinstance(score, int | float) else None,
                            )
                        )
            del parent
    return evidence


def numbers_in_text(text: str) -> list[str]:
    """The numbers written in ``text``, as written (1,234.5 and -0.02 included; parts of words excluded)."""
    return [m.group(0) for m in _NUMBER.finditer(text)]


def to_decimal(text: str) -> Decimal | None:
    try:
        return Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None


def numbers_in_value(value: Any) -> set[Decimal]:
    """Every number in a tool result: numeric fields and the numbers written inside its strings."""
    out: set[Decimal] = set()
    for _, item, _ in _walk(value):
        if isinstance(item, bool):
            continue
        if isinstance(item, int | float | Decimal):
            number = to_decimal(str(item))
            if number is not None:
                out.add(number)
        elif isinstance(item, str):
            for raw in numbers_in_text(item):
                number = to_decimal(raw)
                if number is not None:
                    out.add(number)
    return out


def is_grounded(written: str, sources: set[Decimal]) -> bool:
    """A number in the answer is grounded when a source has it, or rounds to it at the precision written."""
    number = to_decimal(written)
    if number is None:
        return True
    if number in sources or -number in sources:
        return True
    exponent = number.as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    quantum = Decimal(1).scaleb(-places)
    for source in sources:
        try:
            if abs(source).quantize(quantum) == abs(number):
                return True
        except InvalidOperation:
            continue
    return False


def ungrounded_numbers(answer: str, sources: set[Decimal], *, small: int = 10) -> list[str]:
    """Numbers in ``answer`` that no source backs (small counting numbers like 1-10 are let through)."""
    out = []
    for raw in numbers_in_text(answer):
        number = to_decimal(raw)
        if number is not None and number == number.to_integral_value() and 0 <= number <= small:
            continue
        if not is_grounded(raw, sources):
            out.append(raw)
    return out
