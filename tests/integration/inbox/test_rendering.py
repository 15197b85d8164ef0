"""The pieces the pages are drawn with: the SVG chart, value formatting, the evidence hook."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from xml.etree import ElementTree

from approvals.service import Evidence
from engine.store.database import Database
from ui.api.inbox.chart import Candle, Chart, Marker, load_chart, render_svg
from ui.api.inbox.evidence import evidence_href, evidence_summary
from ui.api.inbox.templating import format_num, format_value


def _chart(markers: list[Marker]) -> Chart:
    candles = [
        Candle(
            ts=1_600_000_000_000 + i * 3_600_000, open=100 + i, high=103 + i, low=98 + i, close=101 + i - 2 * (i % 2)
        )
        for i in range(40)
    ]
    return Chart(
        symbol="BTC/USD",
        source="x:BTC/USD:1h",
        timeframe="1h",
        candles=candles,
        markers=markers,
        last_price=140.0,
        last_ts=datetime(2020, 9, 15, tzinfo=UTC),
    )


def test_the_chart_is_well_formed_svg_with_every_candle_and_marker() -> None:
    svg = str(render_svg(_chart([Marker(price=200.0, label="proposed <b>", kind="proposed")])))
    root = ElementTree.fromstring(svg)  # well-formed XML, label escaped
    ns = {"s": "http://www.w3.org/2000/svg"}
    assert (
        len(root.findall(".//s:g[@class='candle up']", ns)) + len(root.findall(".//s:g[@class='candle down']", ns))
        == 40
    )
    marker = root.find(".//s:g[@class='marker proposed']", ns)
    assert marker is not None and "proposed <b>" in "".join(marker.itertext())
    # the price scale stretches to a marker outside the bars' range: its line stays inside the plot
    line = marker.find("s:line", ns)
    assert line is not None and 14 <= float(line.attrib["y1"]) <= 284
    assert "<script" not in svg and "style=" not in svg  # the page's CSP allows neither


def test_the_chart_uses_the_freshest_stored_series(db: Database, market: Decimal) -> None:
    chart = load_chart(db, "BTC/USD", {"price": None, "stop_price": None})
    assert chart is not None and 50 <= len(chart.candles) <= 100
    assert [m.kind for m in chart.markers] == ["last"] and chart.markers[0].price == float(market)
    assert chart.candles == sorted(chart.candles, key=lambda c: c.ts)
    stop_limit = load_chart(db, "BTC/USD", {"price": "8000", "stop_price": "8100"})
    assert stop_limit is not None and [m.kind for m in stop_limit.markers] == ["proposed", "stop"]
    assert load_chart(db, "DOGE/USD", {}) is None


def test_values_read_well() -> None:
    assert format_num("1234567.50") == "1,234,567.5"
    assert format_num(Decimal("-0.000100")) == "-0.0001"
    assert format_value("6.5342948725E-7") == "0.00000065342949"
    assert format_value(1.4999730179379045) == "1.499973"
    assert format_value(False) == "false" and format_value(None) == "—"
    assert format_value(("BTC/USD", "ETH/USD")) == "BTC/USD, ETH/USD"
    assert format_value("dry-run") == "dry-run"
    assert re.fullmatch(r"50,000", format_value(50000))


def test_the_evidence_hook_and_links() -> None:
    assert evidence_summary(Evidence(kind="backtest", ref="bt_1")) is None  # no run store yet
    assert evidence_summary(Evidence(kind="note", ref="n1")) is None
    assert evidence_href(Evidence(kind="url", ref="https://example.org/paper")) == "https://example.org/paper"
    for ref in ("javascript:alert(1)", "data:text/html,x", "//evil.example", "ftp://x/y"):
        assert evidence_href(Evidence(kind="url", ref=ref)) is None
    assert evidence_href(Evidence(kind="backtest", ref="https://example.org")) is None
