"""The order vocabulary shared by risk, the OMS, the broker adapters and approvals.

An :class:`OrderIntent` is what a person approves; its :meth:`OrderIntent.intent_hash` binds an approval to
exactly that order. :func:`transition` is the OMS state machine; :class:`Fill` is one execution report.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.data.quote import Quote
from engine.errors import ValidationFailedError
from engine.settings import TradingMode

SYMBOL_PATTERN: Final = r"^[A-Za-z0-9._]+/[A-Za-z0-9._]+(:[A-Za-z0-9._]+(-[A-Za-z0-9._-]+)?)?$"
"""A ccxt unified symbol: ``BASE/QUOTE`` (spot) or ``BASE/QUOTE:SETTLE[-EXPIRY...]`` (derivatives)."""
_SYMBOL_RE: Final = re.compile(SYMBOL_PATTERN)

INTENT_HASH_SCHEMA: Final = "iqts.order-intent/1"
"""Written into every hashed payload, so a future change of the hashed fields cannot collide with this one."""


def is_symbol(text: str) -> bool:
    """Whether ``text`` is a ccxt unified symbol such as ``BTC/USDT`` or ``BTC/USDT:USDT``."""
    return _SYMBOL_RE.match(text) is not None


def base_currency(symbol: str) -> str:
    """``BTC`` for ``BTC/USDT`` and for ``BTC/USDT:USDT``."""
    return symbol.split("/", 1)[0]


def quote_currency(symbol: str) -> str:
    """``USDT`` for ``BTC/USDT`` and for ``BTC/USDT:USDT``: the currency prices and notionals are in."""
    return symbol.split("/", 1)[1].split(":", 1)[0]


def canonical_decimal(value: Decimal) -> str:
    """The one text of a number: no exponent, no trailing zeros (``1.0``, ``1.00`` and ``1E0`` give ``1``)."""
    if not value.is_finite():
        raise ValidationFailedError(f"not a finite number: {value}")
    if value.is_zero():
        return "0"
    return format(value.normalize(), "f")


class OrderSide(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell: the sign of the position change."""
        return 1 if self is OrderSide.BUY else -1


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


PRICED_TYPES: Final = frozenset({OrderType.LIMIT, OrderType.STOP_LIMIT})
"""Order types that carry a limit price."""
STOP_TYPES: Final = frozenset({OrderType.STOP, OrderType.STOP_LIMIT})
"""Order types that carry a stop (trigger) price."""


class TimeInForce(StrEnum):
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"
    POST_ONLY = "post_only"


