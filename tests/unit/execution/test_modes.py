"""Trading modes: which accounts each mode allows, keys, and the explicit confirmation live trading needs."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import SecretStr

from engine.execution.modes import (
    LIVE_CONFIRM_ENV,
    LIVE_CONFIRM_PHRASE,
    ModeError,
    phrase_matches,
    validate_mode,
    verify_key_permissions,
)
from engine.settings import AccountSettings, Settings, TradingMode, load_settings

PAPER = AccountSettings(name="paper", initial_cash={"USD": Decimal(1000)})
TESTNET = AccountSettings(name="testnet", venue="ccxt", exchange="binance", sandbox=True)
REAL = AccountSettings(name="real", venue="ccxt", exchange="binance", sandbox=False)
KEYS = {"exchange_api_key": SecretStr("k" * 16), "exchange_api_secret": SecretStr("s" * 16)}
LIVE_ENV = {"IQTS_MODE": "live", LIVE_CONFIRM_ENV: LIVE_CONFIRM_PHRASE}


def _settings(mode: TradingMode, *accounts: AccountSettings, keys: bool = True) -> Settings:
    return load_settings(mode=mode, accounts=list(accounts), **(KEYS if keys else {}))


def _never_asked(question: str) -> str:
    raise AssertionError(f"the prompt should not be shown: {question}")


def test_dry_run_trades_paper_accounts_only() -> None:
    check = validate_mode(_settings("dry-run", PAPER), environ={})
    assert check.mode == "dry-run" and check.accounts == {"paper": "paper"}
    assert check.confirmation == "not needed"
    with pytest.raises(ModeError, match=r"account testnet trades on binance .* dry-run mode, which trades paper"):
        validate_mode(_settings("dry-run", PAPER, TESTNET), environ={})


@pytest.mark.parametrize(
    ("accounts", "keys", "message"),
    [
        ((PAPER,), True, "account paper is a paper account, but IQTS runs in sandbox mode"),
        ((REAL,), True, r"account real is a live binance account \(sandbox: false\), but IQTS runs in sandbox"),
        ((TESTNET,), False, "sandbox mode needs the exchange's API key: set IQTS_EXCHANGE_API_KEY"),
        ((AccountSettings(name="x", venue="ccxt", exchange=None),), True, "needs an exchange id"),
        ((), True, "no trading account is configured"),
    ],
)
def test_sandbox_needs_testnet_exchange_accounts_with_keys(
    accounts: tuple[AccountSettings, ...], keys: bool, message: str
) -> None:
    with pytest.raises(ModeError, match=message):
        validate_mode(_settings("sandbox", *accounts, keys=keys), environ={})


def test_sandbox_with_a_testnet_account_and_keys_starts() -> None:
    check = validate_mode(_settings("sandbox", TESTNET), environ={}, prompt=_never_asked)
    assert check.accounts == {"testnet": "ccxt:binance (sandbox)"} and check.confirmation == "not needed"


def test_live_refuses_testnet_accounts_and_missing_keys() -> None:
    with pytest.raises(ModeError, match=r"test network \(sandbox: true\), but IQTS runs in live mode"):
        validate_mode(_settings("live", TESTNET), environ=LIVE_ENV)
    with pytest.raises(ModeError, match="live mode needs the exchange's API key"):
        validate_mode(_settings("live", REAL, keys=False), environ=LIVE_ENV)
    with pytest.raises(ModeError, match="paper account"):
        validate_mode(_settings("live", PAPER), environ=LIVE_ENV)


def test_live_needs_iqts_mode_in_the_environment() -> None:
    """A .env file or an override alone never switches a process to real money."""
    with pytest.raises(ModeError, match="IQTS_MODE=live in the environment"):
        validate_mode(_settings("live", REAL), environ={LIVE_CONFIRM_ENV: LIVE_CONFIRM_PHRASE}, interactive=False)


def test_live_without_confirmation_refuses_to_start() -> None:
    with pytest.raises(ModeError, match=f"live mode needs an explicit confirmation at start: set {LIVE_CONFIRM_ENV}"):
        validate_mode(_settings("live", REAL), environ={"IQTS_MODE": "live"}, interactive=False, prompt=_never_asked)
    with pytest.raises(ModeError, match="live trading was not confirmed"):
        validate_mode(
            _settings("live", REAL),
            environ={"IQTS_MODE": "live", LIVE_CONFIRM_ENV: "yes"},
            interactive=True,
            prompt=_never_asked,
        )


def test_live_confirmed_by_the_environment_phrase() -> None:
    check = validate_mode(_settings("live", REAL), environ=LIVE_ENV, interactive=True, prompt=_never_asked)
    assert check.confirmation == "environment"
    assert check.accounts == {"real": "ccxt:binance (live)"}


def test_live_confirmed_at_the_terminal_prompt() -> None:
    asked: list[str] = []

    def typed(answer: str):  # type: ignore[no-untyped-def]
        def prompt(question: str) -> str:
            asked.append(question)
            return answer

        return prompt

    env = {"IQTS_MODE": "live"}
    check = validate_mode(
        _settings("live", REAL), environ=env, interactive=True, prompt=typed(" i understand  THIS trades real money\n")
    )
    assert check.confirmation == "prompt" and "REAL MONEY" in asked[0]
    with pytest.raises(ModeError, match="not confirmed"):
        validate_mode(_settings("live", REAL), environ=env, interactive=True, prompt=typed("y\n"))


def test_phrase_matching() -> None:
    assert phrase_matches(LIVE_CONFIRM_PHRASE) and phrase_matches(LIVE_CONFIRM_PHRASE.upper() + " ")
    assert not phrase_matches(None) and not phrase_matches("") and not phrase_matches("I understand")


class _Report:
    def __init__(self, can_withdraw: bool | None) -> None:
        self.reported = can_withdraw is not None
        self.can_withdraw = can_withdraw
        self.detail = "withdrawals" if can_withdraw else "trade only"


class _KeyBroker:
    def __init__(self, can_withdraw: bool | None) -> None:
        self.report = _Report(can_withdraw)

    async def check_key_permissions(self) -> _Report:
        return self.report


class _Router:
    def __init__(self, brokers: dict[str, object]) -> None:
        self.brokers = brokers

    @property
    def accounts(self) -> list[str]:
        return list(self.brokers)

    def broker(self, account: str) -> object:
        return self.brokers[account]


async def test_key_permissions_refuse_withdrawal_rights() -> None:
    ok = await verify_key_permissions(_Router({"a": _KeyBroker(False), "paper": object(), "b": _KeyBroker(None)}))
    assert ok == {"a": "trade only", "b": "trade only"}
    with pytest.raises(ModeError, match="account w: the API key has withdrawal rights"):
        await verify_key_permissions(_Router({"a": _KeyBroker(False), "w": _KeyBroker(True)}))
