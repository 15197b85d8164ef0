"""Money and metrics print without scientific notation (first use: final equity showed as 4.934e+04)."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from engine.formatting import format_money, format_number


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (49_340.0, "49,340.00"),
        (1.5e9, "1,500,000,000.00"),
        (Decimal("12345.678"), "12,345.68"),
        (Decimal("-0.5"), "-0.50"),
        (0.1, "0.10"),
        (None, "-"),
        (math.nan, "-"),
    ],
)
def test_money_has_separators_and_fixed_decimals(value: float | Decimal | None, text: str) -> None:
    assert format_money(value) == text


@pytest.mark.parametrize(
    ("value", "pct", "text"),
    [
        (49_340.0, False, "49,340.00"),  # final equity: was 4.934e+04
        (1.2345, False, "1.234"),
        (0.00001234, False, "0.000012"),
        (0.1234, True, "12.34%"),
        (20_111, False, "20,111"),
        (3, False, "3"),
        (math.inf, False, "-"),
    ],
)
def test_numbers_never_use_scientific_notation(value: float, pct: bool, text: str) -> None:
    assert format_number(value, pct=pct) == text
    assert "e+" not in format_number(value, pct=pct) and "e-" not in format_number(value, pct=pct)