class OrderIntent(BaseModel):
    """An order someone wants placed: what the approver sees, what risk checks and what the OMS submits."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["order"] = Field(default="order", exclude=True)
    """The approval kind (see engine.intents): discriminates the union of intents, never dumped or hashed."""
    account: str = Field(min_length=1, max_length=64)
    symbol: str = Field(pattern=SYMBOL_PATTERN, description="ccxt unified symbol, e.g. BTC/USDT")
    side: OrderSide
    type: OrderType
    quantity: Decimal = Field(gt=0, description="in base currency units")
    price: Decimal | None = Field(default=None, gt=0, description="limit price; limit and stop_limit only")
    stop_price: Decimal | None = Field(default=None, gt=0, description="trigger price; stop and stop_limit only")
    mode: TradingMode = "dry-run"
    strategy: str | None = Field(default=None, min_length=1, max_length=64)
    time_in_force: TimeInForce = TimeInForce.GTC

    @field_validator("account")
    @classmethod
    def _account_is_trimmed(cls, value: str) -> str:
        if value != value.strip():
            raise ValueError("account must not start or end with whitespace")
        return value

    @model_validator(mode="after")
    def _prices_match_type(self) -> OrderIntent:
        if self.type in PRICED_TYPES and self.price is None:
            raise ValueError(f"a {self.type} order needs a price")
        if self.type not in PRICED_TYPES and self.price is not None:
            raise ValueError(f"a {self.type} order takes no price (only limit and stop_limit do)")
        if self.type in STOP_TYPES and self.stop_price is None:
            raise ValueError(f"a {self.type} order needs a stop_price")
        if self.type not in STOP_TYPES and self.stop_price is not None:
            raise ValueError(f"a {self.type} order takes no stop_price (only stop and stop_limit do)")
        return self

    @property
    def base(self) -> str:
        return base_currency(self.symbol)

    @property
    def quote(self) -> str:
        return quote_currency(self.symbol)

    @property
    def signed_quantity(self) -> Decimal:
        """The position change if fully filled: positive for a buy, negative for a sell."""
        return self.quantity if self.side is OrderSide.BUY else -self.quantity

    def describe(self) -> str:
        """``buy 0.05 BTC/USD limit @ 8000 on paper (dry-run)``: the one line every surface shows."""
        price = f" @ {canonical_decimal(self.price)}" if self.price is not None else ""
        stop = f" stop {canonical_decimal(self.stop_price)}" if self.stop_price is not None else ""
        tif = f" {self.time_in_force.value}" if self.time_in_force is not TimeInForce.GTC else ""
        return (
            f"{self.side.value} {canonical_decimal(self.quantity)} {self.symbol} {self.type.value}{price}{stop}{tif} "
            f"on {self.account} ({self.mode})"
        )

    def hashed_fields(self) -> dict[str, str | None]:
        """The fields an approval is bound to, in canonical text form."""
        return {
            "account": self.account,
            "mode": self.mode,
            "price": None if self.price is None else canonical_decimal(self.price),
            "quantity": canonical_decimal(self.quantity),
            "side": self.side.value,
            "stop_price": None if self.stop_price is None else canonical_decimal(self.stop_price),
            "symbol": self.symbol,
            "time_in_force": self.time_in_force.value,
            "type": self.type.value,
        }

    def intent_hash(self) -> str:
        """sha256 of canonical JSON: symbol, side, type, quantity, price, stop_price, time in force, account, mode.

        Numbers are normalised (``1.0`` and ``1.00`` hash alike) and keys sorted, so the hash depends only on
        what the order does. ``strategy`` (attribution only) is not part of it; the time in force is, because
        turning a GTC order into IOC after approval changes what it does.
        """
        payload: dict[str, object] = {"schema": INTENT_HASH_SCHEMA, **self.hashed_fields()}
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(text.encode("ascii")).hexdigest()


class OrderStatus(StrEnum):
    NEW = "new"
    SUBMITTED = "submitted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        """No event moves an order out of a terminal status."""
        return self in TERMINAL_STATUSES

    @property
    def is_open(self) -> bool:
        """Live at the venue (or about to be): may still fill or be cancelled."""
        return not self.is_terminal


class OrderEvent(StrEnum):
    SUBMIT = "submit"
    PARTIAL_FILL = "partial_fill"
    FILL = "fill"
    CANCEL = "cancel"
    REJECT = "reject"
    EXPIRE = "expire"


TERMINAL_STATUSES: Final = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)

TRANSITIONS: Final[Mapping[tuple[OrderStatus, OrderEvent], OrderStatus]] = {
    (OrderStatus.NEW, OrderEvent.SUBMIT): OrderStatus.SUBMITTED,
    (OrderStatus.SUBMITTED, OrderEvent.PARTIAL_FILL): OrderStatus.PARTIALLY_FILLED,
    (OrderStatus.PARTIALLY_FILLED, OrderEvent.PARTIAL_FILL): OrderStatus.PARTIALLY_FILLED,
    (OrderStatus.SUBMITTED, OrderEvent.FILL): OrderStatus.FILLED,
    (OrderStatus.PARTIALLY_FILLED, OrderEvent.FILL): OrderStatus.FILLED,
    (OrderStatus.NEW, OrderEvent.CANCEL): OrderStatus.CANCELLED,
    (OrderStatus.SUBMITTED, OrderEvent.CANCEL): OrderStatus.CANCELLED,
    (OrderStatus.PARTIALLY_FILLED, OrderEvent.CANCEL): OrderStatus.CANCELLED,
    (OrderStatus.NEW, OrderEvent.REJECT): OrderStatus.REJECTED,
    (OrderStatus.SUBMITTED, OrderEvent.REJECT): OrderStatus.REJECTED,
    (OrderStatus.SUBMITTED, OrderEvent.EXPIRE): OrderStatus.EXPIRED,
    (OrderStatus.PARTIALLY_FILLED, OrderEvent.EXPIRE): OrderStatus.EXPIRED,
}
"""The OMS state machine: (current status, event) -> next status. Anything not listed is illegal."""


class IllegalTransitionError(ValidationFailedError):
    """An order event that the state machine does not allow from the order's current status."""

    def __init__(self, current: OrderStatus, event: OrderEvent) -> None:
        self.current = current
        self.event = event
        allowed = allowed_events(current)
        hint = ("allowed: " + ", ".join(e.value for e in allowed)) if allowed else f"{current.value} is terminal"
        super().__init__(f"illegal order transition: cannot apply '{event.value}' to a {current.value} order ({hint})")


def allowed_events(current: OrderStatus) -> tuple[OrderEvent, ...]:
    """The events legal from ``current``, in declaration order."""
    return tuple(event for event in OrderEvent if (current, event) in TRANSITIONS)


def transition(current: OrderStatus, event: OrderEvent) -> OrderStatus:
    """The status after ``event``; raises :class:`IllegalTransitionError` if the machine forbids it."""
    try:
        return TRANSITIONS[(current, event)]
    except KeyError:
        raise IllegalTransitionError(current, event) from None


class Liquidity(StrEnum):
    MAKER = "maker"
    TAKER = "taker"


class Fill(BaseModel):
    """One execution of (part of) an order, as a venue reports it.

    ``fee`` is what was paid (a negative fee is a maker rebate); the portfolio accepts fees in the symbol's
    quote currency only, so an adapter whose venue charges another currency converts first.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    order_id: str = Field(min_length=1)
    fill_id: str | None = Field(default=None, min_length=1, description="the venue's trade id, when it has one")
    symbol: str = Field(pattern=SYMBOL_PATTERN)
    side: OrderSide
    quantity: Decimal = Field(gt=0)
    price: Decimal = Field(gt=0)
    fee: Decimal = Decimal(0)
    fee_currency: str = Field(min_length=1)
    ts: datetime
    liquidity: Liquidity
    quote: Quote | None = Field(
        default=None,
        description="the market price a simulated fill was made against (series, age, replayed); None for a "
        "venue's own fills",
    )

    @field_validator("ts")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("fill time must be timezone-aware (UTC)")
        return value

    @property
    def signed_quantity(self) -> Decimal:
        return self.quantity if self.side is OrderSide.BUY else -self.quantity

    @property
    def notional(self) -> Decimal:
        """quantity x price, in the quote currency."""
        return self.quantity * self.price
