"""PDF ingestion: one section per page, searchable, cited by page."""

from __future__ import annotations

from pathlib import Path

from knowledge.service import KnowledgeBase
from tests.unit.knowledge.pdfgen import make_pdf


def test_pdf_pages_are_cited(kb: KnowledgeBase, tmp_path: Path, unique: str) -> None:
    path = tmp_path / "desk" / f"liquidity-study-{unique}.pdf"
    path.parent.mkdir()
    pages = [
        [f"Liquidity study {unique}", "", "Order book depth on BTC/USDT is thinnest between 03:00 and 05:00 UTC."],
        ["Conclusion", "", f"Split orders above 50,000 USDT into slices; the slicing rule is called SLICE-{unique}."],
    ]
    path.write_bytes(make_pdf(pages, f"Liquidity study {unique}"))
    report = kb.ingest_path(path)
    [outcome] = report.documents
    assert (outcome.status, outcome.kind, outcome.chunks, outcome.title) == (
        "added",
        "report",
        2,
        f"Liquidity study {unique}",
    )
    hit = kb.search(f"SLICE-{unique} slicing rule for large orders", k=1)[0]
    assert (hit.source, hit.section) == (str(path), "page 2")
    assert hit.citation == f"Liquidity study {unique} § page 2 ({path})"
    assert [d.status for d in kb.ingest_path(path).documents] == ["unchanged"]
