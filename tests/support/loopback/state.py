"""Matching state of the loopback exchange: price paths, a market clock, balances, orders and fills.

Pure Python, ``Decimal`` for every price, quantity and balance, guarded by one re-entrant lock so the
HTTP thread and the test thread can both use it.

The market clock
----------------
``clock_ms`` is simulated time. A bar (open time ``ts``, length ``timeframe_ms``) is *closed*, and so
visible, once ``ts + timeframe_ms <= clock_ms``. The *current bar* of a symbol is its last closed bar and
its close is the symbol's last price. Klines, ticker and book never show a bar that is not closed yet:
nothing after the clock leaks. ``advance(n)`` moves the clock ``n`` steps of ``step_ms`` (by default the
shortest timeframe loaded) and, bar by bar in time order across symbols, matches resting orders against
each newly closed bar. Order, fill and trade timestamps are simulated times (the clock when they happened),
consistent with the bars; only ``/api/v3/time`` reports the wall clock (request signing needs it).

Matching rules
--------------
* MARKET orders fill completely and at once at the current bar's close (the last price), as a taker.
  ``quoteOrderQty`` buys/sells ``floor(quoteOrderQty / last, stepSize)``.
* LIMIT orders (GTC) that are marketable on arrival (buy price >= last, sell price <= last) fill completely
  at the last price as a taker; otherwise they rest (NEW). IOC/FOK orders that are not marketable expire.
  LIMIT_MAKER orders that would be marketable are refused (-2010 "Order would immediately match and take.").
* A resting order fills, as a maker and at its own limit price, on the first later bar that crosses it
  (buy: ``low <= price``; sell: ``high >= price``). With ``partial_fill_fraction`` set, the resting orders
  of one side of a symbol share at most ``fraction * bar volume`` per bar (price-time priority), so large
  orders go PARTIALLY_FILLED over several bars.
* Balances: a resting buy locks ``price * qty`` quote, a resting sell locks ``qty`` base. Commission is
  charged on the asset received (base for buys, quote for sells) at the maker or taker rate, rounded half
  up to the market's commission precision. Not enough free balance -> -2010 insufficient balance.
"""

from __future__ import annotations

import calendar
import math
import random
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Literal

from engine.telemetry import get_logger
from tests.support.loopback import errors
from tests.support.loopback.config import LoopbackConfig
from tests.support.loopback.markets import MarketCatalog, MarketSpec

log = get_logger(__name__)

Side = Literal["BUY", "SELL"]
OrderType = Literal["LIMIT", "MARKET", "LIMIT_MAKER"]
TimeInForce = Literal["GTC", "IOC", "FOK"]
OrderStatus = Literal["NEW", "PARTIALLY_FILLED", "FILLED", "CANCELED", "REJECTED", "EXPIRED"]
Number = Decimal | float | int | str

OPEN_STATUSES: frozenset[str] = frozenset({"NEW", "PARTIALLY_FILLED"})

_SECOND = 1_000
_MINUTE = 60 * _SECOND
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR
_WEEK = 7 * _DAY
_WEEK_ORIGIN = 4 * _DAY  # 1970-01-01 was a Thursday; Binance weeks open on Monday 00:00 UTC
MONTH_INTERVAL = "1M"

BINANCE_INTERVALS: dict[str, int] = {
    "1s": _SECOND,
    "1m": _MINUTE,
    "3m": 3 * _MINUTE,
    "5m": 5 * _MINUTE,
    "15m": 15 * _MINUTE,
    "30m": 30 * _MINUTE,
    "1h": _HOUR,
    "2h": 2 * _HOUR,
    "4h": 4 * _HOUR,
    "6h": 6 * _HOUR,
    "8h": 8 * _HOUR,
    "12h": 12 * _HOUR,
    "1d": _DAY,
    "3d": 3 * _DAY,
    "1w": _WEEK,
    MONTH_INTERVAL: 31 * _DAY,  # nominal; month buckets follow the calendar
}
"""Binance spot kline intervals -> length in ms (``1M`` is a calendar month)."""


@dataclass(frozen=True)
class Bar:
    """One OHLCV bar; ``ts`` is its open time in ms."""

    ts: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


@dataclass(frozen=True)
class Kline:
    """A bar as served by /api/v3/klines (possibly aggregated from several base bars)."""

    open_time: int
    close_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    trades: int


@dataclass(frozen=True)
class Ticker24h:
    symbol: str
    open_time: int
    close_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    last: Decimal
    prev_close: Decimal
    volume: Decimal
    quote_volume: Decimal
    bid: Decimal
    bid_qty: Decimal
    ask: Decimal
    ask_qty: Decimal
    last_qty: Decimal
    first_id: int
    last_id: int
    count: int


@dataclass(frozen=True)
class OrderBook:
    last_update_id: int
    bids: list[tuple[Decimal, Decimal]]
    asks: list[tuple[Decimal, Decimal]]


@dataclass(frozen=True)
class Balance:
    asset: str
    free: Decimal
    locked: Decimal

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


