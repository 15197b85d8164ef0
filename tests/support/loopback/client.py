"""The real ccxt ``binance`` class, pointed at a loopback exchange and unable to reach anything else."""

from __future__ import annotations

from typing import Any, Literal, overload
from urllib.parse import urlsplit

import ccxt
import ccxt.async_support as ccxt_async

from engine.data.exchanges import REROUTED_OPTIONS
from engine.telemetry import get_logger, register_secrets

log = get_logger(__name__)

SPOT_ONLY_OPTIONS: dict[str, Any] = dict(REROUTED_OPTIONS["binance"])
"""ccxt options that keep ``load_markets()`` to the single GET /api/v3/exchangeInfo the loopback serves."""

_URL_SETS = ("api", "test", "demo")


class LoopbackGuard:
    """Refuses any ccxt request whose URL is not under the loopback base URL, and remembers every URL."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.urls: list[str] = []
        self.refused: list[str] = []

    def check(self, url: str) -> None:
        if not url.startswith(self.base_url):
            self.refused.append(url)
            log.warning("loopback.refused_url", url=url)
            raise ccxt.NotSupported(f"loopback client refuses to call {url}: only {self.base_url} is allowed")
        self.urls.append(url)


def loopback_urls(base_url: str, template: dict[str, Any]) -> dict[str, Any]:
    """Map each ccxt API URL (``https://api.binance.com/api/v3``) to the same path on ``base_url``."""
    base = base_url.rstrip("/")
    return {key: base + urlsplit(value).path if isinstance(value, str) else value for key, value in template.items()}


@overload
def make_ccxt_binance(
    url: str,
    api_key: str,
    secret: str,
    async_: Literal[True] = ...,
    *,
    rate_limit_ms: float | None = ...,
    timeout_ms: int | None = ...,
    options: dict[str, Any] | None = ...,
) -> ccxt_async.binance: ...


@overload
def make_ccxt_binance(
    url: str,
    api_key: str,
    secret: str,
    async_: Literal[False],
    *,
    rate_limit_ms: float | None = ...,
    timeout_ms: int | None = ...,
    options: dict[str, Any] | None = ...,
) -> ccxt.binance: ...


def make_ccxt_binance(
    url: str,
    api_key: str,
    secret: str,
    async_: bool = True,
    *,
    rate_limit_ms: float | None = None,
    timeout_ms: int | None = None,
    options: dict[str, Any] | None = None,
) -> Any:
    """Instantiate ccxt's real ``binance`` (async by default) talking only to the loopback at ``url``.

    * every entry of ``urls['api']`` (and of the ``test``/``demo`` sets used by sandbox mode) is rewritten
      to the same path on ``url``; a guard on ``fetch`` refuses any other URL (``ccxt.NotSupported``);
    * spot-only market loading (:data:`SPOT_ONLY_OPTIONS`), plus ``options`` on top;
    * ``enableRateLimit`` stays on; ``rate_limit_ms`` overrides ccxt's 50 ms per weight unit (tests use a
      small value: ccxt charges 20 units = 1 s for exchangeInfo and account);
    * environment proxies are ignored.

    The guard is reachable as :func:`loopback_guard` ``(exchange)``. Close async instances with
    ``await exchange.close()``.
    """
    config: dict[str, Any] = {
        "apiKey": api_key,
        "secret": secret,
        "enableRateLimit": True,
        "options": {**SPOT_ONLY_OPTIONS, **(options or {})},
    }
    if rate_limit_ms is not None:
        config["rateLimit"] = rate_limit_ms
    if timeout_ms is not None:
        config["timeout"] = timeout_ms
    register_secrets([secret])
    exchange: Any = ccxt_async.binance(config) if async_ else ccxt.binance(config)
    for name in _URL_SETS:
        template = exchange.urls.get(name)
        if isinstance(template, dict):
            exchange.urls[name] = loopback_urls(url, template)
    guard = LoopbackGuard(url)
    original_fetch = exchange.fetch
    if async_:
        exchange.aiohttp_trust_env = False

        async def guarded_fetch(target: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
            guard.check(target)
            return await original_fetch(target, method, headers, body)

        exchange.fetch = guarded_fetch
    else:
        exchange.session.trust_env = False

        def guarded_fetch_sync(target: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
            guard.check(target)
            return original_fetch(target, method, headers, body)

        exchange.fetch = guarded_fetch_sync
    exchange.loopback_guard = guard
    return exchange


def loopback_guard(exchange: Any) -> LoopbackGuard:
    """The guard :func:`make_ccxt_binance` attached to ``exchange``."""
    guard = getattr(exchange, "loopback_guard", None)
    if not isinstance(guard, LoopbackGuard):
        raise TypeError("this exchange was not made by make_ccxt_binance")
    return guard
