"""The broker adapter contract (one shape per venue: paper/, ccxt/) and the sealed approved order.

Only ``engine.execution.gate.release`` can make an ``ApprovedOrder``: it checks, in the database, that a
human approved exactly this intent, that the approval has not expired and that the kill switch is off.
Every adapter's ``submit`` calls ``require_released`` first, so nothing else can reach a broker.

Contract (tests/contract/test_broker_contract.py runs it against every adapter):
* ``submit`` is idempotent per ``client_order_id``: submitting the same approved order again returns the
  order the venue already has, never a second order.
* ``submit`` of an order that is not released raises ``UnapprovedOrderError`` and sends nothing.
* ``fetch`` finds an order by ``client_order_id`` (None if the venue never received it).
* ``cancel`` of an open order returns it cancelled; of a closed one, raises ``OrderNotCancellableError``.
* Venue rejections raise ``VenueRejectedError`` with a clear reason; transient failures raise
  ``VenueUnavailableError`` (the caller reconciles with ``fetch`` before any retry).
* ``Fill.order_id`` is the client order id; the venue's trade id goes in ``Fill.fill_id``.
* ``balances`` returns totals per currency (free plus reserved by open orders).
* ``reconcile`` (on start) returns the venue's view of the given orders (client order id -> symbol) plus any
  other open IQTS order it holds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from decimal import Decimal
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from engine.errors import IQTSError
from engine.execution.models import Fill, OrderIntent, OrderStatus

_SEAL = object()  # private capability: only gate.release passes it


class UnapprovedOrderError(IQTSError):
    """An order reached a broker without passing the approval gate."""


class VenueRejectedError(IQTSError):
    """The venue refused the order (insufficient funds, bad symbol, filters...); never retried."""


class VenueUnavailableError(IQTSError):
    """The venue did not answer (network, 5xx, rate limit); the order's fate is unknown until reconciled."""


class OrderNotCancellableError(IQTSError):
    """The order is already closed (filled, cancelled, rejected, expired) or unknown."""


CLIENT_ORDER_ID_PREFIX = "iqts"


def client_order_id_for(approval_id: str) -> str:
    """The venue client order id derived from the approval id: a restart never makes a second order."""
    return CLIENT_ORDER_ID_PREFIX + hashlib.sha256(approval_id.encode()).hexdigest()[:28]


class ApprovedOrder:
    """An intent bound to the approval that released it. Construct only through ``gate.release``."""

    __slots__ = ("_seal", "approval_id", "client_order_id", "intent")

    def __init__(self, intent: OrderIntent, approval_id: str, *, _seal: object = None) -> None:
        self.intent = intent
        self.approval_id = approval_id
        self.client_order_id = client_order_id_for(approval_id)
        self._seal = _seal

    def __repr__(self) -> str:
        return f"ApprovedOrder(approval_id={self.approval_id!r}, intent={self.intent!r})"


def _release(intent: OrderIntent, approval_id: str) -> ApprovedOrder:
    """For ``engine.execution.gate`` only."""
    return ApprovedOrder(intent, approval_id, _seal=_SEAL)


def require_released(order: object) -> ApprovedOrder:
    """Raise unless ``order`` was released by the approval gate (every adapter's ``submit`` calls this)."""
    if not isinstance(order, ApprovedOrder) or order._seal is not _SEAL:
        raise UnapprovedOrderError("refused: this order was not released by the approval gate")
    return order


class VenueOrder(BaseModel):
    """An order as the venue reports it."""

    model_config = ConfigDict(frozen=True)

    client_order_id: str
    venue_order_id: str | None = None
    symbol: str
    status: OrderStatus
    quantity: Decimal
    filled_quantity: Decimal = Decimal(0)
    average_price: Decimal | None = None
    fills: list[Fill] = Field(default_factory=list)
    reason: str | None = None


@runtime_checkable
class Broker(Protocol):
    """One venue account."""

    name: str

    async def submit(self, order: ApprovedOrder) -> VenueOrder: ...

    async def fetch(self, symbol: str, client_order_id: str) -> VenueOrder | None: ...

    async def cancel(self, symbol: str, client_order_id: str) -> VenueOrder: ...

    async def open_orders(self, symbol: str | None = None) -> list[VenueOrder]: ...

    async def balances(self) -> dict[str, Decimal]: ...

    async def reconcile(self, known_client_order_ids: Mapping[str, str]) -> list[VenueOrder]: ...

    async def close(self) -> None: ...


def receive_window_s(broker: object) -> float | None:
    """How long after signing a request the broker's venue may still accept it (``receive_window_s`` on the adapter;
    0 for an in-process venue), or None when the adapter does not say (the venue may accept it at any time)."""
    value = getattr(broker, "receive_window_s", None)
    return None if value is None else float(value)
