"""Figures rendered, not retyped: the numbers of a final answer come from the tool results through one deterministic
renderer, and an answer whose figures do not match them is repaired.

* :func:`render_figures` reads the structured tool results of the turn and renders each known figure by its kind:
  fractions as percentages (``total_return: 3.93`` -> ``393.00 %``), money with separators and its currency
  (``12,345.67 USD``), prices at a precision that suits their size, ratios to two places, counts as integers,
  quantities trimmed; each with the series and period it belongs to (``BTC/USD 1d, 2019-01-01 to 2020-12-31``).
* :func:`repair_figures` checks the model's answer against them: a percentage that is really the fraction
  (``3.93 %`` for a total return of 3.93) is replaced by the rendered figure; a figure no tool result or user
  message backs is removed with its sentence. :mod:`agent.guards.rails` runs it as a guardrails-ai validator that
  fixes (``OnFailAction.FIX``) the answer.
* :func:`figure_block` is the rendered figures the answer did not already state, appended under the model's words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from agent.guards.evidence import is_grounded, numbers_in_text, to_decimal

Kind = Literal["fraction", "money", "price", "ratio", "count", "quantity"]

KINDS: dict[str, Kind] = {
    # fractions of 1, shown as percentages
    "total_return": "fraction",
    "benchmark_return": "fraction",
    "excess_return": "fraction",
    "cagr": "fraction",
    "volatility": "fraction",
    "max_drawdown": "fraction",
    "drawdown": "fraction",
    "win_rate": "fraction",
    "exposure": "fraction",
    "expectancy": "fraction",
    "return": "fraction",
    # money, in the account's currency
    "final_equity": "money",
    "initial_cash": "money",
    "equity": "money",
    "cash": "money",
    "balance": "money",
    "realised_pnl": "money",
    "unrealised_pnl": "money",
    "daily_pnl": "money",
    "fees": "money",
    "notional": "money",
    "market_value": "money",
    # prices, in the symbol's quote currency
    "last": "price",
    "price": "price",
    "bid": "price",
    "ask": "price",
    "open": "price",
    "high": "price",
    "low": "price",
    "close": "price",
    "avg_cost": "price",
    "last_price": "price",
    "average_price": "price",
    # ratios and counts
    "sharpe": "ratio",
    "sortino": "ratio",
    "calmar": "ratio",
    "profit_factor": "ratio",
    "turnover": "ratio",
    "leverage": "ratio",
    "n_trades": "count",
    "n_bars": "count",
    "max_drawdown_duration": "count",
    "n_trials": "count",
    # amounts of an asset
    "quantity": "quantity",
    "filled_quantity": "quantity",
}
UNITS: dict[str, str] = {"max_drawdown_duration": "bars", "n_bars": "bars"}
LABELS: dict[str, str] = {
    "n_trades": "closed trades",
    "n_bars": "bars",
    "max_drawdown_duration": "longest drawdown",
    "last": "last price",
    "cagr": "CAGR",
    "n_trials": "trials",
}
INDICATOR_KINDS: dict[str, Kind] = {
    "sma": "price",
    "ema": "price",
    "bollinger": "price",
    "donchian": "price",
    "atr": "price",
    "macd": "price",
    "rsi": "ratio",
    "returns": "fraction",
    "volatility": "fraction",
}
"""Indicator outputs (``rsi(14)``, ``bollinger(20,2).upper``) by their name: levels in the quote currency, RSI as an
index, returns and annualised volatility as fractions."""
_INDICATOR_KEY = re.compile(r"^([a-z_]+)\([0-9., ]*\)(?:\.[a-z_]+)?$")
TIME_KEYS = ("ts", "time", "timestamp", "as_of")
"""A list whose items carry one of these is a time series: its latest items are the ones to report."""
MAX_FIGURES = 24
BLOCK_HEAD = "Figures from the tool results"
"""How the appended block of rendered figures begins (``agent.memory`` cuts earlier answers there)."""
_LIST_ITEMS = 5
NOT_FIGURES: frozenset[str] = frozenset({"parameters", "bounds", "search_space"})
"""Keys whose subtree describes a schema (a parameter's low and high bounds), not figures of a result."""
FIGURELESS_TOOLS: frozenset[str] = frozenset({"list_strategies", "search_knowledge", "add_note", "list_markets"})
"""Tools whose results are catalogues or passages: their numbers are not figures to report."""


class Figure(BaseModel):
    """One figure of a tool result, rendered."""

    model_config = ConfigDict(frozen=True)

    tool: str
    path: str
    kind: Kind
    value: Decimal
    text: str
    context: str = ""

    @property
    def label(self) -> str:
        key = self.path.rsplit(".", 1)[-1]
        return LABELS.get(key, key.replace("_", " "))

    @property
    def shown(self) -> Decimal:
        """The number as the rendered text shows it (a fraction times 100)."""
        return self.value * 100 if self.kind == "fraction" else self.value


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _trim(number: Decimal, places: int) -> str:
    text = f"{number:,.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def render(kind: Kind, value: Decimal, *, currency: str = "", asset: str = "", unit: str = "") -> str:
    """One figure as the answer shows it."""
    if kind == "fraction":
        return f"{value * 100:,.2f} %"
    if kind == "money":
        return f"{value:,.2f}" + (f" {currency}" if currency else "")
    if kind == "price":
        magnitude = abs(value)
        places = 2 if magnitude >= 1 or magnitude == 0 else 6 if magnitude >= Decimal("0.0001") else 10
        return f"{value:,.{places}f}" + (f" {currency}" if currency else "")
    if kind == "ratio":
        return f"{value:,.2f}"
    if kind == "count":
        return f"{int(value):,}" + (f" {unit}" if unit else "")
    return _trim(value, 8) + (f" {asset}" if asset else "")


def context_of(node: Mapping[str, Any], parent: str) -> str:
    """Which series and period a result node is about (its parent's when it does not say)."""
    symbol = node.get("symbol")
    timeframe = node.get("timeframe")
    start, end = node.get("start"), node.get("end")
    parts = [str(p) for p in (symbol, timeframe) if p]
    text = " ".join(parts)
    if start and end:
        text += f", {str(start)[:10]} to {str(end)[:10]}"
    return text or parent


def currencies_of(node: Mapping[str, Any], inherited: tuple[str, str]) -> tuple[str, str]:
    """(asset, quote currency) a result node's amounts and prices are in."""
    symbol = node.get("symbol")
    asset, quote = inherited
    if isinstance(symbol, str) and "/" in symbol:
        asset, quote = symbol.split("/", 1)[0], symbol.split("/", 1)[1].split(":", 1)[0]
    currency = node.get("currency") or node.get("quote_currency")
    if isinstance(currency, str) and currency:
        quote = currency
    return asset, quote


def kind_of(key: str) -> Kind | None:
    """The kind of figure a result key holds (None: not a figure)."""
    kind = KINDS.get(key)
    if kind is None and (indicator := _INDICATOR_KEY.match(key)) is not None:
        kind = INDICATOR_KINDS.get(indicator.group(1))
    return kind


def figure_of(key: str, value: Any, money: tuple[str, str]) -> tuple[Kind, Decimal, str] | None:
    """(kind, value, rendered text) when ``key: value`` is a known figure, else None."""
    kind = kind_of(key)
    number = _decimal(value) if kind is not None else None
    if kind is None or number is None:
        return None
    asset, quote = money
    currency = quote if kind in ("money", "price") else ""
    if kind == "money" and not currency:
        currency = "USD"
    return kind, number, render(kind, number, currency=currency, asset=asset, unit=UNITS.get(key, ""))


def _walk(
    tool: str,
    node: Mapping[str, Any],
    path: str,
    context: str,
    money: tuple[str, str],
    out: list[Figure],
    list_items: int | None,
) -> None:
    context = context_of(node, context)
    money = currencies_of(node, money)
    for key, value in node.items():
        where = f"{path}{key}"
        if key in NOT_FIGURES:
            continue
        if isinstance(value, Mapping):
            _walk(tool, value, where + ".", context, money, out, list_items)
            continue
        if isinstance(value, list):
            for i in _items_to_report(value, list_items):
                _walk(tool, value[i], f"{where}[{i}].", context, money, out, list_items)
            continue
        figure = figure_of(key, value, money)
        if figure is not None:
            kind, number, text = figure
            out.append(Figure(tool=tool, path=where, kind=kind, value=number, text=text, context=context))


def is_time_series(items: list[Any]) -> bool:
    """Every item of the list is a mapping with a time (:data:`TIME_KEYS`): a series, oldest first."""
    return bool(items) and all(isinstance(i, Mapping) and any(k in i for k in TIME_KEYS) for i in items)


def _items_to_report(items: list[Any], limit: int | None) -> list[int]:
    """Indices of the mapping items of a list to render: the first ``limit``; of a time series (oldest first, as
    every tool returns them) only the latest when the figures are capped, all of them latest first when not."""
    indices = [i for i, item in enumerate(items) if isinstance(item, Mapping)]
    if is_time_series([items[i] for i in indices]):
        indices.reverse()
        limit = None if limit is None else 1
    return indices if limit is None else indices[:limit]


def render_figures(
    artifacts: Iterable[tuple[str, Mapping[str, Any]]],
    *,
    limit: int | None = MAX_FIGURES,
    list_items: int | None = _LIST_ITEMS,
) -> list[Figure]:
    """Every known figure of this turn's structured tool results, rendered (at most ``limit``, from the first
    ``list_items`` of each list; None: all). Catalogue tools (:data:`FIGURELESS_TOOLS`) have none."""
    out: list[Figure] = []
    for tool, result in artifacts:
        if tool not in FIGURELESS_TOOLS:
            _walk(tool, result, "", "", ("", ""), out, list_items)
    if limit is None:
        return out
    seen: set[tuple[str, str, Decimal]] = set()
    distinct = []
    for figure in out:  # a result that repeats a figure (the benchmark beside the metrics, the last equity point)
        key = (figure.context, figure.kind, figure.value)
        if key not in seen:
            seen.add(key)
            distinct.append(figure)
    return distinct[:limit]


def figure_sources(figures: Iterable[Figure]) -> set[Decimal]:
    """The numbers the rendered figures show (so the appended block counts as grounded)."""
    return {f.shown for f in figures}


# -- repairing the answer --------------------------------------------------------------------------------------

_PERCENT = re.compile(r"(?<![\w.,])(-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?)\s?(%|percent\b)", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n")


class FigureRepair(BaseModel):
    text: str
    replaced: list[tuple[str, str]] = []
    removed: list[str] = []

    @property
    def changed(self) -> bool:
        return bool(self.replaced or self.removed)

    def describe(self) -> str:
        parts = [f"{old!r} is {new}" for old, new in self.replaced]
        parts += [f"{number!r} is in no tool result" for number in self.removed]
        return "figures repaired: " + "; ".join(parts)


def _places(raw: str) -> int:
    return len(raw.split(".", 1)[1]) if "." in raw else 0


def _matches(raw: str, value: Decimal) -> bool:
    number = to_decimal(raw)
    if number is None:
        return False
    try:
        return abs(value).quantize(Decimal(1).scaleb(-_places(raw))) == abs(number)
    except InvalidOperation:
        return False


def repair_figures(answer: str, figures: list[Figure], sources: set[Decimal], *, small: int = 10) -> FigureRepair:
    """The answer with mis-scaled percentages replaced by the rendered figure and invented figures removed."""
    fractions = [f for f in figures if f.kind == "fraction"]
    replaced: list[tuple[str, str]] = []
    grounded = set(sources) | figure_sources(figures)

    def fix_percent(match: re.Match[str]) -> str:
        raw = match.group(1)
        if any(_matches(raw, f.shown) for f in fractions):
            return match.group(0)  # a fraction shown as a percentage: right
        wrong = next((f for f in fractions if _matches(raw, f.value) and f.shown != f.value), None)
        if wrong is not None:  # the fraction written as if it were the percentage
            replaced.append((match.group(0), f"{wrong.label} {wrong.text}"))
            return wrong.text
        return match.group(0)

    text = _PERCENT.sub(fix_percent, answer)
    removed: list[str] = []
    kept_sentences = []
    for sentence in _sentences(text):
        bad = [
            raw
            for raw in numbers_in_text(sentence)
            if not _is_small(raw, small) and not is_grounded(raw, grounded) and not _inside_rendered(raw, figures)
        ]
        if bad:
            removed += bad
            continue
        kept_sentences.append(sentence)
    if removed:
        text = "".join(kept_sentences).strip()
    return FigureRepair(text=text, replaced=replaced, removed=removed)


def _sentences(text: str) -> list[str]:
    """``text`` cut after each sentence end (a full stop in 1.23 is not one); joined, they give ``text`` back."""
    out, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        out.append(text[start : match.end()])
        start = match.end()
    if start < len(text):
        out.append(text[start:])
    return out


def _is_small(raw: str, small: int) -> bool:
    number = to_decimal(raw)
    return number is not None and number == number.to_integral_value() and 0 <= number <= small


def _inside_rendered(raw: str, figures: list[Figure]) -> bool:
    return any(raw in f.text for f in figures)


def states(answer: str, figure: Figure) -> bool:
    """The answer already gives this figure: as rendered, or as a number that is its value at the precision
    written (8709.49 for a last price of 8709.49; 393 % for a total return of 3.93)."""
    if figure.text in answer:
        return True
    return any(_matches(raw, figure.shown) for raw in numbers_in_text(answer))


def figure_block(figures: list[Figure], answer: str) -> str:
    """The rendered figures the answer does not already give, grouped by series and period ('' when none)."""
    missing = [f for f in figures if not states(answer, f)]
    if not missing:
        return ""
    groups: dict[str, list[Figure]] = {}
    for figure in missing:
        groups.setdefault(figure.context, []).append(figure)
    lines = []
    for context, items in groups.items():
        head = f"{BLOCK_HEAD} ({context}):" if context else f"{BLOCK_HEAD}:"
        lines.append(head)
        lines += [f"- {f.label}: {f.text}" for f in items]
    return "\n".join(lines)
