"""The latest known price of each symbol, from the stored series (replayed real data or live-built bars)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from pydantic import BaseModel

from engine.data.store import BarStore, SeriesInfo, make_key
from engine.data.timeframes import timeframe_ms


class LastPrice(BaseModel):
    symbol: str
    price: Decimal
    ts: datetime
    source: str  # exchange:symbol:timeframe it was read from


def _best(series: list[SeriesInfo]) -> SeriesInfo:
    """The series whose last bar closes latest (then the finest timeframe)."""
    return max(series, key=lambda s: ((s.last_ts or 0) + timeframe_ms(s.timeframe), -timeframe_ms(s.timeframe)))


def last_prices(store: BarStore, symbols: list[str] | None = None) -> dict[str, LastPrice]:
    """The last close of the freshest stored series of each symbol (all stored symbols by default)."""
    by_symbol: dict[str, list[SeriesInfo]] = {}
    for info in store.series():
        if info.rows and (symbols is None or info.symbol in symbols):
            by_symbol.setdefault(info.symbol, []).append(info)
    out: dict[str, LastPrice] = {}
    for symbol, candidates in by_symbol.items():
        best = _best(candidates)
        assert best.last_ts is not None
        bar = store.read_bars(make_key(best.exchange, best.symbol, best.timeframe), best.last_ts, best.last_ts + 1)
        out[symbol] = LastPrice(
            symbol=symbol,
            price=Decimal(repr(float(bar["close"].iloc[-1]))),
            ts=datetime.fromtimestamp((best.last_ts + timeframe_ms(best.timeframe)) / 1000, tz=UTC),
            source=f"{best.exchange}:{best.symbol}:{best.timeframe}",
        )
    return out
