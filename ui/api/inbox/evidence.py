"""What the inbox shows of the evidence a requester linked (backtest and study ids, notes, URLs).

``evidence_summary`` gives the key figures of a linked backtest run or study (total return, Sharpe, max
drawdown, trades...) as a flat ``{label: text}`` dict, shown under the evidence link; None for other kinds.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel

from approvals.service import Evidence
from engine.store.database import Database


class EvidenceView(BaseModel):
    kind: str
    ref: str
    label: str | None
    href: str | None  # a link the page may follow (http(s) URLs only)
    summary: dict[str, str] | None


def evidence_summary(evidence: Evidence, db: Database | None = None) -> dict[str, str] | None:
    """Key figures of a linked backtest run or study (None without a database, for other kinds, or when the id
    names nothing stored: the page then shows the bare reference)."""
    if db is None:
        return None
    from engine.research.service import evidence_figures

    return evidence_figures(db, evidence.kind, evidence.ref)


def evidence_href(evidence: Evidence) -> str | None:
    """Where the link points: only http(s) URLs given as ``url`` evidence (never javascript: or data:)."""
    if evidence.kind != "url":
        return None
    parts = urlsplit(evidence.ref)
    return evidence.ref if parts.scheme in ("http", "https") and parts.netloc else None


def evidence_views(items: list[Evidence], db: Database | None = None) -> list[EvidenceView]:
    return [
        EvidenceView(kind=e.kind, ref=e.ref, label=e.label, href=evidence_href(e), summary=evidence_summary(e, db))
        for e in items
    ]
