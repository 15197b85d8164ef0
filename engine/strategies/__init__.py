"""Strategy registry: each strategy is a typed parameter model plus a look-ahead-free target kernel.

>>> spec = get_strategy(resolve_strategy_name("SMA cross"))   # "sma_cross"
>>> params = spec.validate_params({"fast": 10, "slow": 50})
>>> targets = spec.signals(open_, high, low, close, volume, params)   # int8 in {-1, 0, +1}
"""

from engine.strategies.base import (
    EXTERNAL_TARGETS_KERNEL,
    ParamSpace,
    StrategyParams,
    StrategySpec,
)
from engine.strategies.registry import get_strategy, list_strategies, register, resolve_strategy_name

__all__ = [
    "EXTERNAL_TARGETS_KERNEL",
    "ParamSpace",
    "StrategyParams",
    "StrategySpec",
    "get_strategy",
    "list_strategies",
    "register",
    "resolve_strategy_name",
]
