"""Incremental re-indexing by content hash: unchanged costs no embedding, changed replaces, deleted is pruned."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.settings import KnowledgeSettings
from engine.store.database import Database
from knowledge.errors import IngestError
from knowledge.service import KnowledgeBase
from tests.integration.knowledge.conftest import CountingEmbedder


def _write_docs(folder: Path, unique: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    alpha = folder / "alpha.md"
    alpha.write_text(
        f"# Alpha {unique}\n\n## Entry\n\nBuy the breakout of zorblax{unique} above the range.\n\n"
        f"## Exit\n\nSell when momentum fades.\n",
        encoding="utf-8",
    )
    beta = folder / "notes" / "beta.txt"
    beta.parent.mkdir(exist_ok=True)
    beta.write_text(f"Beta note {unique}: funding rates flipped negative.\n\nShorts paid longs.", encoding="utf-8")
    return alpha, beta


def _chunk_count(db: Database, source: str) -> int:
    with db.connection() as conn:
        row = conn.execute(
            "SELECT count(*) FROM kb_chunks c JOIN kb_documents d ON d.id = c.document_id WHERE d.source = %s",
            (source,),
        ).fetchone()
    return int(row[0]) if row else 0


def test_unchanged_changed_and_deleted(
    db: Database, kb: KnowledgeBase, counting: CountingEmbedder, tmp_path: Path, unique: str
) -> None:
    alpha, beta = _write_docs(tmp_path / "kb", unique)
    first = kb.ingest_path(tmp_path / "kb")
    assert (first.added, first.updated, first.unchanged) == (2, 0, 0)
    assert counting.texts == first.chunks_embedded == _chunk_count(db, str(alpha)) + _chunk_count(db, str(beta))

    counting.reset()
    again = kb.ingest_path(tmp_path / "kb")
    assert (again.added, again.updated, again.unchanged, again.chunks_embedded) == (0, 0, 2, 0)
    assert counting.calls == 0  # no embedding work at all for unchanged files

    counting.reset()
    alpha.write_text(f"# Alpha {unique}\n\nNow we trade the quuxbar{unique} pattern only.\n", encoding="utf-8")
    changed = kb.ingest_path(tmp_path / "kb")
    assert (changed.updated, changed.unchanged) == (1, 1)
    assert counting.texts == changed.chunks_embedded == 1  # only the changed file, only its new chunk
    assert [c.text for c in kb.store.chunks_of(str(alpha))] == [f"Now we trade the quuxbar{unique} pattern only."]
    assert not [h for h in kb.search(f"zorblax{unique}", k=5) if f"zorblax{unique}" in h.text]
    assert kb.search(f"quuxbar{unique}", k=1)[0].source == str(alpha)

    beta.unlink()
    pruned = kb.ingest_path(tmp_path / "kb", prune=True)
    assert [(d.source, d.status) for d in pruned.documents if d.status == "removed"] == [(str(beta), "removed")]
    assert _chunk_count(db, str(beta)) == 0
    assert str(beta) not in {d.source for d in kb.documents()}
    assert kb.prune(tmp_path / "kb") == []  # nothing left to prune


def test_single_file_and_a_file_that_became_empty(kb: KnowledgeBase, tmp_path: Path, unique: str) -> None:
    path = tmp_path / f"single-{unique}.md"
    path.write_text(f"Single file {unique}.", encoding="utf-8")
    report = kb.ingest_path(path)
    assert [(d.status, d.kind, d.chunks) for d in report.documents] == [("added", "note", 1)]
    assert [d.status for d in kb.ingest_path(path).documents] == ["unchanged"]
    forced = kb.ingest_path(path, kind="risk_policy")  # a different kind asked for: re-indexed under it
    assert [(d.status, d.kind) for d in forced.documents] == [("updated", "risk_policy")]
    path.write_text("   \n", encoding="utf-8")
    emptied = kb.ingest_path(path)
    assert [d.status for d in emptied.documents] == ["removed"]
    assert str(path) not in {d.source for d in kb.documents()}


def test_new_chunking_or_embedder_reindexes(
    db: Database, minilm, kb_config: KnowledgeSettings, tmp_path: Path, unique: str
) -> None:
    alpha, _ = _write_docs(tmp_path / "kb", unique)
    KnowledgeBase(db, CountingEmbedder(minilm), kb_config).ingest_path(alpha)

    finer = KnowledgeBase(db, CountingEmbedder(minilm), kb_config.model_copy(update={"chunk_max_tokens": 64}))
    assert [d.status for d in finer.ingest_path(alpha).documents] == ["updated"]

    other = CountingEmbedder(minilm, name="test/other-model")
    renamed = KnowledgeBase(db, other, kb_config.model_copy(update={"chunk_max_tokens": 64}))
    assert [d.status for d in renamed.ingest_path(alpha).documents] == ["updated"]
    assert {h.source for h in renamed.search(f"zorblax{unique}", k=3)} == {str(alpha)}
    # the default model no longer sees vectors it cannot compare with ...
    original = KnowledgeBase(db, CountingEmbedder(minilm), kb_config)
    assert str(alpha) not in {h.source for h in original.search(f"zorblax{unique}", k=50)}
    # ... until the stale documents are re-embedded from their stored chunks
    assert original.reembed_stale() >= 1
    assert original.search(f"zorblax{unique}", k=1)[0].source == str(alpha)


def test_missing_and_unsupported_paths(kb: KnowledgeBase, tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="no such file or folder"):
        kb.ingest_path(tmp_path / "nope")
    (tmp_path / "bad.md").write_bytes(b"\xff\xfe not utf-8 \xff")
    (tmp_path / "good.txt").write_text("Fine text.", encoding="utf-8")
    report = kb.ingest_path(tmp_path)  # in a folder, an unreadable file is skipped with its reason
    assert {(Path(d.source).name, d.status) for d in report.documents} == {("bad.md", "skipped"), ("good.txt", "added")}
    assert "not UTF-8" in (next(d for d in report.documents if d.status == "skipped").reason or "")
    with pytest.raises(IngestError, match="not UTF-8"):
        kb.ingest_path(tmp_path / "bad.md")  # named on its own, it is an error


def _encrypted_pdf() -> bytes:
    from io import BytesIO

    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.encrypt("a password")
    buffer = BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("alpha.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "is a binary file, not text"),
        ("empty.md", b"", "is empty"),  # (an indexed file that became empty is removed: see above)
        ("alpha.md", b"# big\n\n" + b"x" * 50_000_000, "over the 20,000,000-byte limit"),
        ("secret.pdf", None, "is an encrypted PDF"),
    ],
    ids=["binary-renamed-md", "empty", "50-MB", "encrypted-pdf"],
)
def test_a_bad_file_is_named_and_loses_nothing_indexed(
    kb: KnowledgeBase, db: Database, tmp_path: Path, unique: str, name: str, data: bytes | None, message: str
) -> None:
    alpha, _ = _write_docs(tmp_path, unique)
    kb.ingest_path(alpha)
    before = _chunk_count(db, str(alpha))
    assert before > 0
    bad = tmp_path / name
    bad.write_bytes(_encrypted_pdf() if data is None else data)  # alpha.md itself turns bad in three of the cases
    with pytest.raises(IngestError, match=message) as raised:
        kb.ingest_path(bad)
    assert str(bad) in str(raised.value)  # the error names the file
    assert _chunk_count(db, str(alpha)) == before  # what was indexed is still there, whole
    assert kb.search(f"zorblax{unique}", k=1)[0].source == str(alpha)
    assert _chunk_count(db, str(bad)) == (before if bad == alpha else 0)  # nothing half-written
