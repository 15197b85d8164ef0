"""Helpers shared by the loopback exchange tests: bar rows and the "every call reached the loopback" check."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from tests.support.loopback import LoopbackExchange, loopback_guard

Row = tuple[int, Decimal, Decimal, Decimal, Decimal, Decimal]

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
MINUTE = 60_000


def flat_rows(n: int, price: str = "20000", volume: str = "10", start: int = T0, tf: int = MINUTE) -> list[Row]:
    """n bars of a price that never moves (nothing crosses a limit away from it)."""
    p, v = Decimal(price), Decimal(volume)
    return [(start + i * tf, p, p, p, p, v) for i in range(n)]


def ramp_rows(n: int, start: int = T0, tf: int = MINUTE) -> list[Row]:
    """n bars whose prices encode their index (close = 10000 + i), for paging checks."""
    rows: list[Row] = []
    for i in range(n):
        o, c = Decimal(10_000 + i), Decimal(10_001 + i)
        rows.append((start + i * tf, o, c + 1, o - 1, c, Decimal(i + 1)))
    return rows


def assert_all_calls_reached(exchange: LoopbackExchange, client_or_clients: object | Sequence[object]) -> None:
    """Every ccxt request went to the loopback (none refused) and the server saw each one of them."""
    clients = client_or_clients if isinstance(client_or_clients, list | tuple) else [client_or_clients]
    urls = [u for c in clients for u in loopback_guard(c).urls]
    assert all(not loopback_guard(c).refused for c in clients)
    assert all(u.startswith(exchange.url + "/") for u in urls)
    assert len(urls) == len(exchange.requests())
