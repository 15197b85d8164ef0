"""Portfolio: positions, balances, average cost, realised and unrealised PnL, fees, attribution (Decimal)."""

from engine.portfolio.ledger import UNATTRIBUTED, Ledger
from engine.portfolio.models import (
    AccountSnapshot,
    AttributionRow,
    FillApplied,
    LedgerState,
    PortfolioSnapshot,
    PositionSnapshot,
    RecentOrder,
)
from engine.portfolio.valuation import conversion_rate

__all__ = [
    "UNATTRIBUTED",
    "AccountSnapshot",
    "AttributionRow",
    "FillApplied",
    "Ledger",
    "LedgerState",
    "PortfolioSnapshot",
    "PositionSnapshot",
    "RecentOrder",
    "conversion_rate",
]
