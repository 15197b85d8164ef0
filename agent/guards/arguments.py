"""Small models invent optional arguments (dates on every backtest, a limit price nobody asked for). For models
that declare it, optional scalar arguments whose value the user never wrote are dropped before the call, so the
server's defaults apply. Required arguments and free text (anything with a space) are kept."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def _numbers(text: str) -> set[Decimal]:
    out = set()
    for match in _NUMBER.findall(text):
        try:
            out.add(Decimal(match.replace(",", "")))
        except InvalidOperation:
            continue
    return out


def _said(value: Any, said: str, numbers: set[Decimal]) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, int | float):
        try:
            return Decimal(str(value)) in numbers
        except InvalidOperation:
            return False
    if isinstance(value, str):
        if " " in value.strip():
            return True  # free text (a rationale): not an invented parameter
        return value.lower() in said.lower()
    return True  # lists and objects are checked field by field or kept


def ground_arguments(
    args: Mapping[str, Any], schema: Mapping[str, Any], said: str, path: str = ""
) -> tuple[dict[str, Any], list[str]]:
    """``args`` without optional values the user never said; and the dotted names of what was dropped."""
    required = set(schema.get("required", []))
    properties = schema.get("properties", {})
    numbers = _numbers(said)
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for name, value in args.items():
        sub = properties.get(name, {})
        where = f"{path}{name}"
        if isinstance(value, Mapping) and isinstance(sub, Mapping) and sub.get("type") == "object":
            inner, lost = ground_arguments(value, sub, said, where + ".")
            kept[name] = inner
            dropped += lost
        elif name not in required and not _said(value, said, numbers):
            dropped.append(where)
        else:
            kept[name] = value
    return kept, dropped
