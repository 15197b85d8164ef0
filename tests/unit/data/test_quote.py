"""Quotes: when a price was observed, how old it is, when it is replayed history, and what the note says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from engine.data.bundled import BUNDLED_SERIES
from engine.data.quote import history_note, make_quote
from engine.data.sample import load_sample_series

OPEN_MS = 1_579_219_200_000  # 2020-01-17 00:00 UTC
CLOSE = datetime(2020, 1, 18, tzinfo=UTC)


def test_a_daily_sample_bar_read_years_later_is_a_replayed_sample_price() -> None:
    as_of = CLOSE + timedelta(days=2510, hours=3)
    q = make_quote(exchange="bitstamp", symbol="BTC/USD", timeframe="1d", bar_open_ms=OPEN_MS,
                   close=Decimal("8709.49"), as_of=as_of)  # fmt: skip
    assert q.ts == CLOSE and q.bar_open == CLOSE - timedelta(days=1) and q.as_of == as_of
    assert q.age_seconds == (as_of - CLOSE).total_seconds() and q.age == as_of - CLOSE
    assert q.replayed and q.sample and q.series == q.source == "bitstamp:BTC/USD:1d"
    assert q.note == "replayed sample price from 2020-01-17 (2,510 days old), series bitstamp:BTC/USD:1d"


def test_a_bar_that_just_closed_is_live_and_a_forming_one_is_observed_now() -> None:
    closed = make_quote(exchange="binance", symbol="BTC/USDT", timeframe="1m", bar_open_ms=OPEN_MS,
                        close=Decimal(1), as_of=datetime.fromtimestamp(OPEN_MS / 1000 + 90, UTC))  # fmt: skip
    assert closed.age_seconds == 30 and not closed.replayed and not closed.sample and closed.note is None
    forming = make_quote(exchange="binance", symbol="BTC/USDT", timeframe="1h", bar_open_ms=OPEN_MS,
                         close=Decimal(1), as_of=datetime.fromtimestamp(OPEN_MS / 1000 + 600, UTC))  # fmt: skip
    assert forming.age_seconds == 0 and forming.ts == forming.as_of and not forming.replayed


def test_older_than_two_bars_is_replayed_and_a_replay_clock_always_is() -> None:
    hour = 3600
    at = datetime.fromtimestamp(OPEN_MS / 1000 + hour + 2 * hour + 1, UTC)  # closed, then two more bars and 1 s
    stale = make_quote(exchange="kraken", symbol="BTC/USD", timeframe="1h", bar_open_ms=OPEN_MS, close=Decimal(1),
                       as_of=at)  # fmt: skip
    assert stale.replayed and stale.note == (
        "replayed price from 2020-01-17 00:00 UTC (2 hours old), series kraken:BTC/USD:1h"
    )
    just = make_quote(exchange="kraken", symbol="BTC/USD", timeframe="1h", bar_open_ms=OPEN_MS, close=Decimal(1),
                      as_of=at - timedelta(seconds=2))  # fmt: skip
    assert not just.replayed
    replay = make_quote(exchange="kraken", symbol="BTC/USD", timeframe="1h", bar_open_ms=OPEN_MS, close=Decimal(1),
                        as_of=at - timedelta(seconds=2), replay=True)  # fmt: skip
    assert replay.replayed and replay.note is not None


def test_history_notes_and_the_bundled_series_list() -> None:
    note = history_note("coinbase", "BTC/USD", "1h", 1_571_302_800_000, datetime(2025, 10, 17, 10, tzinfo=UTC))
    assert note == "replayed sample history: the last bar is from 2019-10-17 09:00 UTC (2,192 days old)"
    just_closed = datetime.fromtimestamp(OPEN_MS / 1000 + 3600 + 60, UTC)
    assert history_note("binance", "BTC/USDT", "1h", OPEN_MS, just_closed) is None
    assert {s.key for s in load_sample_series()} == BUNDLED_SERIES
