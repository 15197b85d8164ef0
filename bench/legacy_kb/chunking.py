"""Chunking: Markdown by heading path then paragraphs, plain text by paragraphs, PDFs by page.

Sizes are counted in tokens, a token being a word or a punctuation mark (close to BERT's basic tokenizer before
word pieces). Every chunk holds at most ``max_tokens``; consecutive chunks of one section share up to
``overlap_tokens`` of trailing text, so a sentence cut at a boundary is still whole in one of them. Chunks never
span two sections or two pages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import yaml

from knowledge.models import Chunk  # the old chunker, kept as the reference of `iqts bench knowledge`

CHUNKER_VERSION: Final = "1"
SECTION_SEPARATOR: Final = " > "

_TOKEN = re.compile(r"\w+|[^\w\s]")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")
_LIST_OR_QUOTE = re.compile(r"^ {0,3}([-*+>]|\d+[.)])\s")


def count_tokens(text: str) -> int:
    """Words and punctuation marks in ``text``."""
    return sum(1 for _ in _TOKEN.finditer(text))


def chunking_signature(max_tokens: int, overlap_tokens: int) -> str:
    """What a stored document was chunked with; a change means its chunks must be rebuilt."""
    return f"v{CHUNKER_VERSION}:max={max_tokens}:overlap={overlap_tokens}"


@dataclass(frozen=True)
class Section:
    """A run of Markdown under one heading path (empty path: text before the first heading)."""

    path: tuple[str, ...]
    body: str

    @property
    def name(self) -> str:
        return SECTION_SEPARATOR.join(self.path)


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


def split_markdown_sections(text: str) -> list[Section]:
    """Sections by ATX (``## x``) and setext (``x`` over ``---``) headings, ignoring ``#`` inside code fences."""
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    body: list[str] = []
    fence: str | None = None

    def flush() -> None:
        content = "\n".join(body).strip("\n")
        if content.strip():
            sections.append(Section(tuple(title for _, title in path), content))
        body.clear()

    def open_heading(level: int, title: str) -> None:
        flush()
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, _clean_heading(title)))

    for line in text.splitlines():
        fence_match = _FENCE.match(line)
        if fence is not None:
            body.append(line)
            if fence_match and fence_match.group(1)[0] == fence[0] and len(fence_match.group(1)) >= len(fence):
                fence = None
            continue
        if fence_match:
            fence = fence_match.group(1)
            body.append(line)
            continue
        atx = _ATX.match(line)
        if atx:
            open_heading(len(atx.group(1)), atx.group(2) or "")
            continue
        setext = _SETEXT.match(line)
        if setext and body and _is_setext_title(body):
            title = body.pop()
            open_heading(1 if setext.group(1)[0] == "=" else 2, title)
            continue
        body.append(line)
    flush()
    return sections


def _is_setext_title(body: list[str]) -> bool:
    """The last body line is a one-line paragraph that may be underlined into a heading."""
    last = body[-1]
    if not last.strip() or _LIST_OR_QUOTE.match(last) or last.startswith(("    ", "\t")):
        return False
    return len(body) == 1 or not body[-2].strip()


def _clean_heading(title: str) -> str:
    title = re.sub(r"[*_`]+", "", title).strip()
    return re.sub(r"\s+", " ", title)


def first_heading(text: str) -> str | None:
    """The first level-1 heading of a Markdown text, if any."""
    for section in split_markdown_sections(text):
        if section.path:
            return section.path[0]
    return None


@dataclass(frozen=True)
class _Piece:
    text: str
    tokens: int
    joiner: str  # what separates it from the piece before it inside one chunk


def _blocks(body: str) -> list[str]:
    """Paragraphs separated by blank lines; a fenced code block stays one block even with blank lines inside."""
    blocks: list[str] = []
    current: list[str] = []
    fence: str | None = None
    for line in body.splitlines():
        fence_match = _FENCE.match(line)
        if fence is None and fence_match:
            fence = fence_match.group(1)
        elif fence is not None and fence_match and fence_match.group(1)[0] == fence[0]:
            fence = None
        if fence is None and not line.strip():
            if current:
                blocks.append("\n".join(current))
                current = []
            continue
        current.append(line)
    if current:
        blocks.append("\n".join(current))
    return blocks


def _split_words(text: str, max_tokens: int) -> list[str]:
    """Greedy runs of whole words of at most ``max_tokens`` (a single over-long word is cut by tokens)."""
    parts: list[str] = []
    current: list[str] = []
    used = 0
    for word in text.split():
        cost = count_tokens(word)
        if cost > max_tokens:  # e.g. a long URL or hash: split on its tokens
            tokens = _TOKEN.findall(word)
            for start in range(0, len(tokens), max_tokens):
                if current:
                    parts.append(" ".join(current))
                    current, used = [], 0
                parts.append("".join(tokens[start : start + max_tokens]))
            continue
        if current and used + cost > max_tokens:
            parts.append(" ".join(current))
            current, used = [], 0
        current.append(word)
        used += cost
    if current:
        parts.append(" ".join(current))
    return parts


