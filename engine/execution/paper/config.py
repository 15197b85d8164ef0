"""Configuration of the paper venue: fees, slippage, volume participation and the starting balances."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field


class PaperBrokerConfig(BaseModel):
    """How the paper venue fills orders. Rates and fractions are plain fractions (``0.001`` = 0.1 %)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(default="paper", min_length=1, max_length=64, description="the venue/account name")
    taker_fee_rate: Decimal = Field(default=Decimal("0.001"), ge=0, lt=1, description="fee on taker fills")
    maker_fee_rate: Decimal = Field(
        default=Decimal("0.001"), gt=-1, lt=1, description="fee on maker fills; negative = a rebate"
    )
    slippage_fraction: Decimal = Field(
        default=Decimal("0.0005"),
        ge=0,
        lt=1,
        description="taker fills pay this fraction of the price above (buys) or below (sells) the reference price",
    )
    participation_cap: Decimal | None = Field(
        default=None,
        gt=0,
        le=1,
        description=(
            "at most this fraction of a bar's volume fills per order per bar (the rest waits for later bars: "
            "partial fills); None = no cap"
        ),
    )
    initial_balances: dict[str, Decimal] = Field(
        default_factory=lambda: {"USDT": Decimal("100000")},
        description="starting balance per currency",
    )
    venue_id_prefix: str = Field(default="paper-", min_length=1, max_length=32, description="venue order ids")
