"""A self-contained HTML report of one backtest run: metrics, trades on the price chart, equity against buy and
hold, drawdown, and the trade list. Inline SVG and CSS only: no script, no CDN, opens offline in any browser."""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.research.runs import RunRecord, TradeRow

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

WIDTH, PAD_L, PAD_R, PAD_T, PAD_B = 1100, 70, 20, 16, 26
MAX_POINTS = 1600
MAX_MARKERS = 3000
MAX_TRADE_ROWS = 300

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1f2933;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:15px;margin:22px 0 6px}.sub{color:#52606d;font-size:13px}
table{border-collapse:collapse;font-size:12px}td,th{padding:3px 8px;border-bottom:1px solid #e4e7eb;text-align:right}
th{background:#f5f7fa}td:first-child,th:first-child{text-align:left}.metrics{display:flex;flex-wrap:wrap;gap:8px}
.m{border:1px solid #e4e7eb;border-radius:6px;padding:6px 10px;min-width:120px}.m b{display:block;font-size:16px}
.m span{color:#52606d;font-size:11px}svg{display:block}.axis{font-size:10px;fill:#52606d}.grid{stroke:#eef1f4}
.pos{color:#1a7f37}.neg{color:#c62828}.legend{font-size:11px;color:#52606d}
"""


def _fmt_ts(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _thin(x: I64, y: F64, points: int = MAX_POINTS) -> tuple[I64, F64]:
    """At most ``points`` points keeping each bucket's low and high (the shape of the curve)."""
    n = len(y)
    if n <= points:
        return x, y
    buckets = points // 2
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    keep = [0, n - 1]
    for lo, hi in itertools.pairwise(edges):
        if hi > lo:
            part = y[lo:hi]
            keep += [int(lo + np.nanargmin(part)), int(lo + np.nanargmax(part))]
    index = np.unique(np.asarray(keep))
    return x[index], y[index]


class _Frame:
    """Maps times and values to SVG coordinates within a panel."""

    def __init__(self, t0: int, t1: int, lo: float, hi: float, height: int) -> None:
        if hi <= lo:
            hi, lo = lo + 1.0, lo - 1.0
        margin = (hi - lo) * 0.04
        self.t0, self.t1, self.lo, self.hi, self.height = t0, max(t1, t0 + 1), lo - margin, hi + margin, height

    def x(self, t: float) -> float:
        return PAD_L + (t - self.t0) / (self.t1 - self.t0) * (WIDTH - PAD_L - PAD_R)

    def y(self, v: float) -> float:
        return PAD_T + (self.hi - v) / (self.hi - self.lo) * (self.height - PAD_T - PAD_B)

    def path(self, ts: I64, values: F64) -> str:
        parts = []
        pen = "M"
        for t, v in zip(ts, values, strict=True):
            if not math.isfinite(v):
                pen = "M"
                continue
            parts.append(f"{pen}{self.x(float(t)):.1f},{self.y(float(v)):.1f}")
            pen = "L"
        return "".join(parts)

    def axes(self, value_format: str) -> str:
        out = []
        for k in range(5):
            v = self.lo + (self.hi - self.lo) * k / 4
            y = self.y(v)
            out.append(f'<line class="grid" x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{y:.1f}" y2="{y:.1f}"/>')
            out.append(
                f'<text class="axis" x="{PAD_L - 6}" y="{y + 3:.1f}" text-anchor="end">{value_format.format(v)}</text>'
            )
        for k in range(6):
            t = self.t0 + (self.t1 - self.t0) * k / 5
            anchor = "start" if k == 0 else "end" if k == 5 else "middle"
            out.append(
                f'<text class="axis" x="{self.x(t):.1f}" y="{self.height - 8}" text-anchor="{anchor}">'
                f"{_fmt_ts(int(t))[:10]}</text>"
            )
        return "".join(out)


def _svg(height: int, body: str, label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
        f'role="img" aria-label="{html.escape(label)}">{body}</svg>'
    )


def price_chart(ts: I64, close: F64, trades: Sequence[TradeRow]) -> str:
    """Close price with every trade's entry (triangle) and exit (circle), green for longs, red for shorts."""
    height = 320
    t, c = _thin(ts, close)
    frame = _Frame(int(ts[0]), int(ts[-1]), float(np.nanmin(close)), float(np.nanmax(close)), height)
    body = [frame.axes("{:,.0f}"), f'<path d="{frame.path(t, c)}" fill="none" stroke="#3e4c59" stroke-width="1"/>']
    for trade in list(trades)[:MAX_MARKERS]:
        colour = "#1a7f37" if trade.side > 0 else "#c62828"
        x, y = frame.x(trade.entry_ts), frame.y(trade.entry_price)
        points = f"{x:.1f},{y - 5:.1f} {x - 4:.1f},{y + 3:.1f} {x + 4:.1f},{y + 3:.1f}"
        if trade.side < 0:
            points = f"{x:.1f},{y + 5:.1f} {x - 4:.1f},{y - 3:.1f} {x + 4:.1f},{y - 3:.1f}"
        title = html.escape(
            f"{'long' if trade.side > 0 else 'short'} {_fmt_ts(trade.entry_ts)} @ {trade.entry_price:,.2f}"
        )
        body.append(f'<polygon points="{points}" fill="{colour}"><title>{title}</title></polygon>')
        if not trade.is_open:
            ex, ey = frame.x(trade.exit_ts), frame.y(trade.exit_price)
            title = html.escape(f"exit {_fmt_ts(trade.exit_ts)} @ {trade.exit_price:,.2f}: {trade.return_:+.2%}")
            body.append(
                f'<circle cx="{ex:.1f}" cy="{ey:.1f}" r="2.6" fill="none" stroke="{colour}">'
                f"<title>{title}</title></circle>"
            )
    return _svg(height, "".join(body), "price with trades")


def equity_chart(ts: I64, equity: F64, benchmark: F64) -> str:
    height = 260
    frame = _Frame(
        int(ts[0]),
        int(ts[-1]),
        float(min(np.nanmin(equity), np.nanmin(benchmark))),
        float(max(np.nanmax(equity), np.nanmax(benchmark))),
        height,
    )
    te, e = _thin(ts, equity)
    tb, b = _thin(ts, benchmark)
    body = (
        frame.axes("{:,.0f}")
        + f'<path d="{frame.path(tb, b)}" fill="none" stroke="#9aa5b1" stroke-width="1" stroke-dasharray="4 3"/>'
        + f'<path d="{frame.path(te, e)}" fill="none" stroke="#2563eb" stroke-width="1.4"/>'
    )
    return _svg(height, body, "equity against buy and hold")


def drawdown_chart(ts: I64, equity: F64) -> str:
    height = 180
    peak = np.maximum.accumulate(equity)
    dd = equity / peak - 1.0
    t, d = _thin(ts, dd)
    frame = _Frame(int(ts[0]), int(ts[-1]), float(np.nanmin(dd)), 0.0, height)
    line = frame.path(t, d)
    area = f"{line}L{frame.x(float(t[-1])):.1f},{frame.y(0.0):.1f}L{frame.x(float(t[0])):.1f},{frame.y(0.0):.1f}Z"
    body = frame.axes("{:.0%}") + f'<path d="{area}" fill="#fde2e2" stroke="#c62828" stroke-width="0.8"/>'
    return _svg(height, body, "drawdown")


_SIGNED = ("total return", "CAGR", "excess return", "buy and hold")


def _metric_card(label: str, value: float | int, kind: str) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        text = "∞" if value == math.inf else "-"
    elif kind == "pct":
        text = f"{value:+.2%}" if label in _SIGNED else f"{value:.2%}"
    elif kind == "int":
        text = f"{int(value):,}"
    else:
        text = f"{value:.2f}"
    css = ""
    if label in _SIGNED and isinstance(value, float) and math.isfinite(value):
        css = ' class="pos"' if value > 0 else ' class="neg"' if value < 0 else ""
    return f'<div class="m"><span>{html.escape(label)}</span><b{css}>{text}</b></div>'


def render_html(record: RunRecord, ts: I64, close: F64, equity: F64, trades: Sequence[TradeRow]) -> str:
    """The report of ``record`` (its bar times and closes, equity curve and trades)."""
    m = record.metrics
    cards = [
        ("total return", m.total_return, "pct"),
        ("buy and hold", m.benchmark_return, "pct"),
        ("excess return", m.excess_return, "pct"),
        ("CAGR", m.cagr, "pct"),
        ("Sharpe", m.sharpe, "num"),
        ("Sortino", m.sortino, "num"),
        ("Calmar", m.calmar, "num"),
        ("max drawdown", m.max_drawdown, "pct"),
        ("volatility", m.volatility, "pct"),
        ("trades", m.n_trades, "int"),
        ("win rate", m.win_rate, "pct"),
        ("profit factor", m.profit_factor, "num"),
        ("exposure", m.exposure, "pct"),
        ("turnover", m.turnover, "num"),
    ]
    benchmark = record.config.initial_cash * close / close[0]
    params = ", ".join(f"{k}={v}" for k, v in record.params.items()) or "defaults"
    cfg = record.config
    rows = []
    for t in list(trades)[:MAX_TRADE_ROWS]:
        cls = "pos" if t.pnl > 0 else "neg"
        rows.append(
            "<tr>"
            f"<td>{_fmt_ts(t.entry_ts)}</td><td>{'' if t.is_open else _fmt_ts(t.exit_ts)}</td>"
            f"<td>{'long' if t.side > 0 else 'short'}</td><td>{t.qty:.6g}</td><td>{t.entry_price:,.2f}</td>"
            f'<td>{t.exit_price:,.2f}</td><td class="{cls}">{t.pnl:,.2f}</td><td class="{cls}">{t.return_:+.2%}</td>'
            f"<td>{html.escape('open' if t.is_open else t.exit_reason)}</td></tr>"
        )
    more = f'<p class="sub">First {MAX_TRADE_ROWS} of {len(trades)} trades.</p>' if len(trades) > MAX_TRADE_ROWS else ""
    esc = html.escape
    meta: dict[str, Any] = {
        "run": record.id,
        "data": f"{record.exchange} {record.symbol} {record.timeframe}, {record.n_bars:,} bars, sha256 "
        f"{record.data_checksum[:16]}…",
        "costs": f"fee {cfg.fee:.3%} per fill, slippage {cfg.slippage:.3%}, fills at {cfg.fill_at}, {cfg.direction}",
        "engine": record.engine_version,
        "created": f"{record.created_at:%Y-%m-%d %H:%M} UTC by {record.created_by}",
    }
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{esc(record.strategy)} {esc(record.symbol)} — {esc(record.id)}</title>
<style>{_CSS}</style></head><body>
<h1>{esc(record.strategy)} ({esc(params)}) on {esc(record.symbol)} {esc(record.timeframe)}</h1>
<div class="sub">{esc(_fmt_ts(record.start_ts))} to {esc(_fmt_ts(record.end_ts))} UTC</div>
<h2>Metrics</h2><div class="metrics">{"".join(_metric_card(*c) for c in cards)}</div>
<h2>Price and trades</h2><div class="legend">▲ long entry, ▼ short entry (green long, red short); ○ exit</div>
{price_chart(ts, close, trades)}
<h2>Equity</h2><div class="legend">blue: strategy; dashed grey: buy and hold</div>
{equity_chart(ts, equity, benchmark)}
<h2>Drawdown</h2>
{drawdown_chart(ts, equity)}
<h2>Trades</h2>
<table><tr><th>entry</th><th>exit</th><th>side</th><th>qty</th><th>entry price</th><th>exit price</th><th>pnl</th>
<th>return</th><th>exit reason</th></tr>{"".join(rows)}</table>{more}
<h2>Record</h2><table>{"".join(f"<tr><td>{esc(k)}</td><td>{esc(str(v))}</td></tr>" for k, v in meta.items())}</table>
</body></html>
"""
