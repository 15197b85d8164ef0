"""The paper venue adapter: simulated fills on live or replayed prices (config, data, execution)."""

from engine.execution.paper.config import PaperBrokerConfig
from engine.execution.paper.data import ManualPriceFeed, PriceBar, PriceFeed, StorePriceFeed
from engine.execution.paper.execution import PaperBroker

__all__ = ["ManualPriceFeed", "PaperBroker", "PaperBrokerConfig", "PriceBar", "PriceFeed", "StorePriceFeed"]
