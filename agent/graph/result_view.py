"""What the model reads of a tool result: a short, readable view, not the raw JSON.

A small model reads every token of a tool result before it answers (about 32 tokens/s on one core), and it copies
what it sees. The raw JSON of a backtest is about 700 tokens of 16-digit floats, an equity curve and checksums; the
model then writes "a total return of 3.93 %" for 393 %. The view keeps what an answer needs, in the form the answer
should take:

* known figures rendered as the answer shows them (:func:`agent.guards.figures.figure_of`: fractions as
  percentages, money with separators and currency, prices at a sensible precision), so that copying is right;
* other numbers to 6 significant digits; ids, names, dates and short texts as they are; empty values left out;
* long lists cut to their first and last items with a count (an equity curve, many bars), long texts cut;
* bookkeeping the answer never needs (checksums, engine versions) left out.

The structured result itself is untouched (the guards, the figure renderer and the UI read it); only the model's
reading is shorter. :func:`result_view` is deterministic, so a fixed result gives the same tokens every time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.guards.figures import NOT_FIGURES, currencies_of, figure_of, is_time_series

OMITTED_KEYS: frozenset[str] = frozenset({"data_checksum", "engine_version", "checksum", "hash", "report"})
"""Keys the answer never needs."""
LIST_HEAD = 2
LIST_TAIL = 3
LIST_WHOLE = 8
"""A list up to ``LIST_WHOLE`` items is shown whole; a longer one as its first ``LIST_HEAD`` and last
``LIST_TAIL`` items and a count; a longer time series (an equity curve) as its first and latest point: the answer's
figures render the rest, and every point the model reads costs prefill."""
TEXT_CHARS = 700
ONE_LINE_CHARS = 240


def _scalar(key: str, value: Any, money: tuple[str, str], *, figures: bool) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    figure = figure_of(key, value, money) if figures else None
    if figure is not None:
        return figure[2]
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    if len(text) > TEXT_CHARS:
        return text[:TEXT_CHARS] + f" ...[{len(text) - TEXT_CHARS} more characters]"
    return text


def _empty(value: Any) -> bool:
    return value is None or value in ("", [], {})


def _lines(node: Mapping[str, Any], indent: int, money: tuple[str, str], figures: bool, out: list[str]) -> None:
    money = currencies_of(node, money)
    pad = "  " * indent
    for key, value in node.items():
        if key in OMITTED_KEYS or _empty(value):
            continue
        inner_figures = figures and key not in NOT_FIGURES
        if isinstance(value, Mapping):
            out.append(f"{pad}{key}:")
            _lines(value, indent + 1, money, inner_figures, out)
        elif isinstance(value, list):
            _list(key, value, indent, money, inner_figures, out)
        else:
            out.append(f"{pad}{key}: {_scalar(key, value, money, figures=figures)}")


def _list(key: str, items: list[Any], indent: int, money: tuple[str, str], figures: bool, out: list[str]) -> None:
    pad = "  " * indent
    if all(not isinstance(i, Mapping | list) for i in items):
        shown = items if len(items) <= LIST_WHOLE * 3 else [*items[:LIST_WHOLE], "...", *items[-LIST_WHOLE:]]
        out.append(f"{pad}{key}: " + ", ".join(_scalar(key, i, money, figures=figures) for i in shown))
        return
    timed = len(items) > 1 and is_time_series(items)
    order = "oldest first, the last is the latest; " if timed else ""
    if len(items) <= LIST_WHOLE:
        out.append(f"{pad}{key} ({order}{len(items)}):")
        chosen: list[tuple[int, Any]] = list(enumerate(items))
    else:
        head, tail = (1, 1) if timed else (LIST_HEAD, LIST_TAIL)  # of a series, its start and where it ends
        which = "the first and the last" if timed else f"the first {head} and the last {tail}"
        out.append(f"{pad}{key} ({order}{len(items)}; {which}):")
        chosen = [*enumerate(items[:head]), *((len(items) - tail + i, v) for i, v in enumerate(items[-tail:]))]
    for position, (index, item) in enumerate(chosen):
        if position == (1 if timed else LIST_HEAD) and len(items) > LIST_WHOLE:
            out.append(f"{pad}  ... {len(items) - len(chosen)} more")
        mark = "latest: " if timed and index == len(items) - 1 else ""
        if isinstance(item, Mapping) and (line := _one_line(item, money, figures)) is not None:
            out.append(f"{pad}  - {mark}{line}")
        elif isinstance(item, Mapping):
            body: list[str] = []
            _lines(item, indent + 2, money, figures, body)
            if body:
                out.append(f"{pad}  - {mark}" + body[0].lstrip())
                out.extend(body[1:])
        else:
            out.append(f"{pad}  - {_scalar(key, item, money, figures=figures)}")


def _one_line(item: Mapping[str, Any], money: tuple[str, str], figures: bool) -> str | None:
    """A flat item (short scalars only) as one line, ``k: v, k: v``; None when it is not flat."""
    money = currencies_of(item, money)
    parts = []
    for key, value in item.items():
        if key in OMITTED_KEYS or _empty(value):
            continue
        if isinstance(value, Mapping | list):
            return None
        text = _scalar(key, value, money, figures=figures and key not in NOT_FIGURES)
        if "\n" in text:
            return None
        parts.append(f"{key}: {text}")
    line = ", ".join(parts)
    return line if len(line) <= ONE_LINE_CHARS else None


def result_view(result: Mapping[str, Any], limit: int) -> str:
    """The tool result as the model reads it, at most ``limit`` characters."""
    out: list[str] = []
    _lines(result, 0, ("", ""), True, out)
    text = "\n".join(out)
    if len(text) > limit:
        text = text[:limit] + f"\n...[cut: {len(text) - limit} more characters]"
    return text
