"""Portfolio snapshots (what risk checks read) and the serialised form of the ledger (what the store keeps).

Money is :class:`~decimal.Decimal` throughout. Prices, notionals and PnL of one position are in its symbol's quote
currency; account totals (equity, exposure, PnL) are in the account's valuation currency.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.execution.models import OrderSide


class RecentOrder(BaseModel):
    """An order submitted recently (kept for the per-minute rate limit)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str
    ts: datetime


class PositionSnapshot(BaseModel):
    """One open position of an account, marked at the last price (unvalued, with the reason, without one)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str
    quote_currency: str
    quantity: Decimal = Field(description="signed: positive long, negative short (base units)")
    avg_cost: Decimal = Field(description="average entry price of the open quantity (quote currency)")
    cost_basis: Decimal = Field(description="signed quantity x entry price of the open quantity (quote)")
    last_price: Decimal | None = Field(description="None when no price is known (see unvalued_reason)")
    notional: Decimal | None = Field(description="|quantity| x last price (quote currency)")
    market_value: Decimal | None = Field(
        default=None, description="quantity x last price, in the account's valuation currency; None if unvalued"
    )
    unrealised_pnl: Decimal | None = Field(description="quantity x last price - cost basis (quote currency)")
    unvalued_reason: str | None = Field(default=None, description="why the position has no market value")


class AccountSnapshot(BaseModel):
    """One account marked to market."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account: str
    valuation_currency: str
    cash: dict[str, Decimal]
    positions: dict[str, PositionSnapshot]
    equity: Decimal = Field(description="cash plus positions at last prices (valuation currency)")
    day_start_equity: Decimal = Field(description="equity at the start of the UTC day, net of deposits since")
    peak_equity: Decimal = Field(description="highest equity seen, net of deposits and withdrawals since")
    realised_pnl: Decimal = Field(description="gross of fees, since the account was opened (valuation)")
    unrealised_pnl: Decimal
    fees: Decimal = Field(description="fees paid since the account was opened (valuation)")
    gross_exposure: Decimal = Field(description="sum of |market value| over positions (valuation)")
    net_exposure: Decimal = Field(description="sum of market value over positions (valuation)")
    recent_orders: tuple[RecentOrder, ...] = ()
    unvalued: dict[str, str] = Field(
        default_factory=dict,
        description="what could not be valued (a held symbol, or cash/PnL in a currency) -> why; when not empty the "
        "totals cover only the rest and the day-start and peak marks did not move",
    )

    @property
    def valued(self) -> bool:
        """Whether every position and amount of the account could be valued."""
        return not self.unvalued

    @property
    def daily_pnl(self) -> Decimal:
        return self.equity - self.day_start_equity

    @property
    def drawdown(self) -> Decimal:
        """Fraction below the peak (0 at or above it); 1 when the peak is not positive and equity is below it."""
        if self.equity >= self.peak_equity:
            return Decimal(0)
        if self.peak_equity <= 0:
            return Decimal(1)
        return (self.peak_equity - self.equity) / self.peak_equity

    def position_quantity(self, symbol: str) -> Decimal:
        position = self.positions.get(symbol)
        return Decimal(0) if position is None else position.quantity


class PortfolioSnapshot(BaseModel):
    """Every account of the ledger at one instant: the portfolio input of ``engine.risk.check``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ts: datetime
    accounts: dict[str, AccountSnapshot]


class FillApplied(BaseModel):
    """What one fill did to an account's net position."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account: str
    strategy: str
    symbol: str
    side: OrderSide
    quantity_before: Decimal
    quantity_after: Decimal
    avg_cost_after: Decimal
    realised_pnl: Decimal = Field(description="realised by this fill, gross of its fee (quote currency)")
    fee: Decimal
    cash_change: Decimal = Field(description="change of quote-currency cash, fee included")


class AttributionRow(BaseModel):
    """PnL of one strategy in one symbol of one account, in the symbol's quote currency."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account: str
    strategy: str
    symbol: str
    currency: str
    quantity: Decimal
    realised_pnl: Decimal
    unrealised_pnl: Decimal
    fees: Decimal

    @property
    def net_pnl(self) -> Decimal:
        return self.realised_pnl + self.unrealised_pnl - self.fees


# ---- serialised ledger state (``Ledger.to_dict`` / ``Ledger.from_dict``) ---------------------------------------


class LotState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quantity: Decimal
    cost_basis: Decimal


class BookState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    positions: dict[str, LotState] = {}
    realised: dict[str, Decimal] = {}
    fees: dict[str, Decimal] = {}


class AccountState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    valuation_currency: str
    cash: dict[str, Decimal] = {}
    net_deposits: dict[str, Decimal] = {}
    unmarked_flows: dict[str, Decimal] = {}
    book: BookState = BookState()
    strategies: dict[str, BookState] = {}
    day: date | None = None
    day_start_equity: Decimal | None = None
    peak_equity: Decimal | None = None
    recent_orders: list[RecentOrder] = []


class LedgerState(BaseModel):
    """The whole ledger as plain data: every Decimal dumps to a string (store it in NUMERIC columns)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    accounts: dict[str, AccountState] = {}
