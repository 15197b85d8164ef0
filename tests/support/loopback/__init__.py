"""A loopback Binance spot exchange: a small HTTP server the real ccxt ``binance`` client can trade against.

Typical use in a test::

    from tests.support.loopback import LoopbackExchange, make_ccxt_binance

    with LoopbackExchange() as ex:
        client = make_ccxt_binance(ex.url, ex.api_key, ex.secret, rate_limit_ms=1)
        ...  # await client.load_markets(), create_order(...), then ex.state.advance(1)

Payload shapes come from recorded real Binance responses (``fixtures/``, see ``fixtures/SOURCES.md``).
"""

from tests.support.loopback.app import FaultInjector, LoopbackApp, RequestLog, RollingWindowLimiter
from tests.support.loopback.client import SPOT_ONLY_OPTIONS, LoopbackGuard, loopback_guard, make_ccxt_binance
from tests.support.loopback.config import SPOT_SYMBOLS, ApiKeyRestrictions, LoopbackConfig
from tests.support.loopback.errors import BinanceApiError
from tests.support.loopback.markets import MarketCatalog, MarketSpec, load_markets_fixture, load_responses_fixture
from tests.support.loopback.models import LoggedRequest
from tests.support.loopback.server import LoopbackExchange
from tests.support.loopback.state import (
    BINANCE_INTERVALS,
    Balance,
    Bar,
    ExchangeState,
    Fill,
    Kline,
    Order,
    OrderBook,
    OrderRequest,
    Ticker24h,
)

__all__ = [
    "BINANCE_INTERVALS",
    "SPOT_ONLY_OPTIONS",
    "SPOT_SYMBOLS",
    "ApiKeyRestrictions",
    "Balance",
    "Bar",
    "BinanceApiError",
    "ExchangeState",
    "FaultInjector",
    "Fill",
    "Kline",
    "LoggedRequest",
    "LoopbackApp",
    "LoopbackConfig",
    "LoopbackExchange",
    "LoopbackGuard",
    "MarketCatalog",
    "MarketSpec",
    "Order",
    "OrderBook",
    "OrderRequest",
    "RequestLog",
    "RollingWindowLimiter",
    "Ticker24h",
    "load_markets_fixture",
    "load_responses_fixture",
    "loopback_guard",
    "make_ccxt_binance",
]
