"""The matching state on its own: price paths, klines semantics, matching, balances, fees, ids."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest

from tests.support.loopback import Balance, BinanceApiError, ExchangeState, LoopbackConfig, OrderRequest
from tests.support.loopback.state import Side, TimeInForce
from tests.unit.loopback.helpers import MINUTE, T0, flat_rows, ramp_rows

D = Decimal
HOUR = 60 * MINUTE


def _state(**overrides: Any) -> ExchangeState:
    return ExchangeState(LoopbackConfig(initial_balances={"USDT": D("100000"), "BTC": D("1")}, **overrides))


def _limit(
    side: Side, qty: str, price: str, client_order_id: str | None = None, tif: TimeInForce = "GTC"
) -> OrderRequest:
    return OrderRequest(
        "BTC/USDT", side, "LIMIT", quantity=D(qty), price=D(price), time_in_force=tif, client_order_id=client_order_id
    )


def _market(side: Side, qty: str, client_order_id: str | None = None) -> OrderRequest:
    return OrderRequest("BTC/USDT", side, "MARKET", quantity=D(qty), client_order_id=client_order_id)


# --- price paths -----------------------------------------------------------------------------------
def test_default_path_is_deterministic_consistent_and_on_the_tick_grid() -> None:
    a, b = ExchangeState(), ExchangeState()
    assert a.bars("ETH/USDT", include_future=True) == b.bars("ETH/USDT", include_future=True)
    cfg = a.config
    assert len(a.bars("ETH/USDT", include_future=True)) == cfg.default_bars
    assert len(a.bars("ETH/USDT")) == cfg.default_history_bars
    for symbol in cfg.symbols:
        spec = a.markets.get(symbol)
        for bar in a.bars(symbol, include_future=True)[:300]:
            assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
            assert bar.low > 0 and bar.volume > 0
            assert bar.close % spec.tick_size == 0 and bar.volume % spec.step_size == 0
    other_seed = ExchangeState(LoopbackConfig(seed=8))
    assert other_seed.bars("ETH/USDT") != a.bars("ETH/USDT")


def test_load_bars_sets_the_clock_and_validates_rows() -> None:
    state = ExchangeState()
    state.load_bars("BTCUSDT", MINUTE, flat_rows(10), start_index=3)
    assert state.clock_ms == T0 + 4 * MINUTE
    assert state.bar_index("BTC/USDT") == 3
    state.load_bars("BTC/USDT", MINUTE, flat_rows(10))
    assert state.bar_index("BTC/USDT") == 9
    with pytest.raises(ValueError, match="increase"):
        state.load_bars("BTC/USDT", MINUTE, [(T0, 1, 1, 1, 1, 1), (T0, 1, 1, 1, 1, 1)])
    with pytest.raises(ValueError, match="inconsistent"):
        state.load_bars("BTC/USDT", MINUTE, [(T0, 10, 9, 8, 10, 1)])
    with pytest.raises(ValueError, match="grid"):
        state.load_bars("BTC/USDT", MINUTE, [(T0, 1, 1, 1, 1, 1), (T0 + 1_000, 1, 1, 1, 1, 1)])
    with pytest.raises(BinanceApiError) as bad:
        state.load_bars("SOL/USDT", MINUTE, flat_rows(1))
    assert bad.value.code == -1121


# --- klines ----------------------------------------------------------------------------------------
def test_klines_follow_binance_paging_rules_and_never_pass_the_clock() -> None:
    state = ExchangeState()
    state.load_bars("BTC/USDT", MINUTE, ramp_rows(2500), start_index=2199)  # bars 0..2199 closed
    ts = [k.open_time for k in state.klines("BTC/USDT", "1m", start_time=T0)]
    assert ts == [T0 + i * MINUTE for i in range(500)]  # default limit 500, ascending from startTime
    assert len(state.klines("BTC/USDT", "1m", start_time=T0, limit=5000)) == 1000  # max 1000
    mid = state.klines("BTC/USDT", "1m", start_time=T0 + 10 * MINUTE + 1, limit=2)
    assert [k.open_time for k in mid] == [T0 + 11 * MINUTE, T0 + 12 * MINUTE]  # open time >= startTime
    latest = state.klines("BTC/USDT", "1m")
    assert latest[-1].open_time == T0 + 2199 * MINUTE and len(latest) == 500  # newest 500 up to the clock
    ending = state.klines("BTC/USDT", "1m", end_time=T0 + 100 * MINUTE, limit=3)
    assert [k.open_time for k in ending] == [T0 + 98 * MINUTE, T0 + 99 * MINUTE, T0 + 100 * MINUTE]
    window = state.klines("BTC/USDT", "1m", start_time=T0 + 5 * MINUTE, end_time=T0 + 7 * MINUTE)
    assert [k.open_time for k in window] == [T0 + 5 * MINUTE, T0 + 6 * MINUTE, T0 + 7 * MINUTE]
    assert state.klines("BTC/USDT", "1m", start_time=T0 + 2200 * MINUTE) == []  # the future is hidden
    state.advance(5)
    assert state.klines("BTC/USDT", "1m")[-1].open_time == T0 + 2204 * MINUTE
    k = state.klines("BTC/USDT", "1m", start_time=T0 + 7 * MINUTE, limit=1)[0]
    assert (k.open, k.high, k.low, k.close, k.volume) == (D(10007), D(10009), D(10006), D(10008), D(8))
    assert k.close_time == T0 + 8 * MINUTE - 1


def test_klines_aggregate_base_bars_into_longer_intervals() -> None:
    state = ExchangeState()
    state.load_bars("BTC/USDT", MINUTE, ramp_rows(150))  # 2.5 hours, all closed
    hours = state.klines("BTC/USDT", "1h", start_time=T0)
    assert [k.open_time for k in hours] == [T0, T0 + HOUR, T0 + 2 * HOUR]
    first = hours[0]
    assert (first.open, first.high, first.low, first.close) == (D(10_000), D(10_061), D(9_999), D(10_060))
    assert first.volume == sum(D(i + 1) for i in range(60))
    assert first.close_time == T0 + HOUR - 1
    assert hours[2].close == D(10_150)  # the running hour holds its 30 closed minutes, like Binance's live bar
    assert [k.open_time for k in state.klines("BTC/USDT", "1h", start_time=T0 + 1)] == [T0 + HOUR, T0 + 2 * HOUR]
    assert [k.open_time for k in state.klines("BTC/USDT", "1h", limit=1)] == [T0 + 2 * HOUR]
    assert [k.open_time for k in state.klines("BTC/USDT", "1h", end_time=T0 + HOUR + 5)] == [T0, T0 + HOUR]
    with pytest.raises(BinanceApiError) as bad:
        state.klines("BTC/USDT", "7m")
    assert bad.value.code == -1120
    with pytest.raises(BinanceApiError) as finer:
        state.klines("BTC/USDT", "1s")
    assert finer.value.code == -1120


# --- matching --------------------------------------------------------------------------------------
def test_resting_limit_buy_partial_fill_then_fill_with_maker_fee() -> None:
    state = _state(partial_fill_fraction=D("0.5"))
    rows = [
        (T0, 20000, 20000, 20000, 20000, 10),
        (T0 + MINUTE, 20000, 20100, 19950, 20050, 10),  # does not reach 19900
        (T0 + 2 * MINUTE, 20050, 20060, 19850, 19900, 1),  # crosses: at most 0.5 BTC fill
        (T0 + 3 * MINUTE, 19900, 19950, 19800, 19850, 1),  # crosses again: the rest
    ]
    state.load_bars("BTC/USDT", MINUTE, rows, start_index=0)
    order = state.place_order(_limit("BUY", "0.8", "19900", client_order_id="cid-1"))
    assert order.status == "NEW"
    assert state.balance("USDT").free == D("84080") and state.balance("USDT").locked == D("15920")
    assert state.advance(1) == []
    fills = state.advance(1)
    assert [(f.qty, f.price, f.is_maker, f.commission) for f in fills] == [(D("0.5"), D("19900"), True, D("0.0005"))]
    assert state.get_order("BTC/USDT", order.order_id).status == "PARTIALLY_FILLED"
    state.advance(1)
    done = state.get_order("BTC/USDT", orig_client_order_id="cid-1")
    assert done.status == "FILLED" and done.executed_qty == D("0.8")
    assert done.cummulative_quote_qty == D("15920")
    assert state.balance("USDT") == Balance("USDT", D("84080"), D("0"))
    assert state.balance("BTC").free == D("1") + D("0.8") - D("0.0008")
    assert [f.time for f in done.fills] == [T0 + 3 * MINUTE, T0 + 4 * MINUTE]  # simulated time of the bar's close


def test_market_orders_fill_at_the_last_close_with_taker_fee_on_the_received_asset() -> None:
    state = _state(taker_fee_rate=D("0.002"))
    state.load_bars("BTC/USDT", MINUTE, flat_rows(3, price="25000.5"), start_index=1)
    sell = state.place_order(_market("SELL", "0.4"))
    assert sell.status == "FILLED" and sell.fills[0].price == D("25000.5")
    assert sell.fills[0].commission == D("20.00040000") and sell.fills[0].commission_asset == "USDT"
    assert state.balance("USDT").free == D("100000") + D("10000.2") - D("20.0004")
    assert state.balance("BTC").free == D("0.6")
    buy = state.place_order(OrderRequest("BTC/USDT", "BUY", "MARKET", quote_order_qty=D("1000")))
    assert buy.executed_qty == D("0.03999") and buy.orig_quote_order_qty == D("1000")  # floor(1000/25000.5)
    assert buy.fills[0].commission == D("0.00007998") and buy.fills[0].commission_asset == "BTC"


def test_marketable_limit_fills_at_last_price_and_returns_the_unused_lock() -> None:
    state = _state()
    state.load_bars("BTC/USDT", MINUTE, flat_rows(2, price="20000"), start_index=0)
    order = state.place_order(_limit("BUY", "0.5", "21000"))
    assert order.status == "FILLED" and order.fills[0].price == D("20000") and not order.fills[0].is_maker
    assert state.balance("USDT") == Balance("USDT", D("90000"), D("0"))


def test_time_in_force_and_limit_maker() -> None:
    state = _state()
    state.load_bars("BTC/USDT", MINUTE, flat_rows(2, price="20000"), start_index=0)
    ioc = state.place_order(_limit("BUY", "0.1", "19000", tif="IOC"))
    assert ioc.status == "EXPIRED" and state.balance("USDT").locked == 0
    with pytest.raises(BinanceApiError, match="immediately match"):
        state.place_order(OrderRequest("BTC/USDT", "BUY", "LIMIT_MAKER", quantity=D("0.1"), price=D("20000")))
    maker = state.place_order(OrderRequest("BTC/USDT", "BUY", "LIMIT_MAKER", quantity=D("0.1"), price=D("19999")))
    assert maker.status == "NEW"


@pytest.mark.parametrize(
    ("request_", "code", "msg"),
    [
        (_limit("BUY", "10", "20000"), -2010, "Account has insufficient balance for requested action."),
        (_market("SELL", "2"), -2010, "Account has insufficient balance for requested action."),
        (_limit("BUY", "0.000015", "20000"), -1013, "Filter failure: LOT_SIZE"),
        (_limit("BUY", "0.1", "20000.005"), -1013, "Filter failure: PRICE_FILTER"),
        (_limit("BUY", "0.0001", "20000"), -1013, "Filter failure: NOTIONAL"),
        (_market("BUY", "200"), -1013, "Filter failure: MARKET_LOT_SIZE"),
        (OrderRequest("BTC/USDT", "BUY", "LIMIT", quantity=D("0.1"), price=D("20000")), -1102, None),
        (OrderRequest("BTC/USDT", "BUY", "MARKET", quantity=D("0.1"), price=D("20000")), -1106, None),
    ],
)
def test_refusals_use_binance_codes(request_: OrderRequest, code: int, msg: str | None) -> None:
    state = _state()
    state.load_bars("BTC/USDT", MINUTE, flat_rows(2, price="20000"), start_index=0)
    with pytest.raises(BinanceApiError) as err:
        state.place_order(request_)
    assert err.value.code == code
    if msg is not None:
        assert err.value.msg == msg
    assert state.orders() == []
    assert state.balance("USDT") == Balance("USDT", D("100000"), D("0"))


def test_market_order_before_the_first_bar_is_refused_as_market_closed() -> None:
    state = _state()
    state.load_bars("BTC/USDT", MINUTE, flat_rows(2), start_index=0)
    state.set_clock(T0)
    with pytest.raises(BinanceApiError, match=r"Market is closed\."):
        state.place_order(_market("BUY", "0.1"))


def test_cancel_releases_the_lock_and_unknown_orders_use_binance_codes() -> None:
    state = _state()
    state.load_bars("BTC/USDT", MINUTE, flat_rows(3), start_index=0)
    order = state.place_order(_limit("SELL", "0.25", "21000"))
    assert state.balance("BTC").locked == D("0.25")
    canceled = state.cancel_order("BTC/USDT", order.order_id)
    assert canceled.status == "CANCELED" and state.balance("BTC") == Balance("BTC", D(1), D(0))
    with pytest.raises(BinanceApiError) as again:
        state.cancel_order("BTC/USDT", order.order_id)
    assert again.value.code == -2011
    with pytest.raises(BinanceApiError) as missing:
        state.get_order("BTC/USDT", 42)
    assert missing.value.code == -2013
    with pytest.raises(BinanceApiError) as wrong_symbol:
        state.get_order("ETH/USDT", order.order_id)
    assert wrong_symbol.value.code == -2013


def test_orders_only_match_bars_that_close_after_they_were_placed() -> None:
    state = _state()
    rows = [(T0, 20000, 20000, 18000, 20000, 5), (T0 + MINUTE, 20000, 20000, 20000, 20000, 5)]
    state.load_bars("BTC/USDT", MINUTE, rows, start_index=0)  # bar 0 dipped to 18000: already history
    order = state.place_order(_limit("BUY", "0.1", "19000"))
    state.advance(1)
    assert state.get_order("BTC/USDT", order.order_id).status == "NEW"


@pytest.mark.parametrize(("mode", "accepted_after_fill"), [("any", False), ("open", True)])
def test_duplicate_client_order_id(mode: str, accepted_after_fill: bool) -> None:
    state = _state(duplicate_client_order_id=mode)
    state.load_bars("BTC/USDT", MINUTE, flat_rows(3), start_index=0)
    resting = state.place_order(_limit("BUY", "0.1", "19000", client_order_id="same"))
    with pytest.raises(BinanceApiError, match=r"Duplicate order sent\."):
        state.place_order(_limit("BUY", "0.1", "19000", client_order_id="same"))
    state.cancel_order("BTC/USDT", resting.order_id)
    if accepted_after_fill:
        again = state.place_order(_market("BUY", "0.1", client_order_id="same"))
        assert state.get_order("BTC/USDT", orig_client_order_id="same").order_id == again.order_id
    else:
        with pytest.raises(BinanceApiError, match=r"Duplicate order sent\."):
            state.place_order(_market("BUY", "0.1", client_order_id="same"))
        assert len(state.orders()) == 1


def test_my_trades_and_all_orders_filters() -> None:
    state = _state()
    state.load_bars("BTC/USDT", MINUTE, flat_rows(5), start_index=0)
    first = state.place_order(_market("BUY", "0.01"))
    state.advance(2)
    second = state.place_order(_market("SELL", "0.02"))
    assert [f.order_id for f in state.my_trades("BTC/USDT")] == [first.order_id, second.order_id]
    assert [f.order_id for f in state.my_trades("BTC/USDT", order_id=second.order_id)] == [second.order_id]
    assert [f.order_id for f in state.my_trades("BTC/USDT", start_time=T0 + 2 * MINUTE)] == [second.order_id]
    assert [f.order_id for f in state.my_trades("BTC/USDT", limit=1)] == [second.order_id]
    assert [o.order_id for o in state.all_orders("BTC/USDT", order_id=second.order_id)] == [second.order_id]
    assert state.my_trades("ETH/USDT") == []


def test_concurrent_orders_from_threads_keep_ids_unique_and_balances_exact() -> None:
    state = _state()
    state.load_bars("BTC/USDT", MINUTE, flat_rows(2, price="20000"), start_index=0)

    def worker() -> None:
        for _ in range(25):
            state.place_order(_limit("BUY", "0.01", "19000"))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [o.order_id for o in state.orders()]
    assert len(ids) == 100 and len(set(ids)) == 100
    assert state.balance("USDT").locked == D("19000") and state.balance("USDT").free == D("81000")


def test_push_bar_appends_one_bar_and_matches_it() -> None:
    state = _state()
    state.load_bars("BTC/USDT", MINUTE, flat_rows(3))
    order = state.place_order(_limit("BUY", "0.1", "19900"))
    assert state.push_bar("BTC/USDT", (T0 + 3 * MINUTE, 20000, 20000, 19950, 19960, 10)) == []
    [fill] = state.push_bar("BTC/USDT", (T0 + 4 * MINUTE, 19960, 19970, 19890, 19900, 10))
    assert (fill.order_id, fill.price, fill.is_maker) == (order.order_id, D(19900), True)
    assert state.clock_ms == T0 + 5 * MINUTE and state.last_price("BTC/USDT") == D(19900)
    with pytest.raises(ValueError, match="opens at"):
        state.push_bar("BTC/USDT", (T0 + 9 * MINUTE, 1, 1, 1, 1, 1))
    state.advance(1)
    with pytest.raises(ValueError, match="needs the clock at"):
        state.push_bar("BTC/USDT", (T0 + 5 * MINUTE, 1, 1, 1, 1, 1))
