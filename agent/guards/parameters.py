"""Numbers people attach to a name, put where they belong. A small model reads "the 14-period RSI" as
``indicators: [rsi], window: 14`` (fourteen rows of RSI, then quotes an old one), "the 50 day moving average" as
``[sma]`` with the default period, and "an SMA crossover 10/50" as a backtest with no parameters at all. Before the
call is sent, the user's words win over those guesses:

* :func:`attached_periods` reads "14-period RSI", "RSI 14", "rsi(14)", "50 day moving average", "20 EMA",
  "Bollinger bands (20, 2)", "MACD 12/26/9" as the indicator and its parameters;
* :func:`complete_indicators` writes them into the indicator specs (``rsi`` -> ``rsi:14``) and drops a ``window``
  whose only source is such a period (the user asked for the latest value, not for 14 rows);
* :func:`complete_strategy_params` fills an empty ``params`` of a strategy call from a group the user wrote as
  ``10/50`` (or ``12/26/9``), in the order of the strategy's parameters (from ``list_strategies``).

Each returns the arguments and a note of what it changed, which the tool start event carries.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

INDICATOR_WORDS: tuple[tuple[str, str], ...] = (
    # longest phrases first: "exponential moving average" is an EMA, not a moving average
    ("exponential moving averages?", "ema"),
    ("simple moving averages?", "sma"),
    ("moving averages?", "sma"),
    ("relative strength(?: index)?", "rsi"),
    ("average true range", "atr"),
    ("bollinger(?: bands?)?", "bollinger"),
    ("donchian(?: channels?)?", "donchian"),
    ("reali[sz]ed (?:vol|volatility)", "volatility"),
    ("volatility", "volatility"),
    ("returns?", "returns"),
    ("sma", "sma"),
    ("ema", "ema"),
    ("rsi", "rsi"),
    ("atr", "atr"),
    ("macd", "macd"),
    ("ma", "sma"),
)
_NAME = "|".join(f"(?:{phrase})" for phrase, _ in INDICATOR_WORDS)
_UNIT = r"(?:[- ]?(?:period|periods|day|days|d|bar|bars|candle|candles)\b)?"
"""Units of an indicator's period ("14-period", "50 day"); "4h RSI" or "4-hour RSI" names a timeframe instead."""
_BEFORE = re.compile(rf"(?<![\w.,/:-])(\d{{1,4}}){_UNIT}[- ]?(?P<name>{_NAME})\b")
_AFTER = re.compile(
    rf"\b(?P<name>{_NAME})[- ]?(?:\(\s*|:\s*|\s+)?(\d{{1,4}}(?:\.\d+)?(?:\s*[,/]\s*\d{{1,4}}(?:\.\d+)?){{0,2}})"
    rf"(?:\s*\))?{_UNIT}(?![\w/])"
)
_GROUP = re.compile(r"(?<![\w.,/:-])(\d{1,4})\s*/\s*(\d{1,4})(?:\s*/\s*(\d{1,4}))?(?![\w/])")
_SPEC = re.compile(r"^\s*([a-z_]+)\s*(?::\s*([0-9.,\s]+))?\s*$", re.IGNORECASE)


def _indicator(phrase: str) -> str:
    lowered = phrase.lower()
    for pattern, name in INDICATOR_WORDS:
        if re.fullmatch(pattern, lowered):
            return name
    return lowered


def attached_periods(text: str) -> tuple[dict[str, list[str]], list[tuple[int, int]]]:
    """The indicators the text gives parameters to (name -> the numbers as written), and where those phrases are."""
    lowered = text.lower()
    found: dict[str, list[str]] = {}
    spans: list[tuple[int, int]] = []
    for match in _AFTER.finditer(lowered):
        numbers = [n.strip() for n in re.split(r"[,/]", match.group(2))]
        found.setdefault(_indicator(match.group("name")), numbers)
        spans.append(match.span())
    for match in _BEFORE.finditer(lowered):
        if any(start <= match.start() < end for start, end in spans):
            continue
        found.setdefault(_indicator(match.group("name")), [match.group(1)])
        spans.append(match.span())
    return found, spans


def _spec_parts(spec: str) -> tuple[str, list[str]] | None:
    parsed = _SPEC.match(spec)
    if parsed is None:
        return None
    numbers = [n.strip() for n in (parsed.group(2) or "").split(",") if n.strip()]
    return parsed.group(1).lower(), numbers


def _window_said(text: str, spans: Sequence[tuple[int, int]], window: Any) -> bool:
    """``window`` is written in the text outside the indicator phrases ("the last 5 bars")."""
    rest = text.lower()
    for start, end in sorted(spans, reverse=True):
        rest = rest[:start] + " " + rest[end:]
    return re.search(rf"(?<![\w.]){re.escape(str(window))}(?![\w.])", rest) is not None


def complete_indicators(args: Mapping[str, Any], text: str) -> tuple[dict[str, Any], list[str]]:
    """``args`` with the parameters the user attached to each indicator (see the module docstring)."""
    out = dict(args)
    specs = args.get("indicators")
    if not isinstance(specs, list) or not all(isinstance(s, str) for s in specs):
        return out, []
    periods, spans = attached_periods(text)
    if not periods:
        return out, []
    notes: list[str] = []
    completed = []
    for spec in specs:
        parts = _spec_parts(spec)
        said = periods.get(parts[0]) if parts is not None else None
        if parts is None or said is None or parts[1] == said:
            completed.append(spec)
            continue
        written = f"{parts[0]}:{','.join(said)}"
        completed.append(written)
        notes.append(f"indicators: {spec} -> {written} (as written)")
    out["indicators"] = completed
    window = args.get("window")
    attached = {n for numbers in periods.values() for n in numbers}
    if window is not None and str(window) in attached and not _window_said(text, spans, window):
        del out["window"]
        notes.append(f"window: {window} dropped (it is the indicator's period, not a number of rows)")
    return out, notes


def complete_strategy_params(
    args: Mapping[str, Any], text: str, parameters: Mapping[str, Sequence[str]]
) -> tuple[dict[str, Any], list[str]]:
    """``args`` with ``params`` filled from a ``10/50`` group of the text when the call gives none (see above);
    ``parameters`` is each strategy's parameter names in order."""
    out = dict(args)
    raw = args.get("strategy")
    strategy = re.sub(r"[\s-]+", "_", raw.strip().lower()) if isinstance(raw, str) else ""
    if args.get("params") or strategy not in parameters:
        return out, []
    groups = [[g for g in m.groups() if g is not None] for m in _GROUP.finditer(text)]
    groups = [g for g in groups if not any(n.startswith("0") or len(n) == 4 for n in g)]  # not a date (2019/01/01)
    names = list(parameters[strategy])
    if len(groups) != 1 or len(groups[0]) > len(names):
        return out, []  # none, or more than one group: which is meant is not clear
    params = {name: int(value) for name, value in zip(names, groups[0], strict=False)}
    out["params"] = params
    return out, [f"params: {params} from '{'/'.join(groups[0])}' as written, in {strategy}'s parameter order"]
