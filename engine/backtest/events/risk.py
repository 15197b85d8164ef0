"""The pre-trade risk hook of the event-driven backtest: the same interface the live engine's rules implement.

Contract: ``check`` is called once per order at submission, before the order can reach the simulated venue,
with the portfolio and the market as they are at that moment; it returns a verdict and never raises for a
rule that fails (a failing rule is a ``RiskVerdict(allowed=False, reasons=[...])``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from engine.backtest.events.orders import OrderRequest


class PortfolioState(BaseModel):
    """The account when an order is submitted."""

    model_config = ConfigDict(frozen=True)

    cash: float
    position: float = Field(description="signed base units held")
    equity: float
    working_orders: int


class MarketState(BaseModel):
    """The bar at whose close an order is submitted."""

    model_config = ConfigDict(frozen=True)

    index: int
    ts: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float


class RiskVerdict(BaseModel):
    """Whether an order may go out, and why not."""

    model_config = ConfigDict(frozen=True)

    allowed: bool
    reasons: list[str] = Field(default_factory=list)


@runtime_checkable
class PreTradeCheck(Protocol):
    """Decides, before submission, whether an order may go out."""

    def check(self, order: OrderRequest, portfolio: PortfolioState, market: MarketState) -> RiskVerdict: ...


class AllowAll:
    """The default check: every order passes (the real rules arrive with the execution engine)."""

    def check(self, order: OrderRequest, portfolio: PortfolioState, market: MarketState) -> RiskVerdict:
        return RiskVerdict(allowed=True)
