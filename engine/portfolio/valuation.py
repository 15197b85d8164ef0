"""Converting amounts between currencies with the prices at hand (shared by the portfolio and risk)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Final

ONE: Final = Decimal(1)


def conversion_rate(
    currency: str,
    into: str,
    prices: Mapping[str, Decimal],
    fx_rates: Mapping[str, Decimal] | None = None,
) -> Decimal | None:
    """How many ``into`` one unit of ``currency`` is worth, or None when nothing at hand says.

    Looks for ``CURRENCY/INTO`` then ``INTO/CURRENCY`` (inverted), first in ``fx_rates`` (explicit rates such as
    ``{"USD/USDT": Decimal(1)}``) then in ``prices`` (last prices by ccxt symbol, e.g. ``BTC/USDT``).
    """
    if currency == into:
        return ONE
    direct = f"{currency}/{into}"
    inverse = f"{into}/{currency}"
    for source in (fx_rates or {}, prices):
        rate = source.get(direct)
        if rate is not None and rate > 0:
            return rate
        rate = source.get(inverse)
        if rate is not None and rate > 0:
            return ONE / rate
    return None
