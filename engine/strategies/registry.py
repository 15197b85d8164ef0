"""The strategy registry: look a strategy up by name, list them, register new ones."""

from __future__ import annotations

from engine.errors import NotFoundError, ValidationFailedError
from engine.strategies import (
    bollinger,
    buy_and_hold,
    donchian_breakout,
    ema_cross,
    kernels,
    macd,
    rsi_reversion,
    sma_cross,
)
from engine.strategies.base import EXTERNAL_TARGETS_KERNEL, F64, I8, StrategySpec, TargetsFn

_REGISTRY: dict[str, StrategySpec] = {}


def kernel_targets(kernel_id: int) -> TargetsFn:
    """The whole-array signal function of a built-in kernel."""

    def targets(o: F64, h: F64, lo: F64, c: F64, v: F64, p: F64) -> I8:
        return kernels.targets_full(kernel_id, o, h, lo, c, v, p)

    return targets


def register(spec: StrategySpec, *, replace: bool = False) -> StrategySpec:
    """Add a strategy. Custom (non built-in) strategies use ``kernel_id=EXTERNAL_TARGETS_KERNEL`` and bring
    their own ``targets_fn``; the backtest then simulates the targets that function returns."""
    if spec.name in _REGISTRY and not replace:
        raise ValidationFailedError(f"strategy '{spec.name}' is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def get_strategy(name: str) -> StrategySpec:
    """The strategy called ``name``; NotFoundError lists the available names otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        available = ", ".join(sorted(_REGISTRY))
        raise NotFoundError(f"unknown strategy '{name}' (available: {available})") from None


def list_strategies() -> list[StrategySpec]:
    """Every registered strategy, by name."""
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def _builtin(name: str, summary: str, params_model: type, kernel_id: int) -> None:
    register(StrategySpec(name, summary, params_model, kernel_id, kernel_targets(kernel_id)))


_builtin(
    "sma_cross",
    "long above / short below: fast SMA vs slow SMA of the close",
    sma_cross.SmaCrossParams,
    sma_cross.KERNEL_ID,
)
_builtin(
    "ema_cross",
    "long above / short below: fast EMA vs slow EMA of the close",
    ema_cross.EmaCrossParams,
    ema_cross.KERNEL_ID,
)
_builtin(
    "rsi_reversion",
    "buy oversold / sell overbought RSI, exit at the midline",
    rsi_reversion.RsiReversionParams,
    rsi_reversion.KERNEL_ID,
)
_builtin(
    "bollinger_breakout",
    "follow closes outside the Bollinger bands, exit at the middle band",
    bollinger.BollingerParams,
    bollinger.BREAKOUT_KERNEL_ID,
)
_builtin(
    "bollinger_reversion",
    "fade closes outside the Bollinger bands, exit at the middle band",
    bollinger.BollingerParams,
    bollinger.REVERSION_KERNEL_ID,
)
_builtin(
    "donchian_breakout",
    "turtle breakout of the previous N-bar high/low, exit on the M-bar channel",
    donchian_breakout.DonchianParams,
    donchian_breakout.KERNEL_ID,
)
_builtin("macd", "long above / short below: MACD line vs its signal line", macd.MacdParams, macd.KERNEL_ID)
_builtin(
    "buy_and_hold",
    "long from the first bar to the last (the benchmark)",
    buy_and_hold.BuyAndHoldParams,
    buy_and_hold.KERNEL_ID,
)

__all__ = ["EXTERNAL_TARGETS_KERNEL", "get_strategy", "kernel_targets", "list_strategies", "register"]
