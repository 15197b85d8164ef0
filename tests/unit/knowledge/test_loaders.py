"""Reading files: titles, kinds, PDF text, and clear errors for what cannot be read."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge.config import load_knowledge_config
from knowledge.errors import IngestError
from knowledge.loaders import infer_kind, iter_files, load_file, reflow_pdf_text
from knowledge.parsing import node_parsers
from tests.unit.knowledge.pdfgen import SAMPLE_PDF, make_pdf, sample_pdf

CONFIG = load_knowledge_config()


def _parse(path: Path):
    return load_file(path, CONFIG)


def _sections(document) -> list[tuple[str, str]]:
    nodes = [document]
    for transform in node_parsers(CONFIG.chunk_max_tokens, CONFIG.chunk_overlap_tokens):
        nodes = transform(nodes)
    return [(n.metadata["section"], n.text) for n in nodes]


def test_markdown_title_kind_and_tags(tmp_path: Path) -> None:
    path = tmp_path / "notes" / "my-idea.md"
    path.parent.mkdir()
    path.write_text("---\nkind: risk_policy\ntags: [x]\n---\n# The Title\n\nBody text.\n", encoding="utf-8")
    doc = _parse(path)
    meta = doc.metadata
    assert (meta["title"], meta["kind"], meta["document"]["tags"]) == ("The Title", "risk_policy", ["x"])
    assert doc.id_ == str(path.resolve())
    assert _sections(doc) == [("The Title", "Body text.")]
    path.write_text("No heading here.", encoding="utf-8")
    assert _parse(path).metadata["title"] == "my idea"


@pytest.mark.parametrize(
    ("relative", "declared", "kind"),
    [
        ("strategies/sma.md", None, "strategy"),
        ("research/seasonality.md", None, "report"),
        ("desk/risk-limits.md", None, "risk_policy"),
        ("desk/ideas.md", None, "note"),
        ("desk/ideas.md", "journal", "journal"),
        ("strategies/sma.md", "not-a-kind", "strategy"),
    ],
)
def test_kind_inference(relative: str, declared: str | None, kind: str) -> None:
    assert infer_kind(Path("/kb") / relative, declared) == kind


def test_sample_pdf_is_what_its_generator_makes() -> None:
    assert SAMPLE_PDF.read_bytes() == sample_pdf()


def test_pdf_pages_become_sections(tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(make_pdf([["Alpha page (one)."], ["Beta page, with a \\ backslash."]], "A (Title)"))
    doc = _parse(path)
    meta = doc.metadata
    assert meta["title"] == "A (Title)" and meta["kind"] == "report" and meta["document"]["pages"] == 2
    assert _sections(doc) == [
        ("page 1", "Alpha page (one)."),
        ("page 2", "Beta page, with a \\ backslash."),
    ]


def test_pdf_reflow_joins_wrapped_lines() -> None:
    text = "Heading\nA sentence that was wrapped by the PDF writer across\ntwo lines. And a hyphen-\nated word.\n"
    assert reflow_pdf_text(text) == (
        "Heading\n\nA sentence that was wrapped by the PDF writer across two lines. And a hyphenated word."
    )


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("broken.pdf", b"%PDF-1.4 garbage", "not a readable PDF"),
        ("latin1.md", "caf\xe9".encode("latin-1"), "not UTF-8"),
    ],
)
def test_unreadable_files(tmp_path: Path, name: str, data: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(IngestError, match=message):
        _parse(path)


def test_iter_files_skips_hidden_and_unsupported(tmp_path: Path) -> None:
    for relative in ["a.md", "b/c.txt", "b/d.pdf", "b/e.png", ".git/f.md", "g/.h.md"]:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_files(tmp_path, CONFIG)]
    assert found == ["a.md", "b/c.txt", "b/d.pdf"]
