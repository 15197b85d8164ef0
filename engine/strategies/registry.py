"""The strategy registry: look a strategy up by name, list them, register new ones, and read a name as people
write it (:func:`resolve_strategy_name`: "SMA cross" -> sma_cross, "rsi" -> rsi_reversion)."""

from __future__ import annotations

import re
from collections.abc import Iterable

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


def _unknown(name: str, available: Iterable[str], could_mean: Iterable[str] = ()) -> NotFoundError:
    listing = ", ".join(sorted(available))
    candidates = sorted(could_mean)
    if not candidates:
        return NotFoundError(f"unknown strategy '{name}' (available: {listing})")
    options = candidates[0] if len(candidates) == 1 else f"{', '.join(candidates[:-1])} or {candidates[-1]}"
    return NotFoundError(f"unknown strategy '{name}': it could mean {options} (available: {listing})")


def get_strategy(name: str) -> StrategySpec:
    """The strategy called exactly ``name``; NotFoundError lists the available names otherwise (surfaces that take
    what people write resolve it first with :func:`resolve_strategy_name`)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise _unknown(name, _REGISTRY) from None


_WORD_BREAKS = re.compile(r"[^a-z0-9&]+")
_SYNONYMS = {"crossover": "cross", "crossovers": "cross", "crossing": "cross", "&": "and"}
"""Words read as another before matching ("SMA crossover" is sma_cross, "buy & hold" buy_and_hold)."""
_FILLER = frozenset({"strategy", "strategies", "strat", "the", "a", "band", "bands", "channel", "channels"})
"""Words that name no strategy of their own ("Bollinger bands strategy" means a Bollinger strategy)."""
_SHORT_FORM_TAILS = frozenset({"cross", "signal", "line"})
"""Words a name may be followed by and still mean it: "macd cross" is macd (the MACD line crossing its signal)."""


def _words(text: str) -> tuple[str, ...]:
    spaced = text.strip().lower().replace("&", " & ")
    words = [_SYNONYMS.get(w, w) for w in _WORD_BREAKS.split(spaced) if w]
    return tuple(w for w in words if w not in _FILLER)


Words = tuple[str, ...]


def _same_words(given: Words, name: Words) -> bool:
    """ "SMA cross", "sma-cross", "SMACross" for sma_cross."""
    return given == name or "".join(given) == "".join(name)


def _short_form(given: Words, name: Words) -> bool:
    """ "rsi" for rsi_reversion (its first words), "macd cross" for macd (the name and a word like "cross")."""
    if name[: len(given)] == given:
        return True
    return given[: len(name)] == name and set(given[len(name) :]) <= _SHORT_FORM_TAILS


def _holds_every_word(given: Words, name: Words) -> bool:
    """ "hold" for buy_and_hold ("and" alone means nothing)."""
    return set(given) <= set(name) and not set(given) <= {"and"}


_RULES = (_same_words, _short_form, _holds_every_word)
"""The matching rules of :func:`resolve_strategy_name`, the most exact first."""


def resolve_strategy_name(text: str, names: Iterable[str] | None = None) -> str:
    """The registered strategy name ``text`` means, as people write it (``names``: the names to choose among,
    the registry's by default).

    The first rule that matches any name decides: the exact name; the same words ignoring case, spaces, hyphens
    and filler ("SMA cross", "sma-cross", "SMACross", "Buy & Hold", "SMA crossover strategy"); a name whose first
    words ``text`` is, or the name followed by a word such as "cross" ("rsi" -> rsi_reversion, "macd cross" ->
    macd); a name holding every word of ``text`` ("hold" -> buy_and_hold). A rule matching several names is
    ambiguous and never guessed: the NotFoundError says which names it could mean ("breakout":
    bollinger_breakout or donchian_breakout). Nothing matching is the NotFoundError listing the available
    names: there is no spelling correction, so an unknown name never becomes a different strategy.
    """
    available = sorted(set(_REGISTRY if names is None else names))
    written = text.strip()
    if written in available:
        return written
    given = _words(written)
    if given:
        split = {name: words for name in available if (words := _words(name))}
        for rule in _RULES:
            matches = [name for name, words in split.items() if rule(given, words)]
            if len(matches) == 1:
                return matches[0]
            if matches:
                raise _unknown(written, available, matches)
    raise _unknown(written, available)


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

__all__ = [
    "EXTERNAL_TARGETS_KERNEL",
    "get_strategy",
    "kernel_targets",
    "list_strategies",
    "register",
    "resolve_strategy_name",
]
