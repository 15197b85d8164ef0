"""What the chat shows, as plain data: tool steps, equity charts, approval cards and their live status.

Pure functions of the agent's events and the tools' results (no Chainlit here, so they are tested without a
browser). Every figure shown comes from a tool result: the only transformations are the thinning of very long
curves before they are drawn and a chart caption that writes a run's fractions (total return, drawdown) as
percentages.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.events import ApprovalOutcome, ApprovalPendingEvent, ToolEndEvent, ToolStartEvent
from agent.graph.result_view import result_view
from engine.intents import describe_data

MAX_STEP_CHARS = 6000
"""Longest tool input or output shown in a step (the rest is cut with a note)."""
MAX_CHART_POINTS = 2000
"""Longer curves are thinned (evenly, the last point kept) before they are drawn."""

TERMINAL = frozenset({"executed", "failed", "rejected", "expired"})
"""Approval statuses after which nothing more happens to the request."""

_CURVE_KEYS = ("equity_curve", "equity", "equity_series", "curve", "values")
_TIME_KEYS = ("ts", "t", "time", "timestamp", "timestamps", "date", "dates", "datetime", "index", "x")
_VALUE_KEYS = ("equity", "value", "v", "y", "close")


# -- tool steps --------------------------------------------------------------------------------------------------


def _cut(text: str, limit: int = MAX_STEP_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… ({len(text) - limit} more characters not shown)"


def as_card(value: Mapping[str, Any]) -> str:
    """A tool's arguments or result as a readable card: the view the model reads (``name: value`` lines, figures
    rendered as the answer shows them, long series cut to their first and latest points, checksums left out),
    not JSON."""
    return _cut(result_view(value, MAX_STEP_CHARS * 2)) or "(none)"


@dataclass(frozen=True)
class ToolView:
    """One tool call as a step: its name, what it was given, what came back."""

    call_id: str
    name: str
    input: str
    output: str = ""
    is_error: bool = False
    status: str = "running"
    duration_ms: float = 0.0


def tool_started(event: ToolStartEvent) -> ToolView:
    arguments = as_card(event.arguments)
    if event.dropped_arguments:
        arguments += f"\n(invented optional arguments removed: {', '.join(event.dropped_arguments)})"
    if event.read_as:
        arguments += f"\n(read as you wrote them: {'; '.join(event.read_as)})"
    return ToolView(call_id=event.call_id, name=event.tool, input=arguments)


def tool_finished(event: ToolEndEvent, started: ToolView | None = None) -> ToolView:
    if event.status == "blocked":
        output = f"Blocked by the agent's guard: {event.reason or 'no reason given'}"
    elif event.status == "error":
        output = "Error: " + _cut(event.text or "the tool failed without a message")
    elif event.result is not None:
        output = as_card(event.result)
    else:
        output = _cut(event.text)
    return ToolView(
        call_id=event.call_id,
        name=event.tool,
        input=started.input if started is not None else "",
        output=output,
        is_error=event.status != "ok",
        status=event.status,
        duration_ms=event.duration_ms,
    )


# -- equity charts -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Curve:
    name: str
    x: list[Any]
    y: list[float]


@dataclass(frozen=True)
class EquityChart:
    """The equity curve(s) of a backtest result, ready to draw."""

    title: str
    curves: list[Curve] = field(default_factory=list)
    caption: str = ""


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _first(mapping: Mapping[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        if key in mapping:
            return mapping[key]
    return None


def _pairs(x: Sequence[Any], y: Sequence[Any]) -> tuple[list[Any], list[float]] | None:
    if len(x) != len(y) or len(y) < 2:
        return None
    xs, ys = [], []
    for a, b in zip(x, y, strict=True):
        number = _number(b)
        if number is None:
            return None
        xs.append(a)
        ys.append(number)
    return xs, ys


def _series(value: Any, sibling: Mapping[str, Any]) -> tuple[list[Any], list[float]] | None:
    """A curve in any of the shapes a result may carry it: numbers (with the timestamps beside them), records,
    ``[t, v]`` pairs, ``{"ts": [...], "equity": [...]}`` columns, or a ``{t: v}`` mapping."""
    if isinstance(value, list) and len(value) >= 2:
        head = value[0]
        if _number(head) is not None:  # numbers, or decimals as strings
            times = _first(sibling, _TIME_KEYS)
            x = times if isinstance(times, list) and len(times) == len(value) else list(range(len(value)))
            return _pairs(x, value)
        if isinstance(head, Mapping):
            tkey = next((k for k in _TIME_KEYS if k in head), None)
            vkey = next((k for k in _VALUE_KEYS if k in head), None)
            if vkey is None or not all(isinstance(r, Mapping) for r in value):
                return None
            x = [r.get(tkey) for r in value] if tkey else list(range(len(value)))
            return _pairs(x, [r.get(vkey) for r in value])
        if isinstance(head, list | tuple) and len(head) == 2:
            if not all(isinstance(r, list | tuple) and len(r) == 2 for r in value):
                return None
            return _pairs([r[0] for r in value], [r[1] for r in value])
        return None
    if isinstance(value, Mapping) and value:
        times, values = _first(value, _TIME_KEYS), _first(value, (*_VALUE_KEYS, "values"))
        if isinstance(times, list) and isinstance(values, list):
            return _pairs(times, values)
        if len(value) >= 2 and all(_number(v) is not None for v in value.values()):
            return _pairs(list(value.keys()), list(value.values()))
    return None


def _thin(x: list[Any], y: list[float]) -> tuple[list[Any], list[float]]:
    if len(y) <= MAX_CHART_POINTS:
        return x, y
    step = math.ceil(len(y) / MAX_CHART_POINTS)
    keep = list(range(0, len(y), step))
    if keep[-1] != len(y) - 1:
        keep.append(len(y) - 1)
    return [x[i] for i in keep], [y[i] for i in keep]


def _find_curves(value: Any, path: tuple[str, ...], out: list[tuple[tuple[str, ...], list[Any], list[float]]]) -> None:
    if not isinstance(value, Mapping) or len(path) > 3:
        return
    for key, item in value.items():
        name = str(key)
        if name in _CURVE_KEYS or name.endswith("_equity") or name.endswith("equity_curve"):
            series = _series(item, value)
            if series is not None:
                out.append(((*path, name), *series))
                continue
        if isinstance(item, Mapping):
            _find_curves(item, (*path, name), out)


def _curve_name(path: tuple[str, ...], result: Mapping[str, Any]) -> str:
    parent = path[-2] if len(path) >= 2 else ""
    leaf = path[-1]
    if leaf.endswith("_equity") and leaf != "equity":
        return leaf.removesuffix("_equity").replace("_", " ")
    if parent and parent not in ("run", "result", "results", "backtest"):
        return parent.replace("_", " ")
    strategy = result.get("strategy") or _first(result.get("run") or {}, ("strategy",))
    return str(strategy) if strategy else "equity"


def _percent(value: Any) -> str | None:
    number = _number(value)
    return None if number is None else f"{number * 100:.2f}%"


def equity_chart(tool: str, result: Mapping[str, Any] | None) -> EquityChart | None:
    """The equity chart of a backtest-like result (any tool whose result carries an equity curve), else None."""
    if not result:
        return None
    found: list[tuple[tuple[str, ...], list[Any], list[float]]] = []
    _find_curves(result, (), found)
    if not found:
        return None
    curves = []
    for path, x, y in found:
        tx, ty = _thin(x, y)
        curves.append(Curve(name=_curve_name(path, result), x=tx, y=ty))
    run = result.get("run") if isinstance(result.get("run"), Mapping) else result
    assert isinstance(run, Mapping)
    parts = [str(run[k]) for k in ("strategy", "symbol", "timeframe") if run.get(k)]
    title = "Equity: " + " · ".join(parts) if parts else f"Equity ({tool})"
    metrics = run.get("metrics") if isinstance(run.get("metrics"), Mapping) else run
    assert isinstance(metrics, Mapping)
    caption_bits = []
    if (total := _percent(metrics.get("total_return"))) is not None:
        caption_bits.append(f"total return {total}")
    if (drawdown := _percent(metrics.get("max_drawdown"))) is not None:
        caption_bits.append(f"max drawdown {drawdown}")
    if (sharpe := _number(metrics.get("sharpe"))) is not None:
        caption_bits.append(f"Sharpe {sharpe:.2f}")
    if (benchmark := _percent(run.get("benchmark_return"))) is not None:
        caption_bits.append(f"buy and hold {benchmark}")
    if run_id := (result.get("run_id") or run.get("run_id")):
        caption_bits.append(f"run {run_id}")
    return EquityChart(title=title, curves=curves, caption=", ".join(caption_bits))


def chart_figure(chart: EquityChart) -> Any:
    """A Plotly figure of the chart (lines, one per curve)."""
    from plotly import graph_objects as go

    figure = go.Figure()
    for curve in chart.curves:
        figure.add_trace(go.Scatter(x=curve.x, y=curve.y, mode="lines", name=curve.name))
    title = chart.title + (f"<br><sub>{chart.caption}</sub>" if chart.caption else "")
    figure.update_layout(
        title={"text": title},
        template="plotly_white",
        margin={"l": 50, "r": 20, "t": 50, "b": 40},
        height=360,
        yaxis_title="equity",
        showlegend=len(chart.curves) > 1,
        legend={"orientation": "h", "y": -0.2},
    )
    return figure


def chart_svg(chart: EquityChart, width: int = 640, height: int = 240) -> str:
    """A dependency-free SVG polyline of the chart (a fallback when Plotly is not installed)."""
    ys = [v for c in chart.curves for v in c.y]
    low, high = min(ys), max(ys)
    span = (high - low) or 1.0
    lines = []
    for curve in chart.curves:
        n = max(len(curve.y) - 1, 1)
        points = " ".join(
            f"{i * (width - 20) / n + 10:.1f},{height - 10 - (v - low) * (height - 20) / span:.1f}"
            for i, v in enumerate(curve.y)
        )
        lines.append(f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{points}"/>')
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{chart.title}">{"".join(lines)}</svg>'
    )


# -- approval cards ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApprovalState:
    """Where a proposal stands, as ``get_approval`` reports it."""

    status: str
    decided_by: str | None = None
    decision_reason: str | None = None
    result: Mapping[str, Any] | None = None

    @classmethod
    def from_tool(cls, structured: Mapping[str, Any]) -> ApprovalState:
        result = structured.get("result")
        return cls(
            status=str(structured.get("status", "unknown")),
            decided_by=structured.get("decided_by"),
            decision_reason=structured.get("decision_reason"),
            result=result if isinstance(result, Mapping) else None,
        )

    @classmethod
    def from_outcome(cls, outcome: ApprovalOutcome) -> ApprovalState:
        return cls(
            status=outcome.status,
            decided_by=outcome.decided_by,
            decision_reason=outcome.decision_reason,
            result=outcome.result,
        )

    @property
    def final(self) -> bool:
        return self.status in TERMINAL


def order_line(intent: Mapping[str, Any], fallback: str = "") -> str:
    """``buy 0.01 BTC/USD market on paper (dry-run)``: the intent as filed, in the inbox's words (one describe()).

    ``fallback`` when the intent cannot be read (the tool result lacked it, or it is not an intent).
    """
    return describe_data(intent) or fallback or "the proposal"


def status_text(state: ApprovalState) -> str:
    """The card's status line, in plain words; fills and reasons quoted from the approval's record."""
    who = f" by {state.decided_by}" if state.decided_by else ""
    result = state.result or {}
    if state.status == "pending":
        return "**pending**: waiting for an approver in the inbox. Nothing has been executed."
    if state.status == "approved":
        return f"**approved**{who}: the execution worker submits it after a second risk check."
    if state.status == "executed":
        filled = result.get("filled_quantity")
        price = result.get("average_price")
        fill = f"filled {filled}" if filled is not None else "filled"
        if price is not None:
            fill += f" at {price}"
        order = f" (order {result['order_id']}, {result.get('status', 'filled')})" if result.get("order_id") else ""
        return f"**executed**{who}: {fill}{order}."
    if state.status == "rejected":
        return f"**rejected**{who}: {state.decision_reason or 'no reason given'}. Nothing was executed."
    if state.status == "expired":
        if result.get("reason"):  # approved, but it ran out before the worker could send it
            return f"**expired** after approval{who}: {result['reason']}. Nothing was executed."
        return "**expired** without a decision. Nothing was executed."
    if state.status == "failed":
        reason = result.get("reason") or result.get("error") or "see the order record"
        return f"**failed**: approved{who} but not executed: {reason}."
    return f"**{state.status}**"


def approval_card(card: ApprovalPendingEvent, state: ApprovalState | None = None) -> str:
    """The approval card's Markdown: the order, the pre-trade risk verdict, the inbox link, the live status."""
    state = state or ApprovalState(status="pending")
    lines = [
        "**Order proposed: waiting for a human approval**"
        if state.status == "pending"
        else f"**Order proposed: {state.status}**",
        "",
        f"- Order: **{order_line(card.intent, card.summary)}**" if card.intent else f"- {card.summary}",
        f"- Pre-trade risk check: {card.risk_summary or 'not reported'}",
        f"- Approval: `{card.approval_id}`" + (f", expires {card.expires_at}" if card.expires_at else ""),
        f"- Status: {status_text(state)}",
        "",
        f"[Open it in the inbox]({card.inbox_url})"
        + (" to approve or reject it (approver role)." if state.status == "pending" else "."),
    ]
    return "\n".join(lines)


def outcome_text(card: ApprovalPendingEvent, state: ApprovalState) -> str:
    """What to say when a decision arrives after the conversation has moved on from the proposal."""
    what = order_line(card.intent, card.summary)
    return f"Update on your order to {what} (approval {card.approval_id}): {status_text(state)}"
