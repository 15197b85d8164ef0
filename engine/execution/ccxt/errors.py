"""ccxt exceptions -> the broker contract's errors, with a clear reason and never a key, signature or URL.

Three kinds of outcome matter to the caller:

* rejected: the venue looked at the request and refused it (funds, symbol, filters, key) -> ``VenueRejectedError``
  (never retried; the message says why);
* unknown: the request may or may not have been processed (network, timeout, 5xx, rate limit, Binance's -1000)
  -> reconcile by client order id before anything is sent again; if that fails too, ``VenueUnavailableError``;
* not found: ``ccxt.OrderNotFound`` on a fetch proves the venue does not hold the order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Final

import ccxt

from engine.errors import ConfigError, IQTSError
from engine.execution.broker import VenueRejectedError, VenueUnavailableError
from engine.telemetry import redact_text

_MAX_MESSAGE: Final = 200
_JSON_OBJECT: Final = re.compile(r"\{.*\}", re.S)
_HTTP_STATUS: Final = re.compile(r"\s(\d{3})\s")
_DUPLICATE_ID_MESSAGES: Final = ("duplicate order sent", "duplicate clientorderid", "client order id is duplicated")


class CcxtRejectedError(VenueRejectedError):
    """A venue rejection with a machine-readable ``kind`` (for metrics: reject rate by reason)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class WithdrawalKeyError(ConfigError):
    """The exchange reports that the API key may withdraw funds: IQTS refuses to trade with such a key."""


def venue_message(error: BaseException, secrets: Iterable[str] = (), exchange: str | None = None) -> str:
    """The venue's own words (``Account has insufficient balance ... (code -2010)``), without the request.

    ccxt messages start with the exchange id, then either the venue's JSON body, a plain message, or (for HTTP
    failures) the method, the full URL with its signed query string and the status: the URL is never kept.
    """
    text = str(error).strip()
    found = _JSON_OBJECT.search(text)
    message: str | None = None
    if found is not None:
        try:
            body = json.loads(found.group(0))
        except ValueError:
            body = None
        if isinstance(body, dict):
            words = body.get("msg") or body.get("message") or body.get("error")
            code = body.get("code")
            if isinstance(words, str) and words:
                message = f"{words} (code {code})" if code is not None else words
    if message is None:
        if "://" in text:
            status = _HTTP_STATUS.search(text)
            message = f"HTTP {status.group(1)}" if status else type(error).__name__
        elif exchange is not None and text.startswith(f"{exchange} "):
            message = text[len(exchange) + 1 :]
        else:
            message = text or type(error).__name__
    message = redact_text(message)
    for secret in secrets:
        if secret:
            message = message.replace(secret, "[redacted]")
    return message[:_MAX_MESSAGE]


def is_unknown_outcome(error: BaseException) -> bool:
    """The request may have been processed: network errors, timeouts, 5xx, rate limits, Binance's -1000."""
    return isinstance(error, ccxt.OperationFailed | TimeoutError | OSError)


def is_not_served(error: BaseException) -> bool:
    """The venue does not serve this endpoint (HTTP 404, or ccxt does not support it)."""
    if isinstance(error, ccxt.NotSupported | ccxt.BadRequest):
        return True
    status = _HTTP_STATUS.search(str(error))
    return isinstance(error, ccxt.ExchangeNotAvailable) and status is not None and status.group(1) == "404"


def is_duplicate_client_order_id(error: BaseException) -> bool:
    if isinstance(error, ccxt.DuplicateOrderId):
        return True
    text = str(error).lower()
    return isinstance(error, ccxt.InvalidOrder) and any(m in text for m in _DUPLICATE_ID_MESSAGES)


def map_error(error: BaseException, action: str, exchange: str, symbol: str, secrets: Iterable[str] = ()) -> IQTSError:
    """The contract error for a ccxt exception raised while doing ``action`` (e.g. "submit BTC/USDT buy")."""
    said = venue_message(error, secrets, exchange)
    if is_unknown_outcome(error):
        return VenueUnavailableError(f"{action}: {exchange} did not answer ({type(error).__name__}: {said})")
    if isinstance(error, ccxt.InsufficientFunds):
        return CcxtRejectedError(f"{action} refused by {exchange}: insufficient funds ({said})", "insufficient_funds")
    if isinstance(error, ccxt.BadSymbol):
        return CcxtRejectedError(f"{action} refused: {exchange} does not list {symbol} ({said})", "bad_symbol")
    if isinstance(error, ccxt.AuthenticationError):  # also PermissionDenied, AccountSuspended
        return CcxtRejectedError(
            f"{action} refused by {exchange}: the API key was not accepted (invalid key or signature, IP not "
            f"allowed, or no trading permission) ({said})",
            "authentication",
        )
    if isinstance(error, ccxt.OrderImmediatelyFillable):
        return CcxtRejectedError(f"{action} refused by {exchange}: a post-only order would take ({said})", "post_only")
    if isinstance(error, ccxt.MarketClosed):
        return CcxtRejectedError(f"{action} refused by {exchange}: the market is closed ({said})", "market_closed")
    if isinstance(error, ccxt.NotSupported):
        return CcxtRejectedError(f"{action}: not supported by {exchange} ({said})", "not_supported")
    if isinstance(error, ccxt.InvalidOrder | ccxt.BadRequest):
        return CcxtRejectedError(
            f"{action} refused by {exchange}: the order breaks its rules ({said})", "invalid_order"
        )
    return CcxtRejectedError(f"{action} refused by {exchange}: {type(error).__name__} ({said})", "exchange_error")
