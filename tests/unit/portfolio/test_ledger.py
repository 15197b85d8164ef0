"""Ledger accounting on hand-computed examples: average cost, realised PnL, flips, shorts, fees, marks, persistence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from engine.errors import NotFoundError, ValidationFailedError
from engine.execution.models import Fill
from engine.portfolio import UNATTRIBUTED, Ledger

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
D = Decimal


def fill(side: str, qty: str, price: str, fee: str = "0", symbol: str = "BTC/USDT", fee_currency: str = "USDT") -> Fill:
    return Fill(
        order_id="o",
        symbol=symbol,
        side=side,
        quantity=D(qty),
        price=D(price),
        fee=D(fee),
        fee_currency=fee_currency,
        ts=T0,
        liquidity="taker",
    )


def ledger(cash: str = "10000") -> Ledger:
    book = Ledger()
    book.open_account("main", cash={"USDT": D(cash)})
    return book


def test_average_cost_after_adds() -> None:
    book = ledger()
    book.apply_fill(fill("buy", "1", "100"), "main")
    applied = book.apply_fill(fill("buy", "3", "120"), "main")
    assert book.position("main", "BTC/USDT") == (D(4), D(115))  # (100 + 360) / 4
    assert applied.realised_pnl == 0
    assert applied.avg_cost_after == D(115)


def test_partial_close_realises_against_the_average_cost() -> None:
    book = ledger()
    book.apply_fill(fill("buy", "1", "100"), "main")
    book.apply_fill(fill("buy", "3", "120"), "main")
    applied = book.apply_fill(fill("sell", "1", "130"), "main")
    assert applied.realised_pnl == D(15)  # (130 - 115) x 1
    assert (applied.quantity_before, applied.quantity_after) == (D(4), D(3))
    assert book.position("main", "BTC/USDT") == (D(3), D(115))  # closing does not move the average


def test_a_fill_through_zero_closes_then_opens_at_the_fill_price() -> None:
    book = ledger()
    book.apply_fill(fill("buy", "3", "115"), "main")
    applied = book.apply_fill(fill("sell", "5", "110"), "main")
    assert applied.realised_pnl == D(-15)  # (110 - 115) x 3
    assert book.position("main", "BTC/USDT") == (D(-2), D(110))


def test_shorts_profit_when_the_price_falls() -> None:
    book = ledger()
    book.apply_fill(fill("sell", "2", "110"), "main")
    book.apply_fill(fill("sell", "2", "130"), "main")
    assert book.position("main", "BTC/USDT") == (D(-4), D(120))
    applied = book.apply_fill(fill("buy", "1", "100"), "main")
    assert applied.realised_pnl == D(20)  # (120 - 100) x 1
    flip = book.apply_fill(fill("buy", "5", "90"), "main")
    assert flip.realised_pnl == D(90)  # (120 - 90) x 3
    assert book.position("main", "BTC/USDT") == (D(2), D(90))


def test_fees_cash_and_the_full_identity_by_hand() -> None:
    book = ledger("10000")
    fills = [
        fill("buy", "1", "100", "1"),
        fill("buy", "3", "120", "3.6"),
        fill("sell", "1", "130", "1.3"),
        fill("sell", "5", "110", "5.5"),
        fill("buy", "1", "100", "1"),
    ]
    realised = [book.apply_fill(f, "main", "swing").realised_pnl for f in fills]
    assert realised == [D(0), D(0), D(15), D(-15), D(10)]
    assert book.cash("main") == {"USDT": D("10107.6")}
    snap = book.snapshot({"BTC/USDT": D(105)}, T0).accounts["main"]
    pos = snap.positions["BTC/USDT"]
    assert (pos.quantity, pos.avg_cost, pos.unrealised_pnl) == (D(-1), D(110), D(5))
    assert (pos.notional, pos.market_value) == (D(105), D(-105))
    assert (snap.realised_pnl, snap.unrealised_pnl, snap.fees) == (D(10), D(5), D("12.4"))
    assert snap.equity == D("10002.6")
    assert snap.equity == D(10000) + snap.realised_pnl + snap.unrealised_pnl - snap.fees
    assert (snap.gross_exposure, snap.net_exposure) == (D(105), D(-105))


def test_fees_must_be_in_the_quote_currency() -> None:
    book = ledger()
    with pytest.raises(ValidationFailedError, match=r"charges its fee in BTC.*quote currency \(USDT\)"):
        book.apply_fill(fill("buy", "1", "100", "0.001", fee_currency="BTC"), "main")
    book.apply_fill(fill("buy", "1", "100", "0", fee_currency="BNB"), "main")  # a zero fee in any currency is fine
    assert book.position("main", "BTC/USDT")[0] == D(1)


def test_unknown_accounts_and_inverse_contracts_are_refused() -> None:
    book = ledger()
    with pytest.raises(NotFoundError, match="account ghost is not open"):
        book.apply_fill(fill("buy", "1", "100"), "ghost")
    with pytest.raises(ValidationFailedError, match="inverse contracts"):
        book.apply_fill(fill("buy", "1", "100", symbol="BTC/USD:BTC", fee_currency="USD"), "main")
    with pytest.raises(ValidationFailedError, match="already open"):
        book.open_account("main")


def test_attribution_per_strategy_sums_to_the_account() -> None:
    book = ledger()
    book.apply_fill(fill("buy", "2", "100"), "main", "trend")
    book.apply_fill(fill("sell", "1", "110"), "main", "meanrev")
    book.apply_fill(fill("buy", "1", "50", symbol="ETH/USDT"), "main")
    prices = {"BTC/USDT": D(120), "ETH/USDT": D(40)}
    rows = {(r.strategy, r.symbol): r for r in book.attribution(prices)}
    trend, meanrev, manual = (
        rows[("trend", "BTC/USDT")],
        rows[("meanrev", "BTC/USDT")],
        rows[(UNATTRIBUTED, "ETH/USDT")],
    )
    assert (trend.quantity, trend.realised_pnl, trend.unrealised_pnl) == (D(2), D(0), D(40))
    assert (meanrev.quantity, meanrev.realised_pnl, meanrev.unrealised_pnl) == (D(-1), D(0), D(-10))
    assert manual.net_pnl == D(-10)
    snap = book.snapshot(prices, T0).accounts["main"]
    assert snap.realised_pnl == D(10)  # the account nets the two strategies: it closed 1 of its 2
    assert snap.unrealised_pnl == D(20 - 10)
    account_pnl = snap.realised_pnl + snap.unrealised_pnl - snap.fees
    assert sum((r.net_pnl for r in rows.values()), D(0)) == account_pnl
    assert book.position("main", "BTC/USDT", strategy="meanrev") == (D(-1), D(110))


def test_day_start_and_peak_equity_follow_the_marks_not_the_deposits() -> None:
    book = ledger("10000")
    book.apply_fill(fill("buy", "10", "100"), "main")
    first = book.snapshot({"BTC/USDT": D(100)}, T0).accounts["main"]
    assert (first.equity, first.day_start_equity, first.peak_equity) == (D(10000), D(10000), D(10000))
    up = book.snapshot({"BTC/USDT": D(150)}, T0 + timedelta(hours=1)).accounts["main"]
    assert (up.equity, up.peak_equity, up.daily_pnl) == (D(10500), D(10500), D(500))
    book.deposit("main", D(5000))
    down = book.snapshot({"BTC/USDT": D(80)}, T0 + timedelta(hours=2)).accounts["main"]
    assert down.equity == D(14800)
    assert down.day_start_equity == D(15000)  # moved with the deposit
    assert down.daily_pnl == D(-200)
    assert down.peak_equity == D(15500)
    assert down.drawdown == D(700) / D(15500)
    book.withdraw("main", D(4800))
    next_day = book.snapshot({"BTC/USDT": D(80)}, T0 + timedelta(days=1)).accounts["main"]
    assert next_day.equity == D(10000)
    assert next_day.day_start_equity == D(10000)  # a new UTC day starts at the first mark
    assert next_day.peak_equity == D(10700)  # the withdrawal is not a drawdown
    assert book.net_deposits("main") == {"USDT": D(10200)}


def test_a_holding_without_a_price_or_rate_is_reported_unvalued_and_the_marks_stay() -> None:
    book = ledger()
    book.apply_fill(fill("buy", "1", "100"), "main")
    marked = book.snapshot({"BTC/USDT": D(110)}, T0).accounts["main"]  # sets day start and peak: 10010
    assert marked.valued and marked.equity == D(10010)

    unpriced = book.snapshot({}, T0 + timedelta(hours=1)).accounts["main"]  # it used to raise here
    assert unpriced.unvalued == {"BTC/USDT": "no price for BTC/USDT, held by account main: cannot value it"}
    position = unpriced.positions["BTC/USDT"]
    assert position.quantity == D(1) and position.avg_cost == D(100)
    assert position.last_price is None and position.market_value is None and position.unvalued_reason
    assert unpriced.equity == D(9900)  # the cash only: what could be valued
    assert (unpriced.day_start_equity, unpriced.peak_equity) == (D(10010), D(10010))  # not a loss, not a mark
    assert book.snapshot({"BTC/USDT": D(110)}, T0 + timedelta(hours=2)).accounts["main"].peak_equity == D(10010)

    book.apply_fill(fill("buy", "1", "100", symbol="BTC/USD", fee_currency="USD"), "main")
    prices = {"BTC/USDT": D(100), "BTC/USD": D(101)}
    no_rate = book.snapshot(prices, T0).accounts["main"]
    assert no_rate.unvalued["BTC/USD"].startswith("no rate from USD to USDT to value the BTC/USD position")
    assert no_rate.positions["BTC/USD"].last_price == D(101) and no_rate.positions["BTC/USD"].market_value is None
    assert "the cash in USD" in no_rate.unvalued
    snap = book.snapshot(prices, T0, fx_rates={"USDT/USD": D("1.25")}).accounts["main"]  # 1 USD = 0.8 USDT
    assert snap.valued
    assert snap.positions["BTC/USD"].market_value == D("80.8")
    assert snap.cash == {"USDT": D(9900), "USD": D(-100)}
    assert snap.equity == D(9900) + D(-80) + D(100) + D("80.8")


def test_recent_orders_are_kept_for_a_minute() -> None:
    book = ledger()
    for seconds in (90, 50, 10):
        book.record_order("main", "BTC/USDT", T0 - timedelta(seconds=seconds))
    snap = book.snapshot({}, T0).accounts["main"]
    assert [o.ts for o in snap.recent_orders] == [T0 - timedelta(seconds=50), T0 - timedelta(seconds=10)]
    with pytest.raises(ValidationFailedError, match="timezone-aware"):
        book.record_order("main", "BTC/USDT", datetime(2024, 5, 1))


def test_round_trip_through_plain_data_is_exact() -> None:
    book = ledger("10000.123456789")
    book.apply_fill(fill("buy", "3", "100.1", "0.3003"), "main", "trend")
    book.apply_fill(fill("sell", "1", "101.7", "0.1017"), "main", "trend")
    book.apply_fill(fill("sell", "0.5", "2999.99", symbol="ETH/USDT"), "main")
    book.record_order("main", "ETH/USDT", T0)
    prices = {"BTC/USDT": D("99.95"), "ETH/USDT": D("3001")}
    before = book.snapshot(prices, T0)
    data = book.to_dict()
    assert data["accounts"]["main"]["cash"]["USDT"] == "11301.116456789"
    assert data["accounts"]["main"]["book"]["positions"]["BTC/USDT"] == {"quantity": "2", "cost_basis": "200.2"}
    again = Ledger.from_dict(data)
    assert again.to_dict() == data
    assert again.snapshot(prices, T0) == before


def test_malformed_data_is_refused_with_its_location() -> None:
    with pytest.raises(ValidationFailedError, match=r"malformed ledger data at accounts\.main\.cash\.USDT"):
        Ledger.from_dict({"accounts": {"main": {"valuation_currency": "USDT", "cash": {"USDT": "lots"}}}})
    with pytest.raises(ValidationFailedError, match="schema_version"):
        Ledger.from_dict({"schema_version": 9})


def test_deposits_and_withdrawals_must_be_positive() -> None:
    book = ledger()
    with pytest.raises(ValidationFailedError):
        book.deposit("main", D(0))
    with pytest.raises(ValidationFailedError):
        book.withdraw("main", D(-1))
