"""ccxt exchange clients for market data, with clear errors for unknown exchanges."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import ccxt
import ccxt.async_support as ccxt_async

from engine.errors import ValidationFailedError


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


def make_async_exchange(
    exchange_id: str, *, api_url: str | None = None, options: dict[str, Any] | None = None, **config: Any
) -> Any:
    """An async ccxt client with rate limiting on; ``api_url`` reroutes its REST API."""
    exchange_id = check_exchange_id(exchange_id)
    cls = getattr(ccxt_async, exchange_id)
    exchange = cls({"enableRateLimit": True, "options": options or {}, **config})
    if api_url:
        point_api_at(exchange, api_url)
    return exchange
