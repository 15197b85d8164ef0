"""ccxt exchange clients for market data, with clear errors for unknown exchanges."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import ccxt
import ccxt.async_support as ccxt_async

from engine.errors import ValidationFailedError

REROUTED_OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {
        # ccxt 4.5 loads spot + linear + inverse markets by default (exchangeInfo on /api, /fapi and /dapi)
        "fetchMarkets": {"types": ["spot"]},
        # with keys set, load_markets() would first call sapi/v1/capital/config/getall
        "fetchCurrencies": False,
        # with keys set, fetch_markets() would also call the sapi margin allPairs endpoints
        "fetchMargins": False,
    },
}
"""ccxt options applied when an exchange's REST API is rerouted (``api_url``, ``IQTS_EXCHANGE_URLS``).

A rerouted API (the loopback exchange, a spot proxy) serves the spot REST API: market loading must stay on
the spot endpoints. Options passed by the caller override these.
"""


def check_exchange_id(exchange_id: str) -> str:
    """Return the ccxt id, or raise naming a few valid ones."""
    exchange_id = exchange_id.strip().lower()
    if exchange_id not in ccxt.exchanges:
        close = [e for e in ccxt.exchanges if e.startswith(exchange_id[:3])][:8] or ccxt.exchanges[:8]
        raise ValidationFailedError(f"unknown exchange {exchange_id!r}; ccxt ids look like: {', '.join(close)}")
    return exchange_id


def _rebase(value: Any, base: str) -> Any:
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        parts = urlsplit(value)
        return base.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")
    if isinstance(value, dict):
        return {k: _rebase(v, base) for k, v in value.items()}
    return value


def point_api_at(exchange: Any, base_url: str) -> None:
    """Send every REST call of a ccxt exchange to ``base_url`` (same paths), e.g. the loopback exchange."""
    exchange.urls["api"] = _rebase(exchange.urls["api"], base_url)
    for key in ("test", "www", "doc"):
        exchange.urls.pop(key, None)


def rerouted_options(exchange_id: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ccxt options of ``exchange_id`` when its REST API is rerouted, with ``options`` on top."""
    return {**REROUTED_OPTIONS.get(exchange_id, {}), **(options or {})}


def make_async_exchange(
    exchange_id: str, *, api_url: str | None = None, options: dict[str, Any] | None = None, **config: Any
) -> Any:
    """An async ccxt client with rate limiting on; ``api_url`` reroutes its REST API (spot-only market loading,
    see :data:`REROUTED_OPTIONS`); ``config`` is passed to ccxt (``rateLimit``, ``timeout``, ``apiKey``...)."""
    exchange_id = check_exchange_id(exchange_id)
    cls = getattr(ccxt_async, exchange_id)
    if api_url:
        options = rerouted_options(exchange_id, options)
    exchange = cls({"enableRateLimit": True, **config, "options": options or {}})
    if api_url:
        point_api_at(exchange, api_url)
        exchange.aiohttp_trust_env = False  # a rerouted API is reached directly, never through env proxies
    return exchange
