"""The identity of the shipped sample series, importable without pandas (quotes label prices from them)."""

from __future__ import annotations

from typing import Final

BUNDLED_SERIES: Final = frozenset(
    {
        ("coinbase", "BTC/USD", "1h"),
        ("coinbase", "BTC/USD", "1d"),
        ("bitstamp", "BTC/USD", "1d"),
        ("bitstamp", "ETH/USD", "1d"),
        ("bitstamp", "LTC/USD", "1d"),
    }
)
"""(exchange, symbol, timeframe) of every shipped series, known without reading the files (quotes from them are
labelled "sample"); a unit test holds it equal to what ``engine.data.sample.load_sample_series`` loads."""
