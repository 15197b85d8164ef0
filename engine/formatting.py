"""Numbers as people read them, shared by every surface (CLI tables, chat, reports, notifications).

Money is never printed in scientific notation (``4.934e+04`` was what ``f"{x:.4g}"`` made of 49,340): amounts
get thousands separators and a fixed number of decimals, whether they arrive as ``Decimal`` (orders, fills,
ledger) or ``float`` (the research engine).
"""

from __future__ import annotations

import math
from decimal import Decimal

Number = Decimal | float | int


def format_money(value: Number | None, places: int = 2) -> str:
    """``49340.123 -> '49,340.12'``, ``Decimal('-0.5') -> '-0.50'``; '-' for None, NaN or infinite."""
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        if not value.is_finite():
            return "-"
        return f"{value.quantize(Decimal(1).scaleb(-places)):,.{places}f}"
    number = float(value)
    if not math.isfinite(number):
        return "-"
    return f"{number:,.{places}f}"


def format_number(value: Number | None, *, pct: bool = False) -> str:
    """A metric for a table: a fraction as a percentage (``pct``), an amount of 1,000 or more as money, a
    smaller number with four significant digits, a tiny one with six decimals; never scientific notation."""
    if value is None or isinstance(value, bool):
        return "-" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    number = float(value)
    if not math.isfinite(number):
        return "-"
    if pct:
        return f"{number:.2%}"
    if abs(number) >= 1_000:
        return format_money(number)
    if number == 0 or abs(number) >= 1e-4:
        return f"{number:.4g}"
    return f"{number:.6f}"
