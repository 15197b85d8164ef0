"""Trading modes: what an execution process may trade, checked before it takes its first order.

* ``dry-run`` (the default): paper accounts only. A ccxt account is refused, so a forgotten ``IQTS_ACCOUNTS``
  entry can never send an order to an exchange from a process that believes it is simulating.
* ``sandbox``: ccxt accounts on the exchange's test network only (``sandbox: true``, ccxt ``set_sandbox_mode``),
  with ``IQTS_EXCHANGE_API_KEY`` and ``IQTS_EXCHANGE_API_SECRET`` set.
* ``live``: ccxt accounts with ``sandbox: false`` and keys, ``IQTS_MODE=live`` in the process environment (a
  ``.env`` file alone does not switch a process to real money), and an explicit confirmation at every start:
  ``IQTS_LIVE_CONFIRM`` set to :data:`LIVE_CONFIRM_PHRASE`, or the phrase typed at the prompt when a terminal is
  attached.

A paper account is refused in sandbox and live mode: the mode names what the whole process trades.

At start, every account whose adapter can report its API key's permissions is asked
(:func:`verify_key_permissions`); a key that may withdraw is refused. Every order then carries its mode in its
intent (bound to the approval by the intent hash), and the approval gate refuses an intent whose mode is not
the process's, so an approved dry-run order can never go out of a live worker.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel

from engine.errors import ConfigError
from engine.settings import AccountSettings, Settings, TradingMode
from engine.telemetry import get_logger

log = get_logger(__name__)

LIVE_CONFIRM_ENV = "IQTS_LIVE_CONFIRM"
LIVE_CONFIRM_PHRASE = "I understand this trades real money"
MODE_ENV = "IQTS_MODE"

Confirmation = Literal["not needed", "environment", "prompt"]


class ModeError(ConfigError):
    """The configuration does not fit the trading mode; the process refuses to start."""


class ModeCheck(BaseModel):
    """What a process validated about its mode at start (written to the audit log by the worker)."""

    mode: TradingMode
    accounts: dict[str, str]  # name -> "paper" | "ccxt:<exchange> (sandbox|live)"
    confirmation: Confirmation


class KeyPermissionReport(Protocol):
    reported: bool
    can_withdraw: bool | None
    detail: str


@runtime_checkable
class ReportsKeyPermissions(Protocol):
    """An adapter that can ask its venue what its API key may do (``CcxtBroker``)."""

    async def check_key_permissions(self) -> KeyPermissionReport: ...


class _Brokers(Protocol):
    @property
    def accounts(self) -> list[str]: ...

    def broker(self, account: str) -> object: ...


def _describe(account: AccountSettings) -> str:
    if account.venue == "paper":
        return "paper"
    return f"ccxt:{account.exchange or '?'} ({'sandbox' if account.sandbox else 'live'})"


def _normalise(text: str) -> str:
    return " ".join(text.split()).casefold()


def phrase_matches(text: str | None) -> bool:
    """``text`` is the live confirmation phrase (whitespace and letter case aside)."""
    return text is not None and _normalise(text) == _normalise(LIVE_CONFIRM_PHRASE)


def _prompt_on_terminal(question: str) -> str:
    sys.stderr.write(question)
    sys.stderr.flush()
    return sys.stdin.readline()


def _check_account(account: AccountSettings, mode: TradingMode, settings: Settings) -> None:
    name = account.name
    if mode == "dry-run":
        if account.venue != "paper":
            raise ModeError(
                f"account {name} trades on {account.exchange or 'an exchange'} through ccxt, but IQTS runs in "
                "dry-run mode, which trades paper accounts only: set IQTS_MODE=sandbox (the exchange's test "
                "network) or IQTS_MODE=live, or make the account a paper one"
            )
        return
    if account.venue == "paper":
        raise ModeError(
            f"account {name} is a paper account, but IQTS runs in {mode} mode, which trades exchange accounts "
            "only: remove it from IQTS_ACCOUNTS, or run in IQTS_MODE=dry-run"
        )
    if account.exchange is None:
        raise ModeError(f'account {name}: venue ccxt needs an exchange id ("exchange": "binance")')
    if settings.exchange_api_key is None or settings.exchange_api_secret is None:
        raise ModeError(
            f"account {name}: {mode} mode needs the exchange's API key: set IQTS_EXCHANGE_API_KEY and "
            "IQTS_EXCHANGE_API_SECRET"
        )
    if mode == "sandbox" and not account.sandbox:
        raise ModeError(
            f"account {name} is a live {account.exchange} account (sandbox: false), but IQTS runs in sandbox "
            'mode: set "sandbox": true to trade on the test network, or run in IQTS_MODE=live'
        )
    if mode == "live" and account.sandbox:
        raise ModeError(
            f"account {name} is on the {account.exchange} test network (sandbox: true), but IQTS runs in live "
            'mode: set "sandbox": false for real trading, or run in IQTS_MODE=sandbox'
        )


def _confirm_live(environ: Mapping[str, str], interactive: bool, prompt: Callable[[str], str]) -> Confirmation:
    if environ.get(MODE_ENV, "").strip().lower() != "live":
        raise ModeError(
            "live mode must be chosen with IQTS_MODE=live in the environment of the process (a setting from a "
            ".env file or an override is not enough to trade real money)"
        )
    given = environ.get(LIVE_CONFIRM_ENV)
    if given is not None:
        if phrase_matches(given):
            return "environment"
        raise ModeError(f"{LIVE_CONFIRM_ENV} does not say {LIVE_CONFIRM_PHRASE!r}: live trading was not confirmed")
    if interactive:
        answer = prompt(
            f"IQTS is about to trade REAL MONEY (IQTS_MODE=live). Type '{LIVE_CONFIRM_PHRASE}' to continue: "
        )
        if phrase_matches(answer):
            return "prompt"
        raise ModeError("live trading was not confirmed (the phrase typed does not match); nothing was started")
    raise ModeError(
        f"live mode needs an explicit confirmation at start: set {LIVE_CONFIRM_ENV}='{LIVE_CONFIRM_PHRASE}' "
        "or start the process from a terminal and type the phrase"
    )


def validate_mode(
    settings: Settings,
    *,
    environ: Mapping[str, str] | None = None,
    interactive: bool | None = None,
    prompt: Callable[[str], str] | None = None,
) -> ModeCheck:
    """Check that the configured accounts fit ``settings.mode`` (and confirm live trading); raise ModeError.

    ``environ`` defaults to the process environment; ``interactive`` to whether stdin is a terminal; ``prompt``
    asks a question and returns the answer typed (on stderr/stdin by default).
    """
    environ = os.environ if environ is None else environ
    mode = settings.mode
    if not settings.accounts:
        raise ModeError("no trading account is configured (IQTS_ACCOUNTS is empty)")
    for account in settings.accounts:
        _check_account(account, mode, settings)
    confirmation: Confirmation = "not needed"
    if mode == "live":
        if interactive is None:
            interactive = sys.stdin is not None and sys.stdin.isatty()
        confirmation = _confirm_live(environ, interactive, prompt or _prompt_on_terminal)
        log.warning("mode.live_confirmed", via=confirmation, accounts=[a.name for a in settings.accounts])
    elif environ.get(LIVE_CONFIRM_ENV):
        log.info("mode.live_confirm_ignored", mode=mode)
    return ModeCheck(mode=mode, accounts={a.name: _describe(a) for a in settings.accounts}, confirmation=confirmation)


async def verify_key_permissions(router: _Brokers) -> dict[str, str]:
    """Ask every account whose adapter can tell what its API key may do; refuse keys with withdrawal rights.

    Returns account -> what the venue said. ``WithdrawalKeyError`` (a ConfigError) stops the start; a venue
    that does not report permissions is allowed with a warning (the adapter logs it).
    """
    found: dict[str, str] = {}
    for account in router.accounts:
        broker = router.broker(account)
        if not isinstance(broker, ReportsKeyPermissions):
            continue
        report = await broker.check_key_permissions()
        if report.can_withdraw:  # an adapter that reports instead of raising: refuse here
            raise ModeError(
                f"account {account}: the API key has withdrawal rights; IQTS refuses such keys (create a key "
                "with trading rights only)"
            )
        found[account] = report.detail
    return found
