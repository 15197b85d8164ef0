"""A small hand-written prompt list for timing the agent (``iqts bench agent``): everyday questions across the tools,
written as people write them (words for timeframes and quantities, names instead of symbols). Timing only: whether
the answers are right is the eval harness's job, not this list's."""

from __future__ import annotations

from typing import Final

PROMPTS: Final[tuple[str, ...]] = (
    "What is the last BTC/USD price?",
    "Which market data series are stored?",
    "Show me my portfolio.",
    "Backtest sma_cross on ETH/USD with daily bars.",
    "Is the kill switch engaged?",
    "List the pending approval requests.",
    "How did bitcoin trade over the last week, hourly?",
    "What does walk-forward validation protect against?",
)
