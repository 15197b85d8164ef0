from __future__ import annotations

import pytest
from pydantic import ValidationError

from engine.data.models import Bar, BookLevel, OrderBookSnapshot, Symbol, Ticker, Trade, parse_symbol
from engine.errors import ValidationFailedError


def test_parse_spot_and_perpetual() -> None:
    assert parse_symbol("BTC/USDT") == Symbol(base="BTC", quote="USDT", settle=None)
    perp = parse_symbol("BTC/USDT:USDT")
    assert (perp.base, perp.quote, perp.settle) == ("BTC", "USDT", "USDT")
    assert perp.is_perpetual and perp.is_linear and not perp.is_spot
    inverse = parse_symbol("BTC/USD:BTC")
    assert inverse.is_perpetual and not inverse.is_linear
    assert parse_symbol("1INCH/USDT").base == "1INCH"
    assert str(parse_symbol("ETH/BTC")) == "ETH/BTC"
    assert perp.unified == "BTC/USDT:USDT"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("BTCUSDT", r"malformed symbol 'BTCUSDT' \(expected BASE/QUOTE"),
        ("BTC-USDT", r"did you mean 'BTC/USDT'\?"),
        ("BTC-USDT-PERP", r"did you mean 'BTC/USDT:USDT'\?"),
        ("btc/usdt", r"upper case: did you mean 'BTC/USDT'\?"),
        ("BTC/USDT:USDT-240628", "dated futures and options are not supported"),
        ("BTC/BTC", "base and quote are the same currency"),
        ("BTC/", "malformed symbol 'BTC/'"),
        ("/USDT", "malformed symbol '/USDT'"),
        ("BTC/USDT:", "malformed symbol 'BTC/USDT:'"),
        (" BTC/USDT", "malformed symbol"),
        ("", "non-empty string"),
    ],
)
def test_symbol_errors_are_clear(text: str, message: str) -> None:
    with pytest.raises(ValidationFailedError, match=message):
        parse_symbol(text)


def test_models_validate_identity_fields() -> None:
    bar = Bar(exchange="binance", symbol="BTC/USDT", timeframe="1m", ts=0, open=1, high=2, low=0.5, close=1.5, volume=3)
    assert bar.close == 1.5
    with pytest.raises(ValidationError, match="did you mean 'BTC/USDT'"):
        Bar(exchange="binance", symbol="BTC-USDT", timeframe="1m", ts=0, open=1, high=1, low=1, close=1, volume=0)
    with pytest.raises(ValidationError, match="lower-case ccxt id"):
        Trade(exchange="Binance", symbol="BTC/USDT", ts=0, price=1, amount=1, side="buy")
    with pytest.raises(ValidationError):
        Bar(exchange="binance", symbol="BTC/USDT", timeframe="2h", ts=0, open=1, high=1, low=1, close=1, volume=0)
    with pytest.raises(ValidationError):
        Trade(exchange="binance", symbol="BTC/USDT", ts=-1, price=1, amount=1, side="buy")


def test_trade_rejects_bad_values() -> None:
    for bad in ({"price": 0.0}, {"amount": -1.0}, {"price": float("nan")}, {"amount": float("inf")}, {"side": "long"}):
        fields = {"exchange": "binance", "symbol": "BTC/USDT", "ts": 1, "price": 10.0, "amount": 1.0, "side": "sell"}
        fields.update(bad)
        with pytest.raises(ValidationError):
            Trade(**fields)


def test_ticker_and_book() -> None:
    t = Ticker(exchange="kraken", symbol="ETH/USD", ts=5, bid=1.0, ask=1.1)
    assert t.last is None
    book = OrderBookSnapshot(
        exchange="kraken",
        symbol="ETH/USD",
        ts=5,
        bids=(BookLevel(price=10, amount=1), BookLevel(price=9, amount=2)),
        asks=(BookLevel(price=11, amount=3),),
    )
    top = book.top()
    assert top.bid == BookLevel(price=10, amount=1) and top.ask == BookLevel(price=11, amount=3)
    assert book.depth == 2
    with pytest.raises(ValidationError, match="bids must be strictly descending"):
        OrderBookSnapshot(
            exchange="kraken",
            symbol="ETH/USD",
            ts=5,
            bids=(BookLevel(price=9, amount=1), BookLevel(price=10, amount=1)),
        )
    with pytest.raises(ValidationError, match="asks must be strictly ascending"):
        OrderBookSnapshot(
            exchange="kraken",
            symbol="ETH/USD",
            ts=5,
            asks=(BookLevel(price=12, amount=1), BookLevel(price=11, amount=1)),
        )


def test_models_dump_to_json_payloads() -> None:
    trade = Trade(exchange="binance", symbol="BTC/USDT:USDT", ts=1, price=10.0, amount=0.5, side="buy", trade_id="42")
    payload = trade.model_dump(mode="json")
    assert payload == {
        "exchange": "binance",
        "symbol": "BTC/USDT:USDT",
        "ts": 1,
        "price": 10.0,
        "amount": 0.5,
        "side": "buy",
        "trade_id": "42",
    }
    assert Trade.model_validate(payload) == trade
