"""Fixtures for the loopback exchange tests: a server per test and the real ccxt async binance client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.loopback import LoopbackExchange, make_ccxt_binance
from tests.unit.loopback.helpers import assert_all_calls_reached


@pytest.fixture
def exchange() -> Iterator[LoopbackExchange]:
    with LoopbackExchange() as ex:
        yield ex


@pytest.fixture
async def client(exchange: LoopbackExchange) -> AsyncIterator[object]:
    c = make_ccxt_binance(exchange.url, exchange.api_key, exchange.secret, rate_limit_ms=1)
    try:
        yield c
    finally:
        await c.close()
    assert_all_calls_reached(exchange, c)
