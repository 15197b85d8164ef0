"""The bundled ccxt fixtures (recorded real Binance payloads) and the spot market specs built from them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

from tests.support.loopback.config import SPOT_SYMBOLS

FIXTURE_PACKAGE = "tests.support.loopback"
FIXTURE_DIR = "fixtures"
MARKETS_FIXTURE = "binance.markets.json"
RESPONSES_FIXTURE = "binance.response.json"


def _read_fixture(name: str) -> Any:
    text = resources.files(FIXTURE_PACKAGE).joinpath(FIXTURE_DIR, name).read_text(encoding="utf-8")
    return json.loads(text)


@cache
def _markets_fixture_text() -> str:
    return json.dumps(_read_fixture(MARKETS_FIXTURE))


@cache
def _responses_fixture_text() -> str:
    return json.dumps(_read_fixture(RESPONSES_FIXTURE))


def load_markets_fixture() -> dict[str, Any]:
    """ccxt's loaded-markets snapshot for binance, keyed by unified symbol (a fresh copy on every call)."""
    data: dict[str, Any] = json.loads(_markets_fixture_text())
    return data


def load_responses_fixture() -> dict[str, Any]:
    """ccxt's static response cases for binance: ``methods[name] -> [{input, httpResponse, parsedResponse}]``."""
    data: dict[str, Any] = json.loads(_responses_fixture_text())
    return data


@dataclass(frozen=True)
class MarketSpec:
    """One spot market: its unified symbol, Binance id, assets and the trading filters that matter here."""

    symbol: str
    id: str
    base: str
    quote: str
    tick_size: Decimal
    min_price: Decimal
    max_price: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    market_max_qty: Decimal
    min_notional: Decimal
    max_notional: Decimal
    apply_min_notional_to_market: bool
    order_types: tuple[str, ...]
    quote_order_qty_market_allowed: bool
    info: dict[str, Any]
    """The raw exchangeInfo ``symbols[]`` entry, served verbatim."""

    @property
    def base_commission_decimals(self) -> int:
        return int(self.info.get("baseCommissionPrecision", 8))

    @property
    def quote_commission_decimals(self) -> int:
        return int(self.info.get("quoteCommissionPrecision", 8))


def _filters(info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(f["filterType"]): f for f in info.get("filters", [])}


def _spec(symbol: str, info: dict[str, Any]) -> MarketSpec:
    f = _filters(info)
    price = f.get("PRICE_FILTER", {})
    lot = f.get("LOT_SIZE", {})
    market_lot = f.get("MARKET_LOT_SIZE", {})
    notional = f.get("NOTIONAL", f.get("MIN_NOTIONAL", {}))
    base, quote = symbol.split("/")
    return MarketSpec(
        symbol=symbol,
        id=str(info["symbol"]),
        base=base,
        quote=quote,
        tick_size=Decimal(str(price.get("tickSize", "0"))),
        min_price=Decimal(str(price.get("minPrice", "0"))),
        max_price=Decimal(str(price.get("maxPrice", "0"))),
        step_size=Decimal(str(lot.get("stepSize", "0"))),
        min_qty=Decimal(str(lot.get("minQty", "0"))),
        max_qty=Decimal(str(lot.get("maxQty", "0"))),
        market_max_qty=Decimal(str(market_lot.get("maxQty", "0"))),
        min_notional=Decimal(str(notional.get("minNotional", "0"))),
        max_notional=Decimal(str(notional.get("maxNotional", "0"))),
        apply_min_notional_to_market=bool(notional.get("applyMinToMarket", True)),
        order_types=tuple(str(t) for t in info.get("orderTypes", [])),
        quote_order_qty_market_allowed=bool(info.get("quoteOrderQtyMarketAllowed", False)),
        info=info,
    )


class MarketCatalog:
    """The spot markets the loopback serves, looked up by unified symbol (``BTC/USDT``) or id (``BTCUSDT``)."""

    def __init__(self, symbols: tuple[str, ...] = SPOT_SYMBOLS) -> None:
        fixture = load_markets_fixture()
        specs: list[MarketSpec] = []
        for symbol in symbols:
            entry = fixture.get(symbol)
            if entry is None or entry.get("type") != "spot" or "info" not in entry:
                raise ValueError(f"{symbol!r} is not a spot market of the bundled fixture")
            specs.append(_spec(symbol, entry["info"]))
        self._by_id = {s.id: s for s in specs}
        self._by_symbol = {s.symbol: s for s in specs}

    def __iter__(self) -> Iterator[MarketSpec]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    @property
    def ids(self) -> list[str]:
        return list(self._by_id)

    def find(self, symbol_or_id: str) -> MarketSpec | None:
        """The market for a unified symbol or a Binance id, or None."""
        return self._by_id.get(symbol_or_id) or self._by_symbol.get(symbol_or_id)

    def get(self, symbol_or_id: str) -> MarketSpec:
        """The market for a unified symbol or a Binance id; KeyError if unknown."""
        spec = self.find(symbol_or_id)
        if spec is None:
            raise KeyError(symbol_or_id)
        return spec

    def assets(self) -> list[str]:
        seen: dict[str, None] = {}
        for spec in self._by_id.values():
            seen.setdefault(spec.base)
            seen.setdefault(spec.quote)
        return list(seen)
