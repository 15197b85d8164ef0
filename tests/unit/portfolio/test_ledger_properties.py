"""Accounting identities of the ledger over random fills, exactly (Decimal, no tolerance)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.execution.models import Fill
from engine.portfolio import Ledger

T0 = datetime(2024, 5, 1, tzinfo=UTC)
SYMBOLS = ("BTC/USDT", "ETH/USDT")
STRATEGIES = (None, "trend", "meanrev")

quantities = st.decimals(min_value=Decimal("0.001"), max_value=Decimal(50), places=3)
prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(100000), places=2)
fees = st.decimals(min_value=Decimal(-1), max_value=Decimal(25), places=8)

fills = st.lists(
    st.tuples(
        st.sampled_from(SYMBOLS),
        st.sampled_from(["buy", "sell"]),
        quantities,
        prices,
        fees,
        st.sampled_from(STRATEGIES),
    ),
    min_size=1,
    max_size=40,
)
flows = st.lists(st.decimals(min_value=Decimal(1), max_value=Decimal(10**6), places=2), max_size=3)


@settings(max_examples=300, deadline=None)
@given(trades=fills, deposits=flows, marks=st.tuples(prices, prices))
def test_equity_is_deposits_plus_realised_plus_unrealised_minus_fees(
    trades: list[tuple[str, str, Decimal, Decimal, Decimal, str | None]],
    deposits: list[Decimal],
    marks: tuple[Decimal, Decimal],
) -> None:
    book = Ledger()
    book.open_account("main", cash={"USDT": Decimal(100000)})
    for amount in deposits:
        book.deposit("main", amount)
    net: dict[str, Decimal] = dict.fromkeys(SYMBOLS, Decimal(0))
    realised_sum = Decimal(0)
    for symbol, side, qty, price, fee, strategy in trades:
        fill = Fill(
            order_id="o",
            symbol=symbol,
            side=side,
            quantity=qty,
            price=price,
            fee=fee,
            fee_currency="USDT",
            ts=T0,
            liquidity="taker",
        )
        realised_sum += book.apply_fill(fill, "main", strategy).realised_pnl
        net[symbol] += qty if side == "buy" else -qty

    last = dict(zip(SYMBOLS, marks, strict=True))
    snap = book.snapshot(last, T0).accounts["main"]
    deposited = book.net_deposits("main")["USDT"]

    # the identity, exactly
    assert snap.equity == deposited + snap.realised_pnl + snap.unrealised_pnl - snap.fees
    assert snap.realised_pnl == realised_sum
    # positions are the sum of signed fills; flat symbols are not listed
    for symbol in SYMBOLS:
        assert book.position("main", symbol)[0] == net[symbol]
        assert (symbol in snap.positions) == (net[symbol] != 0)
    for pos in snap.positions.values():
        assert pos.avg_cost > 0
        assert pos.unrealised_pnl == pos.quantity * pos.last_price - pos.cost_basis
    # strategy attribution adds up to the account's total PnL (the split into realised and unrealised may differ)
    rows = book.attribution(last)
    assert sum((r.net_pnl for r in rows), Decimal(0)) == snap.realised_pnl + snap.unrealised_pnl - snap.fees
    assert sum((r.fees for r in rows), Decimal(0)) == snap.fees
    # persistence keeps every digit
    assert Ledger.from_dict(book.to_dict()).snapshot(last, T0) == book.snapshot(last, T0)


@settings(max_examples=200, deadline=None)
@given(qty=quantities, buy=prices, sell=prices, part=st.integers(min_value=1, max_value=99))
def test_closing_in_parts_realises_the_same_as_closing_at_once(
    qty: Decimal, buy: Decimal, sell: Decimal, part: int
) -> None:
    def fill(side: str, amount: Decimal, price: Decimal) -> Fill:
        return Fill(
            order_id="o",
            symbol="BTC/USDT",
            side=side,
            quantity=amount,
            price=price,
            fee_currency="USDT",
            ts=T0,
            liquidity="maker",
        )

    whole, split = Ledger(), Ledger()
    for book in (whole, split):
        book.open_account("main")
        book.apply_fill(fill("buy", qty, buy), "main")
    at_once = whole.apply_fill(fill("sell", qty, sell), "main").realised_pnl
    first = (qty * part / 100).quantize(Decimal("0.001"))
    if first == 0 or first == qty:
        return
    in_parts = split.apply_fill(fill("sell", first, sell), "main").realised_pnl
    in_parts += split.apply_fill(fill("sell", qty - first, sell), "main").realised_pnl
    assert in_parts == at_once == (sell - buy) * qty
