"""Numbers as people read them in risk reasons: ``61,234.50``, ``50,000``, ``0.0015``, ``12.5%``."""

from __future__ import annotations

from decimal import Decimal
from typing import Final

PERCENT_STEP: Final = Decimal("0.01")
"""Shown precision of percentages in reasons."""


def format_amount(value: Decimal) -> str:
    """Exact, with thousands separators and no trailing zeros; a single decimal is shown as cents (``1.50``)."""
    text = f"{value:,f}"
    whole, dot, fraction = text.partition(".")
    if not dot:
        return text
    fraction = fraction.rstrip("0")
    if not fraction:
        return whole
    if len(fraction) == 1:
        return f"{whole}.{fraction}0"
    return f"{whole}.{fraction}"


def format_quantity(value: Decimal) -> str:
    """Exact, with thousands separators and no trailing zeros (``0.2``, ``1,250``)."""
    text = f"{value:,f}"
    if "." not in text:
        return text
    return text.rstrip("0").rstrip(".")


def format_percent(value: Decimal) -> str:
    """A percentage rounded to two decimals, without trailing zeros: ``12.5%``, ``5%``."""
    return f"{format_quantity(value.quantize(PERCENT_STEP))}%"
