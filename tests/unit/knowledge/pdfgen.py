"""A tiny, dependency-free PDF writer for tests and for ``knowledge/samples/research/btc-volatility-regimes.pdf``.

Pages of Helvetica text with a document title in the Info dictionary; deterministic bytes for the same input.
Run as a script to regenerate the sample: ``uv run python -m tests.unit.knowledge.pdfgen``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

SAMPLE_PDF = Path(__file__).resolve().parents[3] / "knowledge" / "samples" / "research" / "btc-volatility-regimes.pdf"
SAMPLE_TITLE = "BTC volatility regimes and position sizing"
SAMPLE_PAGES = [
    [
        "BTC volatility regimes and position sizing",
        "",
        "Sample research note shipped with IQTS; its figures are illustrative.",
        "",
        "Bitcoin alternates between calm and turbulent regimes. We label each day of the bundled Coinbase BTC/USD "
        "daily history by its 30-day realised volatility: calm below 50% annualised, normal between 50% and 90%, "
        "turbulent above 90%. Turbulent regimes cluster: once entered they last three weeks on average.",
        "",
        "Regime persistence makes volatility targeting attractive. Scaling the position so that expected volatility "
        "stays near 40% annualised cut the worst drawdown of a buy-and-hold position roughly in half, at the cost "
        "of missing part of the 2017 rally.",
    ],
    [
        "Recommendations",
        "",
        "Use a volatility-targeted size for every trend-following strategy on BTC: size equals target volatility "
        "divided by the 30-day realised volatility, capped at one times equity (no leverage).",
        "",
        "In the turbulent regime, halve the maximum order notional and widen stops to two daily average true "
        "ranges; the desk's value-at-risk breaker stays the final guard.",
        "",
        "Re-estimate the regime thresholds every quarter; they drift as the market matures.",
    ],
]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(pages: Sequence[Sequence[str]], title: str, *, width: int = 88) -> bytes:
    """A PDF whose pages hold the given paragraphs (``""`` is a blank line), wrapped at ``width`` characters."""
    objects: list[bytes] = []

    def add(body: str | bytes) -> int:
        objects.append(body.encode("latin-1") if isinstance(body, str) else body)
        return len(objects)

    catalog = add("")  # filled in once the page tree exists
    font = add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    page_ids: list[int] = []
    tree = add("")
    for paragraphs in pages:
        lines: list[str] = []
        for paragraph in paragraphs:
            lines.extend(textwrap.wrap(paragraph, width) or [""])
        ops = ["BT", "/F1 11 Tf", "14 TL", "72 740 Td"]
        ops += [f"({_escape(line)}) Tj T*" for line in lines]
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        page_ids.append(
            add(
                f"<< /Type /Page /Parent {tree} 0 R /MediaBox [0 0 612 792] "
                f"/Resources << /Font << /F1 {font} 0 R >> >> /Contents {content} 0 R >>"
            )
        )
    kids = " ".join(f"{p} 0 R" for p in page_ids)
    objects[tree - 1] = f"<< /Type /Pages /Kids [{kids}] /Count {len(page_ids)} >>".encode("latin-1")
    objects[catalog - 1] = f"<< /Type /Catalog /Pages {tree} 0 R >>".encode("latin-1")
    info = add(f"<< /Title ({_escape(title)}) /Producer (IQTS tests pdfgen) >>")

    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R >>\n" % (len(objects) + 1, catalog, info)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def sample_pdf() -> bytes:
    return make_pdf(SAMPLE_PAGES, SAMPLE_TITLE)


if __name__ == "__main__":
    SAMPLE_PDF.write_bytes(sample_pdf())
