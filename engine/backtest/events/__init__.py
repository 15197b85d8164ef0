"""The event-driven backtest: orders, latency, partial fills, maker/taker fees, funding, pre-trade risk."""

from engine.backtest.events.engine import (
    BarContext,
    EventBacktestConfig,
    EventEngine,
    EventStrategy,
    StrategyDecision,
    TargetStrategy,
    run_event_backtest,
)
from engine.backtest.events.orders import Order, OrderRequest, OrderStatus, OrderType
from engine.backtest.events.risk import AllowAll, MarketState, PortfolioState, PreTradeCheck, RiskVerdict

__all__ = [
    "AllowAll",
    "BarContext",
    "EventBacktestConfig",
    "EventEngine",
    "EventStrategy",
    "MarketState",
    "Order",
    "OrderRequest",
    "OrderStatus",
    "OrderType",
    "PortfolioState",
    "PreTradeCheck",
    "RiskVerdict",
    "StrategyDecision",
    "TargetStrategy",
    "run_event_backtest",
]