def _pieces(block: str, max_tokens: int) -> list[_Piece]:
    """A block as pieces of at most ``max_tokens``: whole, else by lines, else by sentences, else by words."""
    tokens = count_tokens(block)
    if tokens <= max_tokens:
        return [_Piece(block, tokens, "\n\n")]
    lines = [line for line in block.split("\n") if line.strip()]
    pieces: list[_Piece] = []
    for line in lines:
        pieces.extend(_line_pieces(line, max_tokens, "\n" if len(lines) > 1 else " "))
    pieces[0] = _Piece(pieces[0].text, pieces[0].tokens, "\n\n")  # a block starts a paragraph
    return pieces


def _line_pieces(line: str, max_tokens: int, joiner: str) -> list[_Piece]:
    """One line as pieces: whole, else by sentences, else by runs of words."""
    tokens = count_tokens(line)
    if tokens <= max_tokens:
        return [_Piece(line, tokens, joiner)]
    pieces: list[_Piece] = []
    for sentence in (s for s in _SENTENCE_END.split(line) if s.strip()):
        parts = [sentence] if count_tokens(sentence) <= max_tokens else _split_words(sentence, max_tokens)
        for part in parts:
            pieces.append(_Piece(part, count_tokens(part), joiner if not pieces else " "))
    return pieces


def _tail(pieces: Sequence[_Piece], overlap_tokens: int) -> list[_Piece]:
    """The trailing pieces (or, failing that, trailing words) worth at most ``overlap_tokens``."""
    if overlap_tokens <= 0 or not pieces:
        return []
    kept: list[_Piece] = []
    used = 0
    for piece in reversed(pieces):
        if used + piece.tokens > overlap_tokens:
            break
        kept.insert(0, piece)
        used += piece.tokens
    if kept:
        return kept
    words = pieces[-1].text.split()
    tail: list[str] = []
    for word in reversed(words):
        cost = count_tokens(word)
        if used + cost > overlap_tokens:
            break
        tail.insert(0, word)
        used += cost
    return [_Piece(" ".join(tail), used, "\n\n")] if tail else []


def _pack(pieces: Iterable[_Piece], max_tokens: int, overlap_tokens: int) -> list[tuple[str, int]]:
    """Greedy packing of pieces into chunks of at most ``max_tokens``, carrying an overlap between them."""
    chunks: list[tuple[str, int]] = []
    current: list[_Piece] = []
    fresh = 0  # pieces in ``current`` that are not overlap from the previous chunk

    def emit() -> None:
        text = "".join((p.joiner if i else "") + p.text for i, p in enumerate(current))
        chunks.append((text.strip(), sum(p.tokens for p in current)))

    for piece in pieces:
        used = sum(p.tokens for p in current)
        if current and used + piece.tokens > max_tokens:
            if fresh:
                emit()
                current = _tail(current, overlap_tokens)
                fresh = 0
            while current and sum(p.tokens for p in current) + piece.tokens > max_tokens:
                current.pop(0)
        current.append(piece)
        fresh += 1
    if fresh:
        emit()
    return chunks


def chunk_plain(text: str, max_tokens: int, overlap_tokens: int, *, section: str = "", start: int = 0) -> list[Chunk]:
    """Plain text (one section) by paragraphs, numbered from ``start``."""
    pieces = [piece for block in _blocks(text) for piece in _pieces(block, max_tokens)]
    packed = [(body, tokens) for body, tokens in _pack(pieces, max_tokens, overlap_tokens) if body]
    return [Chunk(ord=start + i, section=section, text=body, tokens=tokens) for i, (body, tokens) in enumerate(packed)]


def chunk_markdown(text: str, max_tokens: int, overlap_tokens: int) -> list[Chunk]:
    """Markdown by heading path (the chunk's ``section``), then by paragraphs within each section."""
    _, text = split_front_matter(text)
    chunks: list[Chunk] = []
    for section in split_markdown_sections(text):
        chunks.extend(chunk_plain(section.body, max_tokens, overlap_tokens, section=section.name, start=len(chunks)))
    return chunks


def chunk_pages(pages: Sequence[str], max_tokens: int, overlap_tokens: int) -> list[Chunk]:
    """Extracted PDF pages, each its own section ``page N`` (1-based); empty pages give no chunk."""
    chunks: list[Chunk] = []
    for number, page in enumerate(pages, start=1):
        chunks.extend(chunk_plain(page, max_tokens, overlap_tokens, section=f"page {number}", start=len(chunks)))
    return chunks
