"""Node parsing: LlamaIndex's ``MarkdownNodeParser`` (one node per heading), then ``SentenceSplitter`` (bounded size
with overlap), with the heading path kept as the node's ``section`` (the citation).

Sizes are counted in tokens, a token being a word or a punctuation mark (close to BERT's basic tokenizer before
word pieces), so no tiktoken encoding is needed. What is embedded for a node: its document title and section,
then its text (context helps recall); the other metadata stays out of the embedding.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

from llama_index.core.node_parser import MarkdownNodeParser, SentenceSplitter
from llama_index.core.schema import BaseNode, NodeRelationship, TextNode, TransformComponent

PARSER_VERSION: Final = "li1"
SECTION_SEPARATOR: Final = " > "
EMBEDDED_KEYS: Final = ("title", "section")

_TOKEN = re.compile(r"\w+|[^\w\s]")
_HEADING = re.compile(r"^(#+)\s+(.*?)\s*#*\s*$")


def word_tokens(text: str) -> list[str]:
    """Words and punctuation marks: the splitter's tokenizer."""
    return _TOKEN.findall(text)


_SENTENCE = re.compile(r".*?(?:[.!?;:]+(?=\s)\s*|$)", re.DOTALL)


def split_sentences(text: str) -> list[str]:
    """Sentences with their trailing whitespace (they join back to ``text``): the splitter's sentence step, in
    place of nltk's punkt (no corpus files to load)."""
    return [piece for piece in _SENTENCE.findall(text) if piece]


def count_tokens(text: str) -> int:
    return sum(1 for _ in _TOKEN.finditer(text))


def chunking_signature(max_tokens: int, overlap_tokens: int) -> str:
    """What a stored document was chunked with; a change means its chunks must be rebuilt."""
    return f"{PARSER_VERSION}:max={max_tokens}:overlap={overlap_tokens}"


def _clean(title: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[*_`]+", "", title)).strip()


class HeadingSections(TransformComponent):
    """After ``MarkdownNodeParser``: the node's heading path as ``section`` ("A > B"), the heading line removed from
    its text, heading-only nodes dropped, then each split by ``SentenceSplitter`` into pieces of at most
    ``max_tokens`` sharing up to ``overlap_tokens``; only title and section are embedded with the text."""

    max_tokens: int
    overlap_tokens: int

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[BaseNode]:
        splitter = SentenceSplitter(
            chunk_size=self.max_tokens,
            chunk_overlap=self.overlap_tokens,
            tokenizer=word_tokens,
            chunking_tokenizer_fn=split_sentences,
            paragraph_separator="\n\n",
        )
        out: list[BaseNode] = []
        for node in nodes:
            if not isinstance(node, TextNode):
                continue
            metadata = dict(node.metadata)
            parents = [_clean(p) for p in str(metadata.pop("header_path", "")).strip("/").split("/") if p]
            first, _, rest = node.text.partition("\n")
            heading = _HEADING.match(first)
            text = node.text
            if heading:
                parents.append(_clean(heading.group(2)))
                text = rest
            text = text.strip()
            if not text:
                continue
            metadata["section"] = SECTION_SEPARATOR.join(p for p in parents if p)
            excluded = [k for k in metadata if k not in EMBEDDED_KEYS]
            for piece in splitter.split_text(text):
                out.append(
                    TextNode(
                        text=piece,
                        metadata=dict(metadata),
                        excluded_embed_metadata_keys=excluded,
                        excluded_llm_metadata_keys=excluded,
                        metadata_template="{value}",
                        metadata_separator="\n",
                        relationships={k: v for k, v in node.relationships.items() if k == NodeRelationship.SOURCE},
                    )
                )
        return out


def node_parsers(max_tokens: int, overlap_tokens: int) -> list[TransformComponent]:
    """The transformations from a ``Document`` to sized, sectioned nodes (embedding comes after them)."""
    return [MarkdownNodeParser(), HeadingSections(max_tokens=max_tokens, overlap_tokens=overlap_tokens)]
