"""Binance API errors as the real spot API returns them: ``{"code": <int>, "msg": <str>}`` plus an HTTP status.

The codes and messages are the ones ccxt's ``binance.exceptions`` maps (checked against ccxt 4.5.90), so
the real ccxt client raises its usual exception classes:

=========  =====  ===========================================================  =======================
code       HTTP   msg                                                          ccxt raises
=========  =====  ===========================================================  =======================
-1000      500    An unknown error occurred while processing the request.      OperationFailed
-1003      429    Too many requests ...                                        DDoSProtection (on 429)
-1013      400    Filter failure: LOT_SIZE / PRICE_FILTER / NOTIONAL ...       InvalidOrder/BadRequest
-1021      400    Timestamp for this request is outside of the recvWindow.     InvalidNonce
-1022      400    Signature for this request is not valid.                     AuthenticationError
-1100      400    Illegal characters found in parameter ...                    BadRequest
-1102      400    Mandatory parameter ... was not sent ...                     BadRequest
-1104      400    Not all sent parameters were read ...                        BadRequest
-1115/6/7  400    Invalid timeInForce. / Invalid orderType. / Invalid side.    BadRequest
-1120      400    Invalid interval.                                            BadRequest
-1121      400    Invalid symbol.                                              BadSymbol
-1131      400    recvWindow must be less than 60000                           ExchangeError
-2010      400    Account has insufficient balance for requested action.       InsufficientFunds
-2010      400    Duplicate order sent.                                        InvalidOrder
-2010      400    Order would immediately match and take.                      OrderImmediatelyFillable
-2010      400    Market is closed.                                            MarketClosed
-2011      400    Unknown order sent.                                          OrderNotFound
-2013      400    Order does not exist.                                        OrderNotFound
-2014      401    API-key format invalid.                                      AuthenticationError
-2015      401    Invalid API-key, IP, or permissions for action.              AuthenticationError
=========  =====  ===========================================================  =======================
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any


class BinanceApiError(Exception):
    """An error the loopback answers with, shaped like Binance's."""

    def __init__(self, code: int, msg: str, http_status: int = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.http_status = int(http_status)

    def payload(self) -> dict[str, Any]:
        """The JSON body Binance sends."""
        return {"code": self.code, "msg": self.msg}


def unknown_error() -> BinanceApiError:
    return BinanceApiError(
        -1000, "An unknown error occurred while processing the request.", HTTPStatus.INTERNAL_SERVER_ERROR
    )


def too_many_requests(limit: int, window_s: float) -> BinanceApiError:
    return BinanceApiError(
        -1003,
        f"Too many requests; current limit of IP(127.0.0.1) is {limit} requests per {window_s:g} seconds. "
        "Please use the websocket for live updates to avoid polling the API.",
        HTTPStatus.TOO_MANY_REQUESTS,
    )


def filter_failure(name: str) -> BinanceApiError:
    return BinanceApiError(-1013, f"Filter failure: {name}")


def outside_recv_window() -> BinanceApiError:
    return BinanceApiError(-1021, "Timestamp for this request is outside of the recvWindow.")


def bad_signature() -> BinanceApiError:
    return BinanceApiError(-1022, "Signature for this request is not valid.")


def illegal_parameter(name: str) -> BinanceApiError:
    return BinanceApiError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '{_legal(name)}'.")


def mandatory_parameter(name: str) -> BinanceApiError:
    return BinanceApiError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def parameter_not_required(name: str) -> BinanceApiError:
    return BinanceApiError(-1106, f"Parameter '{name}' sent when not required.")


def unread_parameters(read: int, sent: int) -> BinanceApiError:
    return BinanceApiError(
        -1104, f"Not all sent parameters were read; read '{read}' parameter(s) but was sent '{sent}'."
    )


def invalid_time_in_force() -> BinanceApiError:
    return BinanceApiError(-1115, "Invalid timeInForce.")


def invalid_order_type() -> BinanceApiError:
    return BinanceApiError(-1116, "Invalid orderType.")


def unsupported_order_type(order_type: str) -> BinanceApiError:
    return BinanceApiError(-1116, f"Order type {order_type} is not supported by the loopback exchange.")


def invalid_side() -> BinanceApiError:
    return BinanceApiError(-1117, "Invalid side.")


def invalid_interval() -> BinanceApiError:
    return BinanceApiError(-1120, "Invalid interval.")


def invalid_symbol() -> BinanceApiError:
    return BinanceApiError(-1121, "Invalid symbol.")


def recv_window_too_large(max_ms: int) -> BinanceApiError:
    return BinanceApiError(-1131, f"recvWindow must be less than {max_ms}")


def insufficient_balance() -> BinanceApiError:
    return BinanceApiError(-2010, "Account has insufficient balance for requested action.")


def duplicate_order() -> BinanceApiError:
    return BinanceApiError(-2010, "Duplicate order sent.")


def would_match_immediately() -> BinanceApiError:
    return BinanceApiError(-2010, "Order would immediately match and take.")


def market_closed() -> BinanceApiError:
    return BinanceApiError(-2010, "Market is closed.")


def unknown_order() -> BinanceApiError:
    return BinanceApiError(-2011, "Unknown order sent.")


def order_does_not_exist() -> BinanceApiError:
    return BinanceApiError(-2013, "Order does not exist.")


def api_key_format_invalid() -> BinanceApiError:
    return BinanceApiError(-2014, "API-key format invalid.", HTTPStatus.UNAUTHORIZED)


def invalid_api_key() -> BinanceApiError:
    return BinanceApiError(-2015, "Invalid API-key, IP, or permissions for action.", HTTPStatus.UNAUTHORIZED)


_DECIMAL_RANGE = r"^([0-9]{1,20})(\.[0-9]{1,20})?$"
_INTEGER_RANGE = r"^[0-9]{1,20}$"
_INTEGER_PARAMS = frozenset(
    {
        "limit",
        "startTime",
        "endTime",
        "orderId",
        "fromId",
        "timestamp",
        "recvWindow",
        "strategyId",
        "strategyType",
    }
)


def _legal(name: str) -> str:
    return _INTEGER_RANGE if name in _INTEGER_PARAMS else _DECIMAL_RANGE
