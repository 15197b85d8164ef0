"""Configuration of the loopback exchange: every default the server and its matching state use."""

from __future__ import annotations

import contextlib
import ipaddress
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

SPOT_SYMBOLS: tuple[str, ...] = (
    "BTC/USDT",
    "ETH/USDT",
    "ADA/USDT",
    "LTC/USDT",
    "XRP/USDT",
    "DOGE/USDT",
    "TRX/USDT",
)
"""The spot markets of the bundled ccxt fixture (binance.markets.json) that the loopback serves."""

_LOOPBACK_NAMES = frozenset({"localhost"})


class ApiKeyRestrictions(BaseModel):
    """What GET /sapi/v1/account/apiRestrictions reports about the API key (Binance's documented fields)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enable_reading: bool = True
    enable_spot_and_margin_trading: bool = True
    enable_withdrawals: bool = False
    enable_internal_transfer: bool = False
    enable_margin: bool = False
    enable_futures: bool = False
    permits_universal_transfer: bool = False
    enable_vanilla_options: bool = False
    ip_restrict: bool = False
    create_time_ms: int = Field(default=1_698_645_219_000, ge=0)


class LoopbackConfig(BaseModel):
    """Everything tunable about the loopback Binance spot exchange.

    Money-like values are ``Decimal``. Times are integer milliseconds since the epoch (UTC) unless the
    field name says otherwise.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # --- network -------------------------------------------------------------------------------------
    host: str = Field(default="127.0.0.1", description="Address to bind; only loopback is allowed.")
    port: int = Field(default=0, ge=0, le=65535, description="0 = an ephemeral port chosen by the OS.")
    startup_timeout_s: float = Field(default=10.0, gt=0, description="How long start()/stop() wait for the thread.")
    shutdown_timeout_s: float = Field(default=1.0, ge=0, description="Grace for in-flight requests on stop().")

    # --- authentication ------------------------------------------------------------------------------
    api_key: str = Field(default="loopback-api-key-0000000000000000000000000000000000000000000000000")
    api_secret: SecretStr = Field(default=SecretStr("loopback-secret-000000000000000000000000000000000000000000000000"))
    default_recv_window_ms: int = Field(default=5_000, gt=0, description="Binance's default recvWindow.")
    max_recv_window_ms: int = Field(default=60_000, gt=0, description="Larger recvWindow -> -1131.")
    max_clock_ahead_ms: int = Field(
        default=1_000,
        ge=0,
        description="A request timestamp this far ahead of server time is refused (-1021).",
    )

    api_key_restrictions: ApiKeyRestrictions | None = Field(
        default_factory=ApiKeyRestrictions,
        description="Served by GET /sapi/v1/account/apiRestrictions; None = the endpoint is not served (404).",
    )

    # --- rate limiting -------------------------------------------------------------------------------
    rate_limit_requests: int = Field(default=1_200, gt=0, description="Requests allowed per rolling window.")
    rate_limit_window_s: float = Field(default=60.0, gt=0, description="Length of the rolling window.")

    # --- endpoint limits (Binance's documented values) -----------------------------------------------
    klines_default_limit: int = Field(default=500, gt=0)
    klines_max_limit: int = Field(default=1_000, gt=0)
    depth_default_limit: int = Field(default=100, gt=0)
    depth_max_limit: int = Field(default=5_000, gt=0)
    trades_default_limit: int = Field(default=500, gt=0, description="GET /api/v3/myTrades default limit.")
    trades_max_limit: int = Field(default=1_000, gt=0)
    all_orders_default_limit: int = Field(default=500, gt=0)
    all_orders_max_limit: int = Field(default=1_000, gt=0)
    ticker_window_ms: int = Field(default=86_400_000, gt=0, description="Rolling window of ticker/24hr.")

    # --- matching ------------------------------------------------------------------------------------
    taker_fee_rate: Decimal = Field(default=Decimal("0.001"), ge=0, lt=1)
    maker_fee_rate: Decimal = Field(default=Decimal("0.001"), ge=0, lt=1)
    partial_fill_fraction: Decimal | None = Field(
        default=None,
        gt=0,
        le=1,
        description=(
            "If set, resting LIMIT orders on one side of a symbol may fill at most this fraction of each "
            "bar's volume in total (the rest stays PARTIALLY_FILLED); None = no volume cap."
        ),
    )
    duplicate_client_order_id: Literal["any", "open"] = Field(
        default="any",
        description=(
            "'any': a newClientOrderId already used by any order is refused (-2010 'Duplicate order sent.'). "
            "'open': only while that order is open (NEW/PARTIALLY_FILLED), which is real Binance's rule."
        ),
    )
    initial_balances: dict[str, Decimal] = Field(
        default_factory=lambda: {"USDT": Decimal("100000"), "BTC": Decimal("1"), "ETH": Decimal("10")}
    )
    first_order_id: int = Field(default=1_000_001, gt=0)
    first_trade_id: int = Field(default=5_000_001, gt=0)
    uid: int = Field(default=100_000_001, gt=0, description="Account uid reported by GET /api/v3/account.")

    # --- synthetic order book --------------------------------------------------------------------------
    book_spread_ticks: int = Field(default=1, ge=1, description="best ask = last price; best bid = last - this.")
    book_level_ticks: int = Field(default=1, ge=1, description="Price distance between book levels in ticks.")
    book_level_volume_fraction: Decimal = Field(
        default=Decimal("0.01"), gt=0, description="Quantity per level = this * current bar volume."
    )
    trades_per_bar: int = Field(default=100, ge=1, description="Synthetic 'number of trades' per base bar.")

    # --- default price path (a seeded random walk, used until load_bars replaces a symbol) ------------
    symbols: tuple[str, ...] = SPOT_SYMBOLS
    seed: int = 7
    default_timeframe_ms: int = Field(default=60_000, gt=0)
    default_start_ms: int = Field(default=1_704_067_200_000, ge=0, description="2024-01-01T00:00:00Z.")
    default_bars: int = Field(default=3_000, gt=0, description="Bars generated per symbol.")
    default_history_bars: int = Field(
        default=2_000, gt=0, description="Bars already closed when the clock starts; the rest lie ahead."
    )
    walk_volatility: Decimal = Field(default=Decimal("0.001"), gt=0, description="Std-dev of a bar's return.")
    walk_volume: Decimal = Field(default=Decimal("100000"), gt=0, description="Mean bar volume in quote units.")
    default_start_prices: dict[str, Decimal] = Field(
        default_factory=lambda: {
            "BTC/USDT": Decimal("42000"),
            "ETH/USDT": Decimal("2300"),
            "ADA/USDT": Decimal("0.59"),
            "LTC/USDT": Decimal("72"),
            "XRP/USDT": Decimal("0.62"),
            "DOGE/USDT": Decimal("0.09"),
            "TRX/USDT": Decimal("0.11"),
        }
    )

    @field_validator("host")
    @classmethod
    def _loopback_only(cls, value: str) -> str:
        if value in _LOOPBACK_NAMES:
            return value
        with contextlib.suppress(ValueError):  # not an IP address: refused below like any other name
            if ipaddress.ip_address(value).is_loopback:
                return value
        raise ValueError(f"the loopback exchange binds loopback addresses only, not {value!r}")
