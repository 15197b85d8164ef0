"""Reading files into titled, chunked documents: Markdown, plain text and PDF (pypdf)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from engine.settings import KnowledgeSettings
from knowledge.chunking import chunk_markdown, chunk_pages, chunk_plain, first_heading, split_front_matter
from knowledge.errors import IngestError
from knowledge.models import Chunk, DocumentKind

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
PDF_SUFFIXES = frozenset({".pdf"})

# a document's kind from words in its file or folder names, nearest first (front matter `kind:` wins)
_KIND_HINTS: tuple[tuple[re.Pattern[str], DocumentKind], ...] = (
    (re.compile(r"risk|polic|limit", re.IGNORECASE), "risk_policy"),
    (re.compile(r"strateg|playbook", re.IGNORECASE), "strategy"),
    (re.compile(r"report|research|analysis|study", re.IGNORECASE), "report"),
    (re.compile(r"journal", re.IGNORECASE), "journal"),
)


@dataclass(frozen=True)
class ParsedDocument:
    """A file read, hashed, titled, classified and chunked; not yet embedded."""

    source: str
    title: str
    kind: DocumentKind
    content_hash: str
    chunks: list[Chunk]
    metadata: dict[str, Any] = field(default_factory=dict)


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def source_of(path: Path) -> str:
    """The stable identity of a file in the store: its absolute, resolved path."""
    return str(path.expanduser().resolve())


def iter_files(root: Path, config: KnowledgeSettings) -> Iterator[Path]:
    """Supported files under ``root`` (recursively, sorted, hidden files and folders skipped), or ``root`` itself."""
    if root.is_file():
        yield root
        return
    suffixes = {s.lower() for s in config.file_suffixes}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_file() and path.suffix.lower() in suffixes:
            yield path


def infer_kind(path: Path, declared: object = None) -> DocumentKind:
    """``kind:`` from front matter if valid, else a hint in the file name or its folders, else ``note``."""
    if isinstance(declared, str) and declared in get_args(DocumentKind):
        return declared  # type: ignore[return-value]  # checked against the Literal just above
    for name in [path.stem, *(parent.name for parent in path.parents)]:
        for pattern, kind in _KIND_HINTS:
            if pattern.search(name):
                return kind
    return "note"


def _title_from_stem(path: Path) -> str:
    return re.sub(r"[-_]+", " ", path.stem).strip() or path.name


def read_bytes(path: Path, config: KnowledgeSettings) -> bytes:
    try:
        size = path.stat().st_size
        if size > config.max_file_bytes:
            raise IngestError(f"{path} is {size:,} bytes, over the {config.max_file_bytes:,}-byte limit")
        return path.read_bytes()
    except OSError as error:
        raise IngestError(f"cannot read {path}: {error.strerror or error}") from None


def _decode(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise IngestError(f"{path} is not UTF-8 text") from None


def parse_file(path: Path, data: bytes, config: KnowledgeSettings, kind: DocumentKind | None = None) -> ParsedDocument:
    """Title, kind, metadata and chunks of a file's bytes, by its suffix."""
    suffix = path.suffix.lower()
    max_tokens, overlap = config.chunk_max_tokens, config.chunk_overlap_tokens
    metadata: dict[str, Any] = {"file_name": path.name, "bytes": len(data)}
    if suffix in PDF_SUFFIXES:
        pdf_title, pages = read_pdf(path, data)
        chunks = chunk_pages(pages, max_tokens, overlap)
        title = pdf_title or _title_from_stem(path)
        metadata |= {"format": "pdf", "pages": len(pages)}
        resolved_kind = kind or infer_kind(path)
    else:
        text = _decode(data, path)
        if suffix in MARKDOWN_SUFFIXES:
            front, body = split_front_matter(text)
            chunks = chunk_markdown(body, max_tokens, overlap)
            title = str(front.get("title") or first_heading(body) or _title_from_stem(path))
            tags = front.get("tags")
            if isinstance(tags, list):
                metadata["tags"] = [str(tag) for tag in tags]
            metadata["format"] = "markdown"
            resolved_kind = kind or infer_kind(path, front.get("kind"))
        else:
            chunks = chunk_plain(text, max_tokens, overlap)
            title = _title_from_stem(path)
            metadata["format"] = "text"
            resolved_kind = kind or infer_kind(path)
    return ParsedDocument(
        source=source_of(path),
        title=title,
        kind=resolved_kind,
        content_hash=content_hash(data),
        chunks=chunks,
        metadata=metadata,
    )


_HYPHENATED = re.compile(r"(?<=[a-z])-\n(?=[a-z])")
_PARAGRAPH_END = re.compile(r"[.!?]['\")\]]?$")
_SHORT_LINE_RATIO = 0.6  # a line under this share of the page's longest line ends a paragraph (or is a heading)


def reflow_pdf_text(text: str) -> str:
    """Undo a PDF's line wrapping: lines of one paragraph joined with spaces, paragraphs separated by blank lines.

    A paragraph ends at a blank line, after a line ending in terminal punctuation, or after a line much shorter
    than the page's longest (a heading, or a paragraph's last line); hyphenation at a line end is removed.
    """
    lines = [" ".join(raw.split()) for raw in _HYPHENATED.sub("", text.replace("\r\n", "\n")).split("\n")]
    short = _SHORT_LINE_RATIO * max((len(line) for line in lines), default=0)
    paragraphs: list[str] = []
    current: list[str] = []
    for line in lines:
        if line:
            current.append(line)
        if current and (not line or _PARAGRAPH_END.search(line) or len(line) < short):
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return "\n\n".join(paragraphs)


def read_pdf(path: Path, data: bytes) -> tuple[str | None, list[str]]:
    """The PDF's title (from its metadata, if any) and the text of each page."""
    from io import BytesIO

    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise IngestError(f"{path} is an encrypted PDF")
        pages = [reflow_pdf_text(page.extract_text() or "") for page in reader.pages]
        title = reader.metadata.title if reader.metadata is not None else None
    except (PyPdfError, ValueError, KeyError, TypeError) as error:
        raise IngestError(f"{path} is not a readable PDF: {error}") from None
    return (str(title).strip() or None) if title else None, pages
