"""The latest known price of each symbol, from the stored series (``engine.data.provider``, purpose "quote")."""

from __future__ import annotations

from engine.data.provider import MarketData
from engine.data.quote import Quote
from engine.data.store import BarStore

LastPrice = Quote
"""The former name of :class:`~engine.data.quote.Quote` (``source`` is its ``series``)."""


def last_prices(store: BarStore, symbols: list[str] | None = None) -> dict[str, Quote]:
    """The last price of each symbol asked for (every stored symbol by default), by the provider's quote rule;
    symbols nothing stored matches are left out."""
    return MarketData(store).quotes(symbols)