@dataclass(frozen=True)
class Fill:
    """One execution of an order (a row of /api/v3/myTrades)."""

    id: int
    order_id: int
    symbol: str
    side: Side
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    is_maker: bool

    @property
    def is_buyer(self) -> bool:
        return self.side == "BUY"


@dataclass
class Order:
    """An order as the exchange keeps it. Objects handed out by ExchangeState are snapshots."""

    order_id: int
    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    price: Decimal
    orig_qty: Decimal
    orig_quote_order_qty: Decimal
    status: OrderStatus
    time: int
    update_time: int
    executed_qty: Decimal = Decimal(0)
    cummulative_quote_qty: Decimal = Decimal(0)
    self_trade_prevention_mode: str = "EXPIRE_MAKER"
    fills: list[Fill] = field(default_factory=list)
    locked: Decimal = Decimal(0)
    """Balance still locked by this order (quote for buys, base for sells)."""

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining_qty(self) -> Decimal:
        return self.orig_qty - self.executed_qty


@dataclass(frozen=True)
class OrderRequest:
    """A validated new-order request (what POST /api/v3/order carries)."""

    symbol: str
    side: Side
    type: OrderType
    quantity: Decimal | None = None
    quote_order_qty: Decimal | None = None
    price: Decimal | None = None
    time_in_force: TimeInForce | None = None
    client_order_id: str | None = None
    self_trade_prevention_mode: str | None = None


@dataclass
class _Series:
    timeframe_ms: int
    bars: list[Bar]
    opens: list[int]
    ends: list[int]


def _dec(value: Number) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _floor_to(value: Decimal, step: Decimal) -> Decimal:
    if step <= 0:
        return value
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


def _round_to(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_HALF_UP) * step


def _multiple_of(value: Decimal, base: Decimal, step: Decimal) -> bool:
    return step <= 0 or (value - base) % step == 0


