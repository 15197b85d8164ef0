"""Market-data models: symbols in ccxt's unified form, bars, trades, tickers and order-book snapshots.

Conventions shared by every model:
* ``exchange`` is a ccxt exchange id (lower case: ``binance``, ``coinbase``, ``bitstamp``).
* ``symbol`` is ccxt's unified symbol: ``BTC/USDT`` for spot, ``BTC/USDT:USDT`` for a perpetual swap
  settled in USDT (``BTC/USD:BTC`` for an inverse one). Dated futures and options are not supported yet.
* ``ts`` is integer milliseconds since the epoch, UTC. For a bar it is the open time of its bucket.
* Prices and amounts are floats (the research engine is numpy); exact decimals stay at the broker edge.
"""

from __future__ import annotations

import math
import re
from itertools import pairwise
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.data.timeframes import Timeframe
from engine.errors import ValidationFailedError

_CODE: Final = r"[A-Z0-9][A-Z0-9._]*"
_SYMBOL_RE: Final = re.compile(rf"^(?P<base>{_CODE})/(?P<quote>{_CODE})(?::(?P<settle>{_CODE}))?$")
_EXCHANGE_RE: Final = re.compile(r"^[a-z][a-z0-9_]*$")
_MAX_CODE_LEN: Final = 32

Side = Literal["buy", "sell"]


class Symbol(BaseModel):
    """A parsed unified symbol. ``settle`` is set for derivatives (perpetual swaps), None for spot."""

    model_config = ConfigDict(frozen=True)

    base: str
    quote: str
    settle: str | None = None

    @property
    def unified(self) -> str:
        """The ccxt unified form: ``BTC/USDT`` or ``BTC/USDT:USDT``."""
        spot = f"{self.base}/{self.quote}"
        return spot if self.settle is None else f"{spot}:{self.settle}"

    @property
    def is_spot(self) -> bool:
        return self.settle is None

    @property
    def is_perpetual(self) -> bool:
        return self.settle is not None

    @property
    def is_linear(self) -> bool:
        """A derivative settled in its quote currency (``BTC/USDT:USDT``); False for spot and inverse."""
        return self.settle is not None and self.settle == self.quote

    def __str__(self) -> str:
        return self.unified


def _symbol_hint(text: str) -> str:
    """A short "did you mean" for the usual mistakes, or an empty string."""
    upper = text.upper()
    if upper != text and _SYMBOL_RE.match(upper):
        return f" (codes are upper case: did you mean {upper!r}?)"
    if "/" not in text and "-" in text:
        parts = text.split("-")
        if len(parts) == 2:
            return f" (did you mean '{parts[0].upper()}/{parts[1].upper()}'?)"
        if len(parts) == 3 and parts[2].upper() == "PERP":
            base, quote = parts[0].upper(), parts[1].upper()
            return f" (did you mean '{base}/{quote}:{quote}'?)"
    if "/" not in text:
        return " (expected BASE/QUOTE, e.g. 'BTC/USDT', or 'BTC/USDT:USDT' for a perpetual)"
    if re.match(rf"^{_CODE}/{_CODE}:{_CODE}-", text):
        return " (dated futures and options are not supported; use a spot or perpetual symbol)"
    return ""


def parse_symbol(text: str) -> Symbol:
    """Parse a ccxt unified symbol (``BTC/USDT``, ``BTC/USDT:USDT``); ValidationFailedError if malformed."""
    if not isinstance(text, str) or not text:
        raise ValidationFailedError(f"symbol must be a non-empty string like 'BTC/USDT', got {text!r}")
    match = _SYMBOL_RE.match(text)
    if match is None:
        raise ValidationFailedError(f"malformed symbol {text!r}{_symbol_hint(text)}")
    base, quote, settle = match.group("base"), match.group("quote"), match.group("settle")
    for code in (base, quote, settle):
        if code is not None and len(code) > _MAX_CODE_LEN:
            raise ValidationFailedError(f"malformed symbol {text!r}: currency code {code!r} is too long")
    if base == quote:
        raise ValidationFailedError(f"malformed symbol {text!r}: base and quote are the same currency")
    return Symbol(base=base, quote=quote, settle=settle)


def _check_symbol(value: str) -> str:
    try:
        return parse_symbol(value).unified
    except ValidationFailedError as exc:
        raise ValueError(str(exc)) from None


def _check_exchange(value: str) -> str:
    if not _EXCHANGE_RE.match(value):
        raise ValueError(f"exchange must be a lower-case ccxt id like 'binance', got {value!r}")
    return value


class _MarketModel(BaseModel):
    """Shared identity fields and their validation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    exchange: str
    symbol: str
    ts: int = Field(ge=0, description="milliseconds since the epoch, UTC")

    @field_validator("exchange")
    @classmethod
    def _exchange(cls, value: str) -> str:
        return _check_exchange(value)

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, value: str) -> str:
        return _check_symbol(value)


class Bar(_MarketModel):
    """One OHLCV bar; ``ts`` is the bucket's open time. Volume is in the base currency.

    The values are not checked for OHLC sanity here (a stored bar may be bad; engine.data.quality
    reports it); bars built by engine.data.bar_builder are sane by construction.
    """

    timeframe: Timeframe
    open: float
    high: float
    low: float
    close: float
    volume: float


class Trade(_MarketModel):
    """One public trade (a print). ``side`` is the taker's side; ``trade_id`` is the exchange's id, if any."""

    price: float = Field(gt=0)
    amount: float = Field(gt=0)
    side: Side
    trade_id: str | None = None

    @field_validator("price", "amount")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be finite")
        return value


class Ticker(_MarketModel):
    """Best bid/ask (and last price when the venue sends it)."""

    bid: float | None = None
    ask: float | None = None
    last: float | None = None
    bid_size: float | None = None
    ask_size: float | None = None


class BookLevel(BaseModel):
    """One price level of an order book."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    price: float = Field(gt=0)
    amount: float = Field(ge=0)


class BookTop(_MarketModel):
    """The best level on each side (either may be missing on an empty side)."""

    bid: BookLevel | None = None
    ask: BookLevel | None = None


class OrderBookSnapshot(_MarketModel):
    """The top levels of an L2 book: bids best (highest) first, asks best (lowest) first."""

    bids: tuple[BookLevel, ...] = ()
    asks: tuple[BookLevel, ...] = ()
    sequence: int | None = None

    @model_validator(mode="after")
    def _sorted(self) -> OrderBookSnapshot:
        bid_prices = [lvl.price for lvl in self.bids]
        ask_prices = [lvl.price for lvl in self.asks]
        if any(a <= b for a, b in pairwise(bid_prices)):
            raise ValueError("bids must be strictly descending by price")
        if any(a >= b for a, b in pairwise(ask_prices)):
            raise ValueError("asks must be strictly ascending by price")
        return self

    @property
    def depth(self) -> int:
        return max(len(self.bids), len(self.asks))

    def top(self) -> BookTop:
        """Best bid and ask only."""
        return BookTop(
            exchange=self.exchange,
            symbol=self.symbol,
            ts=self.ts,
            bid=self.bids[0] if self.bids else None,
            ask=self.asks[0] if self.asks else None,
        )
