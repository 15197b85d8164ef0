"""Streamed local-model replies carry token counts (from llama.cpp's timings), so `iqts eval` can report them."""

from __future__ import annotations

from agent.models.local import usage_from_timings


def test_usage_counts_the_cached_prompt_and_the_generated_tokens() -> None:
    usage = usage_from_timings({"prompt_n": 12, "cache_n": 800, "predicted_n": 40, "predicted_ms": 4000.0})
    assert usage == {"input_tokens": 812, "output_tokens": 40, "total_tokens": 852}


def test_no_timings_means_no_usage() -> None:
    assert usage_from_timings(None) is None
    assert usage_from_timings({}) is None