def _quantize(value: Decimal, decimals: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


def _month_start(ts: int) -> int:
    d = datetime.fromtimestamp(ts / 1000, tz=UTC)
    return calendar.timegm((d.year, d.month, 1, 0, 0, 0)) * 1000


def _next_month_start(ts: int) -> int:
    d = datetime.fromtimestamp(_month_start(ts) / 1000, tz=UTC)
    year, month = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    return calendar.timegm((year, month, 1, 0, 0, 0)) * 1000


def bucket_start(ts: int, interval: str) -> int:
    """Open time of the Binance ``interval`` bucket containing ``ts``."""
    if interval == MONTH_INTERVAL:
        return _month_start(ts)
    step = BINANCE_INTERVALS[interval]
    origin = _WEEK_ORIGIN if interval == "1w" else 0
    return ts - (ts - origin) % step


def bucket_end(ts: int, interval: str) -> int:
    """Open time of the bucket after the one containing ``ts`` (exclusive end)."""
    if interval == MONTH_INTERVAL:
        return _next_month_start(ts)
    return bucket_start(ts, interval) + BINANCE_INTERVALS[interval]


@lru_cache(maxsize=64)
def _random_walk(
    seed_key: str,
    start_ms: int,
    timeframe_ms: int,
    n: int,
    start_price: Decimal,
    volatility: Decimal,
    mean_quote_volume: Decimal,
    tick: Decimal,
    step: Decimal,
) -> tuple[Bar, ...]:
    rng = random.Random(seed_key)
    sigma = float(volatility)
    price = float(start_price)
    tick_f = float(tick)
    bars: list[Bar] = []
    prev_close = max(_floor_to(_dec(price), tick), tick)
    for i in range(n):
        close_f = max(float(prev_close) * math.exp(rng.gauss(0.0, sigma)), tick_f)
        close = max(_round_to(_dec(close_f), tick), tick)
        wick_up = 1.0 + abs(rng.gauss(0.0, sigma / 2))
        wick_down = 1.0 - min(abs(rng.gauss(0.0, sigma / 2)), 0.5)
        high = (_dec(float(max(prev_close, close)) * wick_up) / tick).to_integral_value(ROUND_CEILING) * tick
        low = (_dec(float(min(prev_close, close)) * wick_down) / tick).to_integral_value(ROUND_FLOOR) * tick
        low = max(low, tick)
        quote_volume = float(mean_quote_volume) * (0.5 + rng.random())
        volume = max(_floor_to(_dec(quote_volume / float(close)), step), step)
        bars.append(Bar(start_ms + i * timeframe_ms, prev_close, high, min(low, prev_close, close), close, volume))
        prev_close = close
    return tuple(bars)


class ExchangeState:
    """Thread-safe state of one loopback Binance spot account and its markets.

    Symbols may be given as unified symbols (``BTC/USDT``) or Binance ids (``BTCUSDT``); orders and fills
    carry Binance ids.
    """

    def __init__(self, config: LoopbackConfig | None = None, markets: MarketCatalog | None = None) -> None:
        self.config = config or LoopbackConfig()
        self.markets = markets or MarketCatalog(self.config.symbols)
        self.lock = threading.RLock()
        self._series: dict[str, _Series] = {}
        self._balances: dict[str, list[Decimal]] = {}
        self._orders: dict[int, Order] = {}
        self._by_client_id: dict[str, list[int]] = {}
        self._fills: list[Fill] = []
        self._next_order_id = self.config.first_order_id
        self._next_trade_id = self.config.first_trade_id
        self._auto_client_ids = 0
        self._update_id = 1
        self._step_ms: int | None = None
        for asset, amount in self.config.initial_balances.items():
            self._balances[asset] = [_dec(amount), Decimal(0)]
        self._seed_default_paths()
        self._clock = self.config.default_start_ms + self.config.default_history_bars * self.config.default_timeframe_ms

    # ------------------------------------------------------------------------------------------------
    # price paths and the clock
    # ------------------------------------------------------------------------------------------------
    def _seed_default_paths(self) -> None:
        cfg = self.config
        for spec in self.markets:
            start_price = cfg.default_start_prices.get(spec.symbol, Decimal(1))
            bars = _random_walk(
                f"{cfg.seed}:{spec.symbol}",
                cfg.default_start_ms,
                cfg.default_timeframe_ms,
                cfg.default_bars,
                start_price,
                cfg.walk_volatility,
                cfg.walk_volume,
                spec.tick_size,
                spec.step_size,
            )
            self._set_series(spec.id, cfg.default_timeframe_ms, list(bars))

    def _set_series(self, market_id: str, timeframe_ms: int, bars: list[Bar]) -> None:
        self._series[market_id] = _Series(
            timeframe_ms=timeframe_ms,
            bars=bars,
            opens=[b.ts for b in bars],
            ends=[b.ts + timeframe_ms for b in bars],
        )

    def market(self, symbol: str) -> MarketSpec:
        """The market for a unified symbol or id; -1121 Invalid symbol if unknown."""
        spec = self.markets.find(symbol)
        if spec is None:
            raise errors.invalid_symbol()
        return spec

    def load_bars(
        self,
        symbol: str,
        timeframe_ms: int,
        rows: Iterable[Sequence[Number]],
        *,
        start_index: int | None = None,
    ) -> None:
        """Replace ``symbol``'s price path with ``rows`` of ``(ts_ms, open, high, low, close, volume)``.

        Then set the clock: to the close of ``rows[start_index]`` (negative indexes count from the end),
        or, when ``start_index`` is None, to the close of the last row (all rows are history).
        """
        if timeframe_ms <= 0:
            raise ValueError("timeframe_ms must be positive")
        bars: list[Bar] = []
        for row in rows:
            if len(row) < 6:
                raise ValueError(f"a bar row needs (ts, open, high, low, close, volume), got {row!r}")
            ts = int(row[0])
            o, h, lo, c, v = (_dec(x) for x in row[1:6])
            if bars and ts <= bars[-1].ts:
                raise ValueError(f"bar timestamps must increase strictly: {ts} after {bars[-1].ts}")
            if h < max(o, c) or lo > min(o, c) or lo <= 0 or v < 0:
                raise ValueError(f"inconsistent bar at {ts}: open={o} high={h} low={lo} close={c} volume={v}")
            if bars and (ts - bars[-1].ts) % timeframe_ms != 0:
                raise ValueError(f"bar at {ts} is not on the {timeframe_ms} ms grid of the previous bar")
            bars.append(Bar(ts, o, h, lo, c, v))
        if not bars:
            raise ValueError("load_bars needs at least one row")
        with self.lock:
            spec = self.market(symbol)
            self._set_series(spec.id, timeframe_ms, bars)
            index = len(bars) - 1 if start_index is None else start_index
            self._clock = bars[index].ts + timeframe_ms
            self._update_id += 1
            log.debug("loopback.bars_loaded", symbol=spec.symbol, bars=len(bars), clock_ms=self._clock)

    @property
    def clock_ms(self) -> int:
        """Simulated now (ms): bars that closed at or before it are visible."""
        with self.lock:
            return self._clock

    def set_clock(self, ts_ms: int) -> None:
        """Jump the clock without matching resting orders against the bars skipped."""
        with self.lock:
            self._clock = int(ts_ms)
            self._update_id += 1

    @property
    def step_ms(self) -> int:
        """Length of one ``advance()`` step: set explicitly, or the shortest loaded timeframe."""
        with self.lock:
            if self._step_ms is not None:
                return self._step_ms
            return min((s.timeframe_ms for s in self._series.values()), default=self.config.default_timeframe_ms)

    @step_ms.setter
    def step_ms(self, value: int | None) -> None:
        if value is not None and value <= 0:
            raise ValueError("step_ms must be positive")
        with self.lock:
            self._step_ms = value

    def timeframe_ms(self, symbol: str) -> int:
        with self.lock:
            return self._series[self.market(symbol).id].timeframe_ms

    def bar_index(self, symbol: str) -> int:
        """Index of ``symbol``'s current (last closed) bar in its loaded path; -1 before the first bar."""
        with self.lock:
            series = self._series[self.market(symbol).id]
            return bisect_right(series.ends, self._clock) - 1

    def current_bar(self, symbol: str) -> Bar | None:
        with self.lock:
            series = self._series[self.market(symbol).id]
            i = bisect_right(series.ends, self._clock) - 1
            return series.bars[i] if i >= 0 else None

    def last_price(self, symbol: str) -> Decimal | None:
        bar = self.current_bar(symbol)
        return None if bar is None else bar.close

    def bars(self, symbol: str, *, include_future: bool = False) -> list[Bar]:
        """The loaded bars of ``symbol``: closed ones only unless ``include_future``."""
        with self.lock:
            series = self._series[self.market(symbol).id]
            if include_future:
                return list(series.bars)
            return series.bars[: bisect_right(series.ends, self._clock)]

    def advance(self, n: int = 1) -> list[Fill]:
        """Move the clock ``n`` steps, matching resting orders against every bar that closes; returns fills."""
        if n < 0:
            raise ValueError("the clock only moves forward")
        with self.lock:
            return self.advance_to(self._clock + n * self.step_ms)

    def push_bar(self, symbol: str, row: Sequence[Number]) -> list[Fill]:
        """Append one bar ``(ts_ms, open, high, low, close, volume)`` to ``symbol``'s path, right after its last
        loaded bar, and move the clock to its close, matching resting orders; returns the fills.

        For tests that move the price step by step: the clock must stand at the close of the symbol's last bar.
        """
        with self.lock:
            spec = self.market(symbol)
            series = self._series[spec.id]
            expected = series.ends[-1]
            if int(row[0]) != expected:
                raise ValueError(f"the next bar of {spec.symbol} opens at {expected}, not {int(row[0])}")
            if self._clock != expected:
                raise ValueError(f"push_bar needs the clock at {expected} (the last bar's close), not {self._clock}")
            rows = [(b.ts, b.open, b.high, b.low, b.close, b.volume) for b in series.bars]
            self.load_bars(spec.id, series.timeframe_ms, [*rows, tuple(row)], start_index=-2)
            return self.advance_to(expected + series.timeframe_ms)

    def advance_to(self, target: int) -> list[Fill]:
        """Move the clock to ``target`` (ms), matching resting orders against every bar that closes on the way."""
        with self.lock:
            if target < self._clock:
                raise ValueError("the clock only moves forward")
            events: list[tuple[int, int, str, Bar]] = []
            for order_rank, (market_id, series) in enumerate(self._series.items()):
                lo = bisect_right(series.ends, self._clock)
                hi = bisect_right(series.ends, target)
                events.extend((series.ends[i], order_rank, market_id, series.bars[i]) for i in range(lo, hi))
            events.sort(key=lambda e: (e[0], e[1]))
            fills: list[Fill] = []
            for end, _, market_id, bar in events:
                self._clock = end
                fills.extend(self._match_bar(market_id, bar))
            self._clock = target
            self._update_id += 1
            return fills

    # ------------------------------------------------------------------------------------------------
    # market data
    # ------------------------------------------------------------------------------------------------
    def klines(
        self,
        symbol: str,
        interval: str,
        start_time: int | None = None,
        end_time: int | None = None,
        limit: int | None = None,
    ) -> list[Kline]:
        """Closed bars as Binance serves them: ascending; open time within [start_time, end_time];
        the first ``limit`` after ``start_time`` if given, else the last ``limit`` (up to ``end_time``)."""
        if interval not in BINANCE_INTERVALS:
            raise errors.invalid_interval()
        cfg = self.config
        limit = cfg.klines_default_limit if limit is None else min(limit, cfg.klines_max_limit)
        if limit < 1:
            raise errors.illegal_parameter("limit")
        with self.lock:
            spec = self.market(symbol)
            series = self._series[spec.id]
            visible = bisect_right(series.ends, self._clock)
            base_tf = series.timeframe_ms
            if interval != MONTH_INTERVAL and BINANCE_INTERVALS[interval] == base_tf:
                lo = 0 if start_time is None else bisect_left(series.opens, start_time, 0, visible)
                hi = visible if end_time is None else bisect_right(series.opens, end_time, 0, visible)
                picked = series.bars[lo:hi]
                picked = picked[:limit] if start_time is not None else picked[-limit:]
                return [self._kline([b], b.ts, b.ts + base_tf) for b in picked]
            if interval != MONTH_INTERVAL and BINANCE_INTERVALS[interval] % base_tf != 0:
                raise errors.BinanceApiError(
                    -1120, f"Invalid interval. The loopback cannot build {interval} klines from {base_tf} ms bars."
                )
            if interval == MONTH_INTERVAL and _DAY % base_tf != 0:
                raise errors.BinanceApiError(
                    -1120, f"Invalid interval. The loopback cannot build 1M klines from {base_tf} ms bars."
                )
            lo = 0
            if start_time is not None:
                first = bucket_start(start_time, interval)
                if first < start_time:
                    first = bucket_end(start_time, interval)
                lo = bisect_left(series.opens, first, 0, visible)
            hi = visible
            if end_time is not None:
                hi = bisect_left(series.opens, bucket_end(end_time, interval), 0, visible)
            groups = self._group(series.bars, lo, hi, interval, limit, forward=start_time is not None)
            return [self._kline(g, bucket_start(g[0].ts, interval), bucket_end(g[0].ts, interval)) for g in groups]

    @staticmethod
    def _group(bars: list[Bar], lo: int, hi: int, interval: str, limit: int, *, forward: bool) -> list[list[Bar]]:
        groups: list[list[Bar]] = []
        indexes = range(lo, hi) if forward else range(hi - 1, lo - 1, -1)
        current_key: int | None = None
        for i in indexes:
            key = bucket_start(bars[i].ts, interval)
            if key != current_key:
                if len(groups) == limit:
                    break
                groups.append([])
                current_key = key
            groups[-1].append(bars[i])
        if not forward:
            groups = [list(reversed(g)) for g in reversed(groups)]
        return groups

    def _kline(self, bars: list[Bar], open_time: int, end: int) -> Kline:
        volume = sum((b.volume for b in bars), Decimal(0))
        quote_volume = sum((b.close * b.volume for b in bars), Decimal(0))
        return Kline(
            open_time=open_time,
            close_time=end - 1,
            open=bars[0].open,
            high=max(b.high for b in bars),
            low=min(b.low for b in bars),
            close=bars[-1].close,
            volume=volume,
            quote_volume=quote_volume,
            trades=len(bars) * self.config.trades_per_bar,
        )

    def ticker_24h(self, symbol: str) -> Ticker24h:
        """Rolling-window statistics over the closed bars of the last ``ticker_window_ms``."""
        cfg = self.config
        with self.lock:
            spec = self.market(symbol)
            series = self._series[spec.id]
            hi = bisect_right(series.ends, self._clock)
            window_start = self._clock - cfg.ticker_window_ms
            lo = bisect_left(series.opens, window_start, 0, hi)
            window = series.bars[lo:hi]
            zero = Decimal(0)
            if not window:
                return Ticker24h(
                    spec.id, window_start, self._clock - 1, zero, zero, zero, zero, zero, zero, zero,
                    zero, zero, zero, zero, zero, -1, -1, 0,
                )  # fmt: skip
            last = window[-1].close
            bid, ask, level_qty = self._top_of_book(spec, window[-1])
            first_id = lo * cfg.trades_per_bar
            count = len(window) * cfg.trades_per_bar
            return Ticker24h(
                symbol=spec.id,
                open_time=window_start,
                close_time=self._clock - 1,
                open=window[0].open,
                high=max(b.high for b in window),
                low=min(b.low for b in window),
                last=last,
                prev_close=series.bars[lo - 1].close if lo > 0 else window[0].open,
                volume=sum((b.volume for b in window), zero),
                quote_volume=sum((b.close * b.volume for b in window), zero),
                bid=bid,
                bid_qty=level_qty,
                ask=ask,
                ask_qty=level_qty,
                last_qty=spec.step_size if spec.step_size > 0 else level_qty,
                first_id=first_id,
                last_id=first_id + count - 1,
                count=count,
            )

    def _top_of_book(self, spec: MarketSpec, bar: Bar) -> tuple[Decimal, Decimal, Decimal]:
        cfg = self.config
        ask = bar.close
        bid = max(bar.close - cfg.book_spread_ticks * spec.tick_size, spec.tick_size)
        qty = max(_floor_to(bar.volume * cfg.book_level_volume_fraction, spec.step_size), spec.step_size)
        return bid, ask, qty

    def order_book(self, symbol: str, limit: int | None = None) -> OrderBook:
        """A synthetic book around the last price: best ask = last, best bid = last - spread."""
        cfg = self.config
        limit = cfg.depth_default_limit if limit is None else min(limit, cfg.depth_max_limit)
        if limit < 1:
            raise errors.illegal_parameter("limit")
        with self.lock:
            spec = self.market(symbol)
            bar = self.current_bar(spec.id)
            if bar is None:
                return OrderBook(self._update_id, [], [])
            bid, ask, qty = self._top_of_book(spec, bar)
            level = cfg.book_level_ticks * spec.tick_size
            asks = [(ask + i * level, qty * (i + 1)) for i in range(limit)]
            bids = [(bid - i * level, qty * (i + 1)) for i in range(limit) if bid - i * level > 0]
            return OrderBook(self._update_id, bids, asks)

    # ------------------------------------------------------------------------------------------------
    # balances
    # ------------------------------------------------------------------------------------------------
    def set_balance(self, asset: str, free: Number, locked: Number = 0) -> None:
        with self.lock:
            self._balances[asset] = [_dec(free), _dec(locked)]
            self._update_id += 1

    def balance(self, asset: str) -> Balance:
        with self.lock:
            free, locked = self._balances.get(asset, [Decimal(0), Decimal(0)])
            return Balance(asset, free, locked)

    def balances(self) -> list[Balance]:
        """Every asset of the account, markets' assets first, zero balances included."""
        with self.lock:
            assets = list(dict.fromkeys([*self.markets.assets(), *self._balances]))
            return [self.balance(a) for a in assets]

    def _free(self, asset: str) -> Decimal:
        return self._balances.setdefault(asset, [Decimal(0), Decimal(0)])[0]

    def _move(self, asset: str, free_delta: Decimal = Decimal(0), locked_delta: Decimal = Decimal(0)) -> None:
        entry = self._balances.setdefault(asset, [Decimal(0), Decimal(0)])
        entry[0] += free_delta
        entry[1] += locked_delta

    # ------------------------------------------------------------------------------------------------
    # orders
    # ------------------------------------------------------------------------------------------------
    def place_order(self, request: OrderRequest) -> Order:
        """Validate, accept and (if marketable) fill a new order; returns a snapshot."""
        with self.lock:
            spec = self.market(request.symbol)
            self._check_client_order_id(request.client_order_id)
            if request.type not in spec.order_types:
                raise errors.unsupported_order_type(request.type)
            last = self.last_price(spec.id)
            if request.type == "MARKET":
                order = self._market_order(spec, request, last)
            else:
                order = self._limit_order(spec, request, last)
            self._update_id += 1
            log.debug(
                "loopback.order_accepted",
                symbol=spec.symbol,
                order_id=order.order_id,
                client_order_id=order.client_order_id,
                status=order.status,
            )
            return _snapshot(order)

    def _check_client_order_id(self, client_order_id: str | None) -> None:
        if client_order_id is None:
            return
        for order_id in self._by_client_id.get(client_order_id, []):
            if self.config.duplicate_client_order_id == "any" or self._orders[order_id].is_open:
                raise errors.duplicate_order()

    def _new_order(
        self, spec: MarketSpec, request: OrderRequest, qty: Decimal, price: Decimal, tif: TimeInForce
    ) -> Order:
        order_id = self._next_order_id
        self._next_order_id += 1
        client_order_id = request.client_order_id
        if client_order_id is None:
            self._auto_client_ids += 1
            client_order_id = f"loopback{self._auto_client_ids:014d}"
        order = Order(
            order_id=order_id,
            client_order_id=client_order_id,
            symbol=spec.id,
            side=request.side,
            type=request.type,
            time_in_force=tif,
            price=price,
            orig_qty=qty,
            orig_quote_order_qty=request.quote_order_qty or Decimal(0),
            status="NEW",
            time=self._clock,
            update_time=self._clock,
            self_trade_prevention_mode=request.self_trade_prevention_mode
            or str(spec.info.get("defaultSelfTradePreventionMode", "NONE")),
        )
        self._orders[order_id] = order
        self._by_client_id.setdefault(client_order_id, []).append(order_id)
        return order

    @staticmethod
    def _check_lot(spec: MarketSpec, qty: Decimal, *, market: bool) -> None:
        if qty < spec.min_qty or qty > spec.max_qty or not _multiple_of(qty, spec.min_qty, spec.step_size):
            raise errors.filter_failure("LOT_SIZE")
        if market and spec.market_max_qty > 0 and qty > spec.market_max_qty:
            raise errors.filter_failure("MARKET_LOT_SIZE")

    @staticmethod
    def _check_price(spec: MarketSpec, price: Decimal) -> None:
        too_high = spec.max_price > 0 and price > spec.max_price
        if price < spec.min_price or too_high or not _multiple_of(price, spec.min_price, spec.tick_size):
            raise errors.filter_failure("PRICE_FILTER")

    @staticmethod
    def _check_notional(spec: MarketSpec, notional: Decimal, *, market: bool) -> None:
        if (not market or spec.apply_min_notional_to_market) and notional < spec.min_notional:
            raise errors.filter_failure("NOTIONAL")
        if not market and spec.max_notional > 0 and notional > spec.max_notional:
            raise errors.filter_failure("NOTIONAL")

    def _market_order(self, spec: MarketSpec, request: OrderRequest, last: Decimal | None) -> Order:
        if request.price is not None:
            raise errors.parameter_not_required("price")
        if request.time_in_force is not None:
            raise errors.parameter_not_required("timeInForce")
        if request.quantity is not None and request.quote_order_qty is not None:
            raise errors.parameter_not_required("quoteOrderQty")
        if request.quantity is None and request.quote_order_qty is None:
            raise errors.mandatory_parameter("quantity")
        if last is None:
            raise errors.market_closed()
        if request.quote_order_qty is not None:
            if not spec.quote_order_qty_market_allowed:
                raise errors.parameter_not_required("quoteOrderQty")
            qty = _floor_to(request.quote_order_qty / last, spec.step_size)
        else:
            assert request.quantity is not None
            qty = request.quantity
        self._check_lot(spec, qty, market=True)
        self._check_notional(spec, qty * last, market=True)
        if request.side == "BUY" and self._free(spec.quote) < qty * last:
            raise errors.insufficient_balance()
        if request.side == "SELL" and self._free(spec.base) < qty:
            raise errors.insufficient_balance()
        order = self._new_order(spec, request, qty, Decimal(0), "GTC")
        self._fill(order, spec, qty, last, is_maker=False)
        return order

    def _limit_order(self, spec: MarketSpec, request: OrderRequest, last: Decimal | None) -> Order:
        if request.price is None:
            raise errors.mandatory_parameter("price")
        if request.quantity is None:
            raise errors.mandatory_parameter("quantity")
        if request.quote_order_qty is not None:
            raise errors.parameter_not_required("quoteOrderQty")
        if request.type == "LIMIT" and request.time_in_force is None:
            raise errors.mandatory_parameter("timeInForce")
        if request.type == "LIMIT_MAKER" and request.time_in_force is not None:
            raise errors.parameter_not_required("timeInForce")
        price, qty = request.price, request.quantity
        tif: TimeInForce = request.time_in_force or "GTC"
        self._check_price(spec, price)
        self._check_lot(spec, qty, market=False)
        self._check_notional(spec, price * qty, market=False)
        marketable = last is not None and (
            (request.side == "BUY" and price >= last) or (request.side == "SELL" and price <= last)
        )
        if marketable and request.type == "LIMIT_MAKER":
            raise errors.would_match_immediately()
        lock_asset, lock_amount = (spec.quote, price * qty) if request.side == "BUY" else (spec.base, qty)
        if self._free(lock_asset) < lock_amount:
            raise errors.insufficient_balance()
        order = self._new_order(spec, request, qty, price, tif)
        self._move(lock_asset, -lock_amount, lock_amount)
        order.locked = lock_amount
        if marketable:
            assert last is not None
            self._fill(order, spec, qty, last, is_maker=False)
        elif tif != "GTC":
            self._release(order, spec)
            order.status = "EXPIRED"
        return order

    def _release(self, order: Order, spec: MarketSpec) -> None:
        asset = spec.quote if order.side == "BUY" else spec.base
        self._move(asset, order.locked, -order.locked)
        order.locked = Decimal(0)

    def _fill(self, order: Order, spec: MarketSpec, qty: Decimal, price: Decimal, *, is_maker: bool) -> Fill:
        rate = self.config.maker_fee_rate if is_maker else self.config.taker_fee_rate
        quote_qty = qty * price
        if order.side == "BUY":
            commission = _quantize(qty * rate, spec.base_commission_decimals)
            commission_asset = spec.base
            if order.locked > 0:
                release = min(order.price * qty, order.locked)
                order.locked -= release
                self._move(spec.quote, release - quote_qty, -release)
            else:
                self._move(spec.quote, -quote_qty)
            self._move(spec.base, qty - commission)
        else:
            commission = _quantize(quote_qty * rate, spec.quote_commission_decimals)
            commission_asset = spec.quote
            if order.locked > 0:
                release = min(qty, order.locked)
                order.locked -= release
                self._move(spec.base, release - qty, -release)
            else:
                self._move(spec.base, -qty)
            self._move(spec.quote, quote_qty - commission)
        fill = Fill(
            id=self._next_trade_id,
            order_id=order.order_id,
            symbol=spec.id,
            side=order.side,
            price=price,
            qty=qty,
            quote_qty=quote_qty,
            commission=commission,
            commission_asset=commission_asset,
            time=self._clock,
            is_maker=is_maker,
        )
        self._next_trade_id += 1
        self._fills.append(fill)
        order.fills.append(fill)
        order.executed_qty += qty
        order.cummulative_quote_qty += quote_qty
        order.update_time = self._clock
        if order.executed_qty >= order.orig_qty:
            order.status = "FILLED"
            if order.locked > 0:  # a buy filled below its limit price: give back what is left
                self._release(order, spec)
        else:
            order.status = "PARTIALLY_FILLED"
        return fill

    def _match_bar(self, market_id: str, bar: Bar) -> list[Fill]:
        spec = self.markets.get(market_id)
        fraction = self.config.partial_fill_fraction
        fills: list[Fill] = []
        resting = [o for o in self._orders.values() if o.symbol == market_id and o.is_open]
        for side in ("BUY", "SELL"):
            if side == "BUY":
                crossing = sorted(
                    (o for o in resting if o.side == side and bar.low <= o.price), key=lambda o: (-o.price, o.order_id)
                )
            else:
                crossing = sorted(
                    (o for o in resting if o.side == side and bar.high >= o.price), key=lambda o: (o.price, o.order_id)
                )
            budget = None if fraction is None else _floor_to(bar.volume * fraction, spec.step_size)
            for order in crossing:
                qty = order.remaining_qty if budget is None else min(order.remaining_qty, budget)
                if qty <= 0:
                    break
                fills.append(self._fill(order, spec, qty, order.price, is_maker=True))
                if budget is not None:
                    budget -= qty
        return fills

    def _find(self, spec: MarketSpec, order_id: int | None, client_order_id: str | None) -> Order | None:
        if order_id is not None:
            order = self._orders.get(order_id)
            if order is None or order.symbol != spec.id:
                return None
            if client_order_id is not None and order.client_order_id != client_order_id:
                return None
            return order
        if client_order_id is not None:
            ids = self._by_client_id.get(client_order_id, [])
            matching = [self._orders[i] for i in ids if self._orders[i].symbol == spec.id]
            return matching[-1] if matching else None
        raise errors.BinanceApiError(
            -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
        )

    def get_order(self, symbol: str, order_id: int | None = None, orig_client_order_id: str | None = None) -> Order:
        """The order by id or client order id (the newest one if a client id was reused); -2013 if none."""
        with self.lock:
            order = self._find(self.market(symbol), order_id, orig_client_order_id)
            if order is None:
                raise errors.order_does_not_exist()
            return _snapshot(order)

    def cancel_order(
        self,
        symbol: str,
        order_id: int | None = None,
        orig_client_order_id: str | None = None,
    ) -> Order:
        """Cancel an open order; -2011 Unknown order sent. if it does not exist or is no longer open."""
        with self.lock:
            spec = self.market(symbol)
            order = self._find(spec, order_id, orig_client_order_id)
            if order is None or not order.is_open:
                raise errors.unknown_order()
            self._cancel(order, spec)
            return _snapshot(order)

    def _cancel(self, order: Order, spec: MarketSpec) -> None:
        self._release(order, spec)
        order.status = "CANCELED"
        order.update_time = self._clock
        self._update_id += 1

    def cancel_open_orders(self, symbol: str) -> list[Order]:
        """Cancel every open order of ``symbol``; -2011 if there is none (as Binance)."""
        with self.lock:
            spec = self.market(symbol)
            open_orders = [o for o in self._orders.values() if o.symbol == spec.id and o.is_open]
            if not open_orders:
                raise errors.unknown_order()
            for order in open_orders:
                self._cancel(order, spec)
            return [_snapshot(o) for o in open_orders]

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        with self.lock:
            market_id = None if symbol is None else self.market(symbol).id
            return [
                _snapshot(o)
                for o in self._orders.values()
                if o.is_open and (market_id is None or o.symbol == market_id)
            ]

    def all_orders(
        self,
        symbol: str,
        order_id: int | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
        limit: int | None = None,
    ) -> list[Order]:
        """Orders of ``symbol`` like GET /api/v3/allOrders: ids >= order_id, or a time range, else the newest."""
        cfg = self.config
        limit = cfg.all_orders_default_limit if limit is None else min(limit, cfg.all_orders_max_limit)
        with self.lock:
            spec = self.market(symbol)
            orders = [o for o in self._orders.values() if o.symbol == spec.id]
            if order_id is not None:
                return [_snapshot(o) for o in orders if o.order_id >= order_id][:limit]
            if start_time is not None or end_time is not None:
                lo = start_time if start_time is not None else -1
                hi = end_time if end_time is not None else 2**63
                return [_snapshot(o) for o in orders if lo <= o.time <= hi][:limit]
            return [_snapshot(o) for o in orders[-limit:]]

    def my_trades(
        self,
        symbol: str,
        order_id: int | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
        from_id: int | None = None,
        limit: int | None = None,
    ) -> list[Fill]:
        """Fills of ``symbol`` like GET /api/v3/myTrades (ascending by id)."""
        cfg = self.config
        limit = cfg.trades_default_limit if limit is None else min(limit, cfg.trades_max_limit)
        with self.lock:
            spec = self.market(symbol)
            fills = [f for f in self._fills if f.symbol == spec.id]
            if order_id is not None:
                fills = [f for f in fills if f.order_id == order_id]
            if from_id is not None:
                return [f for f in fills if f.id >= from_id][:limit]
            if start_time is not None or end_time is not None:
                lo = start_time if start_time is not None else -1
                hi = end_time if end_time is not None else 2**63
                return [f for f in fills if lo <= f.time <= hi][:limit]
            return fills[-limit:]

    def orders(self) -> list[Order]:
        """Every order ever accepted (snapshots), oldest first."""
        with self.lock:
            return [_snapshot(o) for o in self._orders.values()]

    def fills(self) -> list[Fill]:
        with self.lock:
            return list(self._fills)

    @property
    def update_id(self) -> int:
        """Increases with every change; served as the book's ``lastUpdateId``."""
        with self.lock:
            return self._update_id


def _snapshot(order: Order) -> Order:
    return replace(order, fills=list(order.fills))


__all__ = [
    "BINANCE_INTERVALS",
    "OPEN_STATUSES",
    "Balance",
    "Bar",
    "ExchangeState",
    "Fill",
    "Kline",
    "Order",
    "OrderBook",
    "OrderRequest",
    "OrderStatus",
    "OrderType",
    "Side",
    "Ticker24h",
    "TimeInForce",
    "bucket_end",
    "bucket_start",
]
