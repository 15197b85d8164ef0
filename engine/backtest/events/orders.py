"""Orders of the event-driven backtest: what a strategy asks for, and the working order the engine tracks."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"


class OrderStatus(StrEnum):
    WORKING = "working"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


@dataclass(frozen=True)
class OrderRequest:
    """What a strategy submits at a bar's close.

    ``side`` is +1 (buy) or -1 (sell). ``qty`` in base units; ``None`` means all-in, sized at the first fill
    from the equity then (``equity / (price * (1 + fee))``, rounded down to the lot size), or, with
    ``reduce_only``, the whole position at fill time. ``price`` is the limit price of a limit order and the
    trigger of a stop order. A reduce-only order never flips the position.
    """

    side: int
    order_type: OrderType = OrderType.MARKET
    qty: float | None = None
    price: float | None = None
    reduce_only: bool = False
    tag: str = ""

    def __post_init__(self) -> None:
        if self.side not in (1, -1):
            raise ValueError(f"order side must be +1 or -1, got {self.side}")
        if self.order_type != OrderType.MARKET and (self.price is None or not self.price > 0):
            raise ValueError(f"a {self.order_type} order needs a positive price")
        if self.qty is not None and not (self.qty > 0 and math.isfinite(self.qty)):
            raise ValueError(f"order qty must be positive, got {self.qty}")


@dataclass
class Order:
    """A submitted order as the engine works it: active from ``active_from`` (latency), partly filled."""

    id: int
    request: OrderRequest
    submitted_at: int
    active_from: int
    status: OrderStatus = OrderStatus.WORKING
    total_qty: float | None = None  # fixed at the first fill for all-in / reduce-only orders
    filled_qty: float = 0.0
    fills: list[int] = field(default_factory=list)

    @property
    def remaining(self) -> float | None:
        return None if self.total_qty is None else max(self.total_qty - self.filled_qty, 0.0)
