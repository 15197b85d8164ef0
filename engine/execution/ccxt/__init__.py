"""The ccxt venue adapter (sandbox and live, per account): config, errors, execution.

The package shares its name with the ``ccxt`` library; absolute imports keep the two apart (``import ccxt`` is
always the library).
"""

from engine.execution.broker import CLIENT_ORDER_ID_PREFIX
from engine.execution.ccxt.config import CLIENT_ORDER_ID_PARAMS, CcxtBrokerConfig, ClientOrderIdParams
from engine.execution.ccxt.errors import CcxtRejectedError, WithdrawalKeyError
from engine.execution.ccxt.execution import CcxtBroker, KeyPermissions

__all__ = [
    "CLIENT_ORDER_ID_PARAMS",
    "CLIENT_ORDER_ID_PREFIX",
    "CcxtBroker",
    "CcxtBrokerConfig",
    "CcxtRejectedError",
    "ClientOrderIdParams",
    "KeyPermissions",
    "WithdrawalKeyError",
]
