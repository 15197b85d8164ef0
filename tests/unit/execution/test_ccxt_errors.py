"""ccxt exceptions mapped to the broker contract: clear reasons, never a URL, signature or key."""

from __future__ import annotations

import ccxt
import pytest

from engine.execution.broker import VenueRejectedError, VenueUnavailableError, client_order_id_for
from engine.execution.ccxt import CLIENT_ORDER_ID_PREFIX, CcxtRejectedError
from engine.execution.ccxt.errors import is_duplicate_client_order_id, is_not_served, map_error, venue_message

SIGNED_URL = "http://127.0.0.1:1/api/v3/order?timestamp=1&symbol=BTCUSDT&signature=deadbeefcafe"


def test_network_errors_are_unknown_outcomes_without_the_signed_url() -> None:
    error = ccxt.ExchangeNotAvailable(f"binance POST {SIGNED_URL} 503 Service Unavailable loopback: injected failure")
    mapped = map_error(error, "submit buy 1 BTC/USDT", "binance", "BTC/USDT")
    assert isinstance(mapped, VenueUnavailableError)
    assert str(mapped) == "submit buy 1 BTC/USDT: binance did not answer (ExchangeNotAvailable: HTTP 503)"
    assert is_not_served(ccxt.ExchangeNotAvailable(f"binance GET {SIGNED_URL} 404 Not Found x"))
    assert not is_not_served(error)


@pytest.mark.parametrize(
    ("error", "kind", "text"),
    [
        (ccxt.InsufficientFunds("binance Account has insufficient balance."), "insufficient_funds", "insufficient"),
        (
            ccxt.BadSymbol('binance {"code":-1121,"msg":"Invalid symbol."}'),
            "bad_symbol",
            "Invalid symbol. (code -1121)",
        ),
        (ccxt.PermissionDenied("binance key-abc is not allowed"), "authentication", "API key was not accepted"),
        (ccxt.InvalidOrder('binance {"code":-1013,"msg":"Filter failure: LOT_SIZE"}'), "invalid_order", "LOT_SIZE"),
        (ccxt.ExchangeError("binance something odd"), "exchange_error", "ExchangeError (something odd)"),
    ],
)
def test_rejections_have_a_kind_and_the_venues_words(error: Exception, kind: str, text: str) -> None:
    mapped = map_error(error, "submit", "binance", "BTC/USDT", secrets=["key-abc"])
    assert isinstance(mapped, CcxtRejectedError) and isinstance(mapped, VenueRejectedError)
    assert mapped.kind == kind and text in str(mapped) and "key-abc" not in str(mapped)


def test_duplicate_client_order_ids_are_recognised() -> None:
    assert is_duplicate_client_order_id(ccxt.InvalidOrder('binance {"code":-2010,"msg":"Duplicate order sent."}'))
    assert is_duplicate_client_order_id(ccxt.DuplicateOrderId("okx clOrdId is duplicated"))
    assert not is_duplicate_client_order_id(ccxt.InvalidOrder("binance Filter failure: PRICE_FILTER"))
    assert venue_message(ccxt.NetworkError("Cannot connect to host"), exchange="binance") == "Cannot connect to host"


def test_iqts_client_order_ids_carry_the_prefix_reconcile_looks_for() -> None:
    assert client_order_id_for("any approval").startswith(CLIENT_ORDER_ID_PREFIX)
    assert len(client_order_id_for("any approval")) <= 36  # Binance's newClientOrderId limit
