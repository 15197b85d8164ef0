"""Markdown-aware chunking: heading paths kept, sizes bounded, overlap between neighbours, nothing lost."""

from __future__ import annotations

import itertools
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from knowledge.chunking import (
    chunk_markdown,
    chunk_pages,
    chunk_plain,
    count_tokens,
    first_heading,
    split_front_matter,
    split_markdown_sections,
)

LONG_SECTION = " ".join(f"Rule {i} says the desk keeps position number {i} under review." for i in range(60))

DOC = f"""---
title: Crafted
kind: strategy
tags: [a, b]
---
Preamble before any heading.

# Playbook

Intro of the playbook.

## Entries

Enter on a close above the band.

```python
# this is a comment, not a heading
threshold = 2

print(threshold)
```

## Exits

{LONG_SECTION}

### Stops *and* targets ###

A 6% stop.

Sizing Rules
------------

Risk 1% per trade.

# Appendix

Notes.
"""


def test_sections_follow_the_heading_path() -> None:
    front, body = split_front_matter(DOC)
    assert front == {"title": "Crafted", "kind": "strategy", "tags": ["a", "b"]}
    assert first_heading(body) == "Playbook"
    names = [s.name for s in split_markdown_sections(body)]
    assert names == [
        "",
        "Playbook",
        "Playbook > Entries",
        "Playbook > Exits",
        "Playbook > Exits > Stops and targets",
        "Playbook > Sizing Rules",  # setext level 2 closes the level-3 heading
        "Appendix",
    ]


def test_code_fences_stay_whole_and_hide_hashes() -> None:
    chunks = chunk_markdown(DOC, 160, 32)
    entries = [c for c in chunks if c.section == "Playbook > Entries"]
    assert len(entries) == 1
    assert "# this is a comment, not a heading\nthreshold = 2\n\nprint(threshold)\n```" in entries[0].text
    assert not any("comment, not a heading" in c.section for c in chunks)


def test_sizes_bounded_and_overlap_within_a_section() -> None:
    max_tokens, overlap = 60, 12
    chunks = chunk_markdown(DOC, max_tokens, overlap)
    assert [c.ord for c in chunks] == list(range(len(chunks)))
    assert all(0 < count_tokens(c.text) == c.tokens <= max_tokens for c in chunks)
    exits = [c for c in chunks if c.section == "Playbook > Exits"]
    assert len(exits) >= 3
    for before, after in itertools.pairwise(exits):
        # the next chunk starts with the previous chunk's last sentence(s): the overlap
        first_sentence = re.split(r"(?<=\.)\s", after.text)[0]
        assert before.text.endswith(first_sentence), before.text[-80:]
        assert count_tokens(first_sentence) <= overlap
    # every sentence of the section appears, in order, in some chunk
    sentences = re.split(r"(?<=\.)\s", LONG_SECTION)
    joined = " ".join(c.text for c in exits)
    positions = [joined.find(s) for s in sentences]
    assert -1 not in positions and positions == sorted(positions)


def test_no_overlap_across_sections() -> None:
    chunks = chunk_markdown(DOC, 60, 12)
    stops = [c for c in chunks if c.section.endswith("Stops and targets")]
    assert [c.text for c in stops] == ["A 6% stop."]


def test_front_matter_is_not_content() -> None:
    chunks = chunk_markdown(DOC, 160, 32)
    assert chunks[0].section == "" and chunks[0].text == "Preamble before any heading."
    assert not any("tags:" in c.text for c in chunks)


def test_oversized_units_are_split_down_to_words() -> None:
    one_sentence = " ".join(["word"] * 500)  # no punctuation, one line
    giant_token = "x" * 10 + "/" + "y" * 10  # a URL-like word of 3 tokens
    chunks = chunk_plain(one_sentence + "\n\n" + " ".join([giant_token] * 40), 50, 10)
    assert all(count_tokens(c.text) <= 50 for c in chunks)
    assert sum(c.text.count("word") for c in chunks) >= 500


def test_pages_are_sections() -> None:
    chunks = chunk_pages(["First page text.", "", "Third page.\n\nSecond paragraph."], 100, 10)
    assert [(c.section, c.text) for c in chunks] == [
        ("page 1", "First page text."),
        ("page 3", "Third page.\n\nSecond paragraph."),
    ]


WORDS = st.text(alphabet="abcdefghij .,!\n#-", min_size=0, max_size=2000)


@settings(max_examples=150, deadline=None)
@given(text=WORDS, max_tokens=st.integers(8, 80), overlap_ratio=st.floats(0, 0.5))
def test_property_bounded_and_complete(text: str, max_tokens: int, overlap_ratio: float) -> None:
    overlap = int(max_tokens * overlap_ratio)
    chunks = chunk_markdown(text, max_tokens, overlap)
    assert all(0 < c.tokens <= max_tokens and c.tokens == count_tokens(c.text) for c in chunks)
    assert [c.ord for c in chunks] == list(range(len(chunks)))
    # every word of every section body survives (headings move into `section`)
    for section in split_markdown_sections(text):
        words = re.findall(r"\w+", section.body)
        got = [w for c in chunks if c.section == section.name for w in re.findall(r"\w+", c.text)]
        assert set(words) <= set(got)
