"""From account to venue adapter: one Broker per configured account."""

from __future__ import annotations

from engine.data.store import BarStore
from engine.errors import ConfigError, NotFoundError
from engine.execution.broker import Broker
from engine.settings import AccountSettings, Settings
from engine.store.database import Database


def build_broker(account: AccountSettings, settings: Settings, db: Database) -> Broker:
    """The adapter for one account (paper by default; ccxt for sandbox/live venues)."""
    if account.venue == "paper":
        from engine.execution.paper import PaperBroker, PaperBrokerConfig, StorePriceFeed

        cash = {k: v for k, v in account.initial_cash.items()}
        return PaperBroker(PaperBrokerConfig(name=account.name, initial_balances=cash), StorePriceFeed(BarStore(db)))
    if account.venue == "ccxt":
        from engine.execution.ccxt import CcxtBroker, CcxtBrokerConfig

        if account.exchange is None:
            raise ConfigError(f"account {account.name}: venue ccxt needs an exchange id")
        if settings.exchange_api_key is None or settings.exchange_api_secret is None:
            raise ConfigError(f"account {account.name}: set IQTS_EXCHANGE_API_KEY and IQTS_EXCHANGE_API_SECRET")
        return CcxtBroker(
            CcxtBrokerConfig(
                name=account.name,
                exchange=account.exchange,
                api_key=settings.exchange_api_key,
                secret=settings.exchange_api_secret,
                sandbox=account.sandbox,
                api_url=settings.exchange_urls.get(account.exchange),
                options={} if account.receive_window_ms is None else {"recvWindow": account.receive_window_ms},
            )
        )
    raise ConfigError(f"account {account.name}: unknown venue {account.venue!r}")


class Router:
    """Account name -> Broker, built once per process."""

    def __init__(self, brokers: dict[str, Broker]) -> None:
        self._brokers = brokers

    @classmethod
    def from_settings(cls, settings: Settings, db: Database) -> Router:
        return cls({a.name: build_broker(a, settings, db) for a in settings.accounts})

    def broker(self, account: str) -> Broker:
        try:
            return self._brokers[account]
        except KeyError:
            raise NotFoundError(f"no account {account!r}; configured: {', '.join(self._brokers)}") from None

    @property
    def accounts(self) -> list[str]:
        return list(self._brokers)

    async def close(self) -> None:
        for broker in self._brokers.values():
            await broker.close()
