"""A submission's lease must outlast every venue's receive window (issue 11, item 2): a shorter one is refused at
start, because a first request still travelling when the lease ran out could then be accepted after a resend."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from engine.errors import ConfigError
from engine.execution.ccxt import CcxtBroker, CcxtBrokerConfig
from engine.execution.oms import LEASE_MARGIN_S, check_lease_covers_receive_window
from engine.execution.paper import PaperBroker
from engine.execution.router import Router


def _binance(recv_window_ms: int | None) -> CcxtBroker:
    options = {} if recv_window_ms is None else {"recvWindow": recv_window_ms}
    key, secret = SecretStr("lease-test-key-7f3a9c"), SecretStr("lease-test-secret-2b8e1d")
    config = CcxtBrokerConfig(name="lb", exchange="binance", api_key=key, secret=secret, sandbox=True, options=options)
    return CcxtBroker(config)


def test_a_lease_shorter_than_the_receive_window_is_refused_at_start() -> None:
    router = Router({"lb": _binance(5_000)})
    with pytest.raises(ConfigError, match=r"IQTS_EXECUTION_LEASE_S=6 is too short for account lb.*5s"):
        check_lease_covers_receive_window(6.0, router)
    check_lease_covers_receive_window(5.0 + LEASE_MARGIN_S, router)


def test_the_exchange_default_receive_window_counts_when_none_is_configured() -> None:
    router = Router({"lb": _binance(None)})  # ccxt's binance signs with recvWindow 10 s
    with pytest.raises(ConfigError, match="10s"):
        check_lease_covers_receive_window(8.0, router)
    check_lease_covers_receive_window(30.0, router)


def test_an_in_process_venue_needs_no_more_than_the_margin() -> None:
    check_lease_covers_receive_window(LEASE_MARGIN_S, Router({"paper": PaperBroker()}))
