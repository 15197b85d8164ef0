"""Reading files into LlamaIndex ``Document``s: Markdown, plain text and PDF (pypdf), each a ``BaseReader``.

A file becomes one ``Document`` whose id is its resolved path, with its title, kind and origin as metadata.
Markdown keeps its headings (front matter removed); a PDF's pages become ``# page N`` sections, so the node parser
cites them as sections. Every refusal is an ``IngestError`` naming the file: outside the allowed folders, too
large, empty, binary, not UTF-8, an encrypted or unreadable PDF.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import yaml
from llama_index.core.readers.base import BaseReader
from llama_index.core.schema import Document

from engine.settings import KnowledgeSettings
from knowledge.errors import IngestError
from knowledge.models import DocumentKind

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
PDF_SUFFIXES = frozenset({".pdf"})

# a document's kind from words in its file or folder names, nearest first (front matter `kind:` wins)
_KIND_HINTS: tuple[tuple[re.Pattern[str], DocumentKind], ...] = (
    (re.compile(r"risk|polic|limit", re.IGNORECASE), "risk_policy"),
    (re.compile(r"strateg|playbook", re.IGNORECASE), "strategy"),
    (re.compile(r"glossar", re.IGNORECASE), "glossary"),
    (re.compile(r"report|research|analysis|study", re.IGNORECASE), "report"),
    (re.compile(r"journal", re.IGNORECASE), "journal"),
)
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_ATX = re.compile(r"^ {0,3}#\s+(.+?)(?:\s+#+)?\s*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_BINARY_SNIFF = 8192


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def source_of(path: Path) -> str:
    """The stable identity of a file in the store: its absolute, resolved path."""
    return str(path.expanduser().resolve())


def allowed_roots(config: KnowledgeSettings) -> list[Path]:
    """The folders files may be added from (``IQTS_KB_ALLOWED_ROOTS``) and the bundled samples, resolved."""
    samples = Path(__file__).resolve().parent / "samples"
    return [*(Path(root).expanduser().resolve() for root in config.allowed_roots), samples]


def check_allowed(path: Path, config: KnowledgeSettings) -> Path:
    """The resolved path, if it lies inside an allowed folder (symbolic links are followed first)."""
    resolved = path.expanduser().resolve()
    roots = allowed_roots(config)
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        where = ", ".join(str(r) for r in roots) or "none configured"
        raise IngestError(
            f"{resolved} is outside the folders the knowledge base may read ({where}; IQTS_KB_ALLOWED_ROOTS)"
        )
    return resolved


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


def title_from_stem(path: Path) -> str:
    return re.sub(r"[-_]+", " ", path.stem).strip() or path.name


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """YAML front matter (``---`` ... ``---`` at the very top) as a dict, and the rest of the text."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return {}, text
    if not isinstance(data, dict):
        return {}, text
    return {str(k): v for k, v in data.items()}, text[match.end() :]


def first_heading(text: str) -> str | None:
    """The first level-1 ATX heading of a Markdown text outside code fences, if any."""
    fence = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fence = not fence
            continue
        match = None if fence else _ATX.match(line)
        if match:
            return re.sub(r"\s+", " ", re.sub(r"[*_`]+", "", match.group(1))).strip() or None
    return None


def read_bytes(path: Path, config: KnowledgeSettings) -> bytes:
    """The file's bytes, refused when too large or empty."""
    try:
        size = path.stat().st_size
        if size > config.max_file_bytes:
            raise IngestError(f"{path} is {size:,} bytes, over the {config.max_file_bytes:,}-byte limit")
        data = path.read_bytes()
    except OSError as error:
        raise IngestError(f"cannot read {path}: {error.strerror or error}") from None
    if not data.strip():
        raise IngestError(f"{path} is empty: no text to index")
    return data


def decode_text(data: bytes, path: Path) -> str:
    if b"\x00" in data[:_BINARY_SNIFF]:
        raise IngestError(f"{path} is a binary file, not text (its name says {path.suffix or 'no suffix'})")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise IngestError(f"{path} is not UTF-8 text") from None


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
    from pypdf.errors import DependencyError, PyPdfError

    try:
        reader = PdfReader(BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise IngestError(f"{path} is an encrypted PDF (remove the password first)")
        pages = [reflow_pdf_text(page.extract_text() or "") for page in reader.pages]
        title = reader.metadata.title if reader.metadata is not None else None
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise IngestError(f"{path} is not a readable PDF: {error}") from None
    except DependencyError as error:  # an AES-encrypted PDF without pypdf's crypto extra
        raise IngestError(f"{path} is an encrypted PDF that cannot be opened here: {error}") from None
    return (str(title).strip() or None) if title else None, pages


class _FileReader(BaseReader):
    """Shared shape: one file -> one ``Document`` (id: the resolved path) with title, kind and origin."""

    def __init__(self, config: KnowledgeSettings) -> None:
        self.config = config

    def load_data(self, file: Path, kind: DocumentKind | None = None, **_: Any) -> list[Document]:  # type: ignore[override]
        data = read_bytes(file, self.config)
        text, title, declared, extra = self.parse(file, data)
        if not text.strip():
            raise IngestError(f"{file} has no text to index")
        metadata: dict[str, Any] = {
            "title": title,
            "kind": kind or infer_kind(file, declared),
            "origin": "file",
            "content_hash": content_hash(data),
            "document": {"file_name": file.name, "bytes": len(data), **extra},
        }
        return [Document(id_=source_of(file), text=text, metadata=metadata)]

    def parse(self, path: Path, data: bytes) -> tuple[str, str, object, dict[str, Any]]:
        raise NotImplementedError


class MarkdownFileReader(_FileReader):
    """Markdown: front matter (``title``, ``kind``, ``tags``) read and removed, headings kept for the parser."""

    def parse(self, path: Path, data: bytes) -> tuple[str, str, object, dict[str, Any]]:
        front, body = split_front_matter(decode_text(data, path))
        title = str(front.get("title") or first_heading(body) or title_from_stem(path))
        extra: dict[str, Any] = {"format": "markdown"}
        tags = front.get("tags")
        if isinstance(tags, list):
            extra["tags"] = [str(tag) for tag in tags]
        return body, title, front.get("kind"), extra


class TextFileReader(_FileReader):
    """Plain text: the whole file, titled by its name."""

    def parse(self, path: Path, data: bytes) -> tuple[str, str, object, dict[str, Any]]:
        return decode_text(data, path), title_from_stem(path), None, {"format": "text"}


class PdfFileReader(_FileReader):
    """PDF through pypdf: each page a ``# page N`` section (the citation), wrapped lines reflowed."""

    def parse(self, path: Path, data: bytes) -> tuple[str, str, object, dict[str, Any]]:
        pdf_title, pages = read_pdf(path, data)
        text = "\n\n".join(f"# page {n}\n\n{page}" for n, page in enumerate(pages, start=1) if page.strip())
        return text, pdf_title or title_from_stem(path), None, {"format": "pdf", "pages": len(pages)}


def reader_for(path: Path, config: KnowledgeSettings) -> _FileReader:
    suffix = path.suffix.lower()
    if suffix in PDF_SUFFIXES:
        return PdfFileReader(config)
    if suffix in MARKDOWN_SUFFIXES:
        return MarkdownFileReader(config)
    return TextFileReader(config)


def load_file(path: Path, config: KnowledgeSettings, kind: DocumentKind | None = None) -> Document:
    """The file as one ``Document`` (raises ``IngestError`` naming the file when it cannot be indexed)."""
    [document] = reader_for(path, config).load_data(path, kind)
    return document
