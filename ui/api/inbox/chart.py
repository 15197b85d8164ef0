"""A candlestick chart of the recent stored bars of a symbol, as inline SVG rendered on the server.

The series is the freshest stored one of the symbol (the same choice ``engine.data.market.last_prices``
makes for the risk check), so the approver sees the prices the check judged against. The proposed price
(or the last price, for orders without one) is drawn as a horizontal line.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final, Literal

from markupsafe import Markup, escape
from pydantic import BaseModel

from engine.data.market import last_prices
from engine.data.store import BarStore, make_key
from engine.data.timeframes import timeframe_ms
from engine.store.database import Database

DEFAULT_BARS: Final = 100

_WIDTH: Final = 760
_HEIGHT: Final = 320
_LEFT: Final = 8
_RIGHT: Final = 680  # price labels to the right of the plot
_TOP: Final = 14
_BOTTOM: Final = 284
_TICKS: Final = 5


class Candle(BaseModel):
    ts: int  # bar open time, ms since the epoch (UTC)
    open: float
    high: float
    low: float
    close: float


class Marker(BaseModel):
    price: float
    label: str
    kind: Literal["proposed", "stop", "last"]


class Chart(BaseModel):
    symbol: str
    source: str  # exchange:symbol:timeframe
    timeframe: str
    candles: list[Candle]
    markers: list[Marker]
    last_price: float
    last_ts: datetime  # when the last bar closes


def load_chart(db: Database, symbol: str, intent: dict[str, object], *, bars: int = DEFAULT_BARS) -> Chart | None:
    """The last ``bars`` bars of the symbol's freshest stored series, with the order's prices marked."""
    price = last_prices(BarStore(db), [symbol]).get(symbol)
    if price is None:
        return None
    exchange, stored_symbol, timeframe = price.source.split(":")  # BTC/USDT may be priced from BTC/USD
    step = timeframe_ms(timeframe)
    end = int(price.ts.timestamp() * 1000)  # the close of the last bar
    frame = BarStore(db).read_bars(make_key(exchange, stored_symbol, timeframe), end - bars * step, end)
    frame = frame.dropna(subset=["open", "high", "low", "close"])
    candles = [
        Candle(ts=int(r.ts), open=float(r.open), high=float(r.high), low=float(r.low), close=float(r.close))
        for r in frame.itertuples(index=False)
    ]
    markers: list[Marker] = []
    if intent.get("price") is not None:
        markers.append(Marker(price=float(Decimal(str(intent["price"]))), label="proposed", kind="proposed"))
    if intent.get("stop_price") is not None:
        markers.append(Marker(price=float(Decimal(str(intent["stop_price"]))), label="stop", kind="stop"))
    if not markers:
        markers.append(Marker(price=float(price.price), label="last (market order)", kind="last"))
    return Chart(
        symbol=symbol,
        source=price.source,
        timeframe=timeframe,
        candles=candles,
        markers=markers,
        last_price=float(price.price),
        last_ts=price.ts,
    )


def _nice_step(span: float, ticks: int) -> float:
    raw = span / max(ticks, 1)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 2.5, 5.0, 10.0):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10.0 * magnitude


def _price_text(value: float, step: float) -> str:
    decimals = max(0, min(8, -math.floor(math.log10(step)) + 1)) if step < 1 else 0
    return f"{value:,.{decimals}f}"


def _time_text(ts_ms: int, timeframe: str) -> str:
    moment = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%d") if timeframe_ms(timeframe) >= 86_400_000 else moment.strftime("%m-%d %H:%M")


def render_svg(chart: Chart) -> Markup:
    """The chart as an ``<svg>`` element (numbers and escaped text only; styled by classes in inbox.css)."""
    candles = chart.candles
    prices = [c.low for c in candles] + [c.high for c in candles] + [m.price for m in chart.markers]
    low, high = min(prices), max(prices)
    if high <= low:
        high, low = high * 1.01 + 1e-9, low * 0.99
    pad = (high - low) * 0.04
    low, high = low - pad, high + pad

    def y(price: float) -> float:
        return _TOP + (high - price) / (high - low) * (_BOTTOM - _TOP)

    parts: list[str] = [
        f'<svg class="chart" viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" xmlns="http://www.w3.org/2000/svg" '
        f'aria-label="{escape(chart.symbol)} candlestick chart, {len(candles)} bars of {escape(chart.timeframe)}">',
        f"<title>{escape(chart.symbol)} · {escape(chart.source)}</title>",
        f'<rect class="plot" x="{_LEFT}" y="{_TOP}" width="{_RIGHT - _LEFT}" height="{_BOTTOM - _TOP}"/>',
    ]
    step = _nice_step(high - low, _TICKS)
    tick = math.ceil(low / step) * step
    while tick <= high:
        ty = y(tick)
        parts.append(f'<line class="grid" x1="{_LEFT}" x2="{_RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}"/>')
        parts.append(f'<text class="axis" x="{_RIGHT + 6}" y="{ty + 4:.1f}">{_price_text(tick, step)}</text>')
        tick += step
    if candles:
        slot = (_RIGHT - _LEFT) / len(candles)
        body = max(1.0, slot * 0.64)
        for i, c in enumerate(candles):
            cx = _LEFT + (i + 0.5) * slot
            direction = "up" if c.close >= c.open else "down"
            top, bottom = y(max(c.open, c.close)), y(min(c.open, c.close))
            parts.append(
                f'<g class="candle {direction}"><line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(c.high):.1f}" '
                f'y2="{y(c.low):.1f}"/><rect x="{cx - body / 2:.1f}" y="{top:.1f}" width="{body:.1f}" '
                f'height="{max(bottom - top, 1.0):.1f}"/></g>'
            )
        for i in sorted({0, len(candles) // 2, len(candles) - 1}):
            cx = _LEFT + (i + 0.5) * slot
            anchor = "start" if i == 0 else "end" if i == len(candles) - 1 else "middle"
            parts.append(
                f'<text class="axis" x="{cx:.1f}" y="{_BOTTOM + 18}" text-anchor="{anchor}">'
                f"{escape(_time_text(candles[i].ts, chart.timeframe))}</text>"
            )
    else:
        parts.append(f'<text class="axis" x="{_WIDTH / 2}" y="{_HEIGHT / 2}" text-anchor="middle">no bars</text>')
    for marker in chart.markers:
        my = y(marker.price)
        parts.append(
            f'<g class="marker {marker.kind}"><line x1="{_LEFT}" x2="{_RIGHT}" y1="{my:.1f}" y2="{my:.1f}"/>'
            f'<rect class="tag" x="{_RIGHT + 2}" y="{my - 9:.1f}" width="{_WIDTH - _RIGHT - 4}" height="18" rx="3"/>'
            f'<text x="{_RIGHT + 6}" y="{my + 4:.1f}">{_price_text(marker.price, step)}</text>'
            f'<text class="label" x="{_LEFT + 6}" y="{my - 5:.1f}">{escape(marker.label)}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (numbers and escaped text only)
