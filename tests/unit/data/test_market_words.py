"""What people write for a market and a timeframe, read into codes (the provider matches them to stored series)."""

from __future__ import annotations

import pytest

from engine.data.symbols import parse_symbol_query
from engine.data.timeframes import parse_timeframe
from engine.errors import ValidationFailedError

STORED_BASES = {"BTC", "ETH", "LTC"}
STORED_QUOTES = {"USD"}


@pytest.mark.parametrize(
    ("text", "base", "quote", "settle"),
    [
        ("BTC", "BTC", None, None),
        ("btc", "BTC", None, None),
        ("bitcoin", "BTC", None, None),
        ("Bitcoin", "BTC", None, None),
        ("xbt", "BTC", None, None),
        ("ether", "ETH", None, None),
        ("ethereum", "ETH", None, None),
        ("ETH", "ETH", None, None),  # a stored base is not split into E/TH
        ("litecoin", "LTC", None, None),
        ("BTC/USD", "BTC", "USD", None),
        ("btc/usdt", "BTC", "USDT", None),
        ("btc-usd", "BTC", "USD", None),
        ("BTC_USD", "BTC", "USD", None),
        ("btc usd", "BTC", "USD", None),
        ("bitcoin / dollar", "BTC", "USD", None),
        ("BTCUSD", "BTC", "USD", None),
        ("BTCUSDT", "BTC", "USDT", None),
        ("XBTUSD", "BTC", "USD", None),  # ends in TUSD too: the split onto a stored base wins
        ("ethbtc", "ETH", "BTC", None),
        ("BTC/USDT:USDT", "BTC", "USDT", "USDT"),
        ("doge", "DOGE", None, None),
    ],
)
def test_symbol_forms(text: str, base: str, quote: str | None, settle: str | None) -> None:
    query = parse_symbol_query(text, bases=STORED_BASES, quotes=STORED_QUOTES)
    assert (query.base, query.quote, query.settle) == (base, quote, settle)
    assert query.text == text.strip()


@pytest.mark.parametrize("text", ["", "   ", "a/b/c", "BTC/US$", "B!TC"])
def test_malformed_symbols_name_the_field(text: str) -> None:
    with pytest.raises(ValidationFailedError, match=r"^symbol: "):
        parse_symbol_query(text)


@pytest.mark.parametrize(
    ("text", "timeframe"),
    [
        ("1m", "1m"), ("1 minute", "1m"), ("minute", "1m"), ("minutely", "1m"), ("M1", "1m"),
        ("5m", "5m"), ("5 min", "5m"), ("5 minutes", "5m"),
        ("15m", "15m"), ("15 min", "15m"), ("M15", "15m"),
        ("1h", "1h"), ("1H", "1h"), ("hourly", "1h"), ("Hourly", "1h"), ("1 hour", "1h"), ("hour", "1h"),
        ("60m", "1h"), ("60 min", "1h"), ("H1", "1h"), ("1hr", "1h"),
        ("4h", "4h"), ("4 hours", "4h"), ("240m", "4h"), ("H4", "4h"),
        ("1d", "1d"), ("1D", "1d"), ("daily", "1d"), ("day", "1d"), ("1 day", "1d"), ("24h", "1d"), ("D1", "1d"),
        ("1w", "1w"), ("weekly", "1w"), ("week", "1w"), ("7d", "1w"), ("1 week", "1w"),
    ],
)  # fmt: skip
def test_timeframe_words(text: str, timeframe: str) -> None:
    assert parse_timeframe(text) == timeframe


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fortnightly", "timeframe: unsupported timeframe 'fortnightly'; supported: 1m, 5m, 15m, 1h, 4h, 1d, 1w"),
        ("2h", "timeframe: unsupported timeframe '2h'"),
        ("1M", "timeframe: '1M' means months in ccxt"),
        ("", "timeframe: expected a timeframe, one of 1m"),
    ],
)
def test_unsupported_timeframes_list_the_valid_ones(text: str, message: str) -> None:
    with pytest.raises(ValidationFailedError) as raised:
        parse_timeframe(text)
    assert str(raised.value).startswith(message)
