"""Configuration of one ccxt venue account (sandbox or live; an ``api_url`` reroutes it, e.g. to the loopback)."""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from engine.data.exchanges import check_exchange_id


class ClientOrderIdParams(BaseModel):
    """The request parameters that carry the client order id on one exchange."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    create: str = "clientOrderId"
    fetch: str = "clientOrderId"
    cancel: str = "clientOrderId"
    by_order_id_trades: bool = Field(
        default=False, description="fetch_my_trades accepts params={'orderId': id} (the order's own fills)"
    )


CLIENT_ORDER_ID_PARAMS: Final[dict[str, ClientOrderIdParams]] = {
    "binance": ClientOrderIdParams(
        create="newClientOrderId", fetch="origClientOrderId", cancel="origClientOrderId", by_order_id_trades=True
    ),
}
"""Per exchange; anything else uses ccxt's generic ``clientOrderId``."""


class CcxtBrokerConfig(BaseModel):
    """One exchange account traded through ccxt."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=64, description="the account name (router key)")
    exchange: str = Field(description="ccxt exchange id, e.g. binance")
    api_key: SecretStr
    secret: SecretStr
    password: SecretStr | None = Field(default=None, description="the API passphrase, for exchanges that need one")
    sandbox: bool = Field(default=False, description="use the exchange's test network (ccxt set_sandbox_mode)")
    api_url: str | None = Field(default=None, description="send every REST call here instead (a proxy, the loopback)")
    rate_limit_ms: float | None = Field(default=None, gt=0, description="ccxt rateLimit override (ms per weight unit)")
    timeout_ms: int = Field(default=10_000, gt=0, description="per-request timeout")
    options: dict[str, Any] = Field(default_factory=dict, description="extra ccxt options")
    submit_attempts: int = Field(
        default=3, ge=1, description="sends of one order at most, each after proving the venue does not hold it"
    )
    reconcile_attempts: int = Field(
        default=3, ge=1, description="fetches by client order id to learn an order's fate after a failed submit"
    )
    reconcile_delay_s: float = Field(
        default=0.5, ge=0, description="wait before each such fetch (a venue may need a moment to show an order)"
    )
    recent_trades_lookback_ms: int = Field(
        default=86_400_000, gt=0, description="how far back reconcile() reads the account's trades"
    )
    client_order_id_params: ClientOrderIdParams | None = Field(
        default=None, description="override the exchange's client order id parameters"
    )

    @field_validator("exchange")
    @classmethod
    def _known_exchange(cls, value: str) -> str:
        return check_exchange_id(value)

    @property
    def id_params(self) -> ClientOrderIdParams:
        return self.client_order_id_params or CLIENT_ORDER_ID_PARAMS.get(self.exchange, ClientOrderIdParams())
