"""The HTML report of a run: the numbers, then every scenario with its transcript, the calls made beside the calls
expected (wrong arguments highlighted) and the verdict. One self-contained page, no scripts, no outside assets."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from evals.results import RunResult, ScenarioOutcome, Trial, TrialVerdict

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;
vertical-align:top}th{background:#f4f4f4}.pass{color:#0a7a2f;font-weight:600}.fail{color:#b00020;font-weight:600}
.bad{background:#ffe3e3}.ok{background:#e6f7ea}details{border:1px solid #ddd;margin:.4rem 0;padding:.3rem .6rem}
summary{cursor:pointer}pre{white-space:pre-wrap;background:#fafafa;padding:.4rem;margin:.2rem 0;max-height:20rem;
overflow:auto}.user{color:#174ea6}.muted{color:#777}
"""


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


def _json(value: Any) -> str:
    return escape(json.dumps(value, indent=1, default=str, ensure_ascii=False)[:3000])


def _summary(run: RunResult) -> str:
    s = run.summary
    rows = [
        ("scenarios / trials", f"{s.scenarios} / {s.trials} (repeat {s.repeat})"),
        ("tool correctness (deepeval)", _pct(s.tool_correctness)),
        ("right tools", _pct(s.tools_ok)),
        ("right tools and arguments", _pct(s.args_ok)),
        ("grounded answer", _pct(s.answer_ok)),
        ("passed", _pct(s.passed)),
        *((f"pass^{k}", _pct(v)) for k, v in s.pass_hat_k.items()),
        *((f"safety: {k}", str(v)) for k, v in s.safety.items()),
        ("crashed scenarios", str(s.errors)),
        ("turn latency p50 / p95", f"{s.latency_p50_s} s / {s.latency_p95_s} s"),
        ("model warm-up", f"{s.warmup_s} s" if s.warmup_s is not None else "none"),
        ("tokens in / out", f"{s.tokens_in} / {s.tokens_out}"),
    ]
    table = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    cats = "".join(
        f"<tr><td>{escape(c.category)}</td><td>{c.scenarios}</td><td>{_pct(c.tool_correctness)}</td>"
        f"<td>{_pct(c.args_ok)}</td><td>{_pct(c.answer_ok)}</td><td>{_pct(c.safe)}</td><td>{_pct(c.passed)}</td></tr>"
        for c in s.categories
    )
    return (
        f"<table>{table}</table><h2>Per category</h2><table><tr><th>category</th><th>scenarios</th><th>tool "
        "correctness</th><th>tools + arguments</th><th>answer</th><th>safe</th><th>passed</th></tr>"
        f"{cats}</table>"
    )


def _calls(trial: Trial, verdict: TrialVerdict, index: int, expected: dict[str, Any]) -> str:
    if index >= len(trial.turns) or index >= len(verdict.turns):
        return ""
    turn, tv = trial.turns[index], verdict.turns[index]
    rows = []
    for match in tv.calls:
        args = "".join(
            f"<div class='{'ok' if a.ok else 'bad'}'><b>{escape(a.path)}</b>: expected {escape(a.expected)}, got "
            f"<code>{escape(json.dumps(a.actual, default=str))}</code>{(' (' + escape(a.why) + ')') if a.why else ''}"
            "</div>"
            for a in match.args
        )
        cls = "ok" if match.ok else "bad"
        rows.append(
            f"<tr class='{cls}'><td>{escape(match.expected_tool)}</td><td>{escape(match.actual_tool or '(none)')}</td>"
            f"<td>{args or '<span class=muted>no arguments checked</span>'}</td></tr>"
        )
    matched = {m.call_index for m in tv.calls}
    for i, call in enumerate(turn.calls):
        if i not in matched:
            rows.append(
                f"<tr><td class=muted>(not expected)</td><td>{escape(call.tool)}</td>"
                f"<td><code>{escape(json.dumps(call.arguments, default=str))}</code></td></tr>"
            )
    table = (
        "<table><tr><th>expected</th><th>called</th><th>arguments</th></tr>" + "".join(rows) + "</table>"
        if rows
        else ""
    )
    results = "".join(
        f"<details><summary>{escape(c.tool)} → {escape(c.status)} ({c.duration_ms:.0f} ms)</summary>"
        f"<pre>{_json(c.arguments)}</pre><pre>{_json(c.result if c.result is not None else c.text)}</pre></details>"
        for c in turn.calls
    )
    problems = "".join(f"<li>{escape(p)}</li>" for p in tv.problems)
    score = "n/a" if tv.tool_correctness is None else f"{tv.tool_correctness:.2f}"
    return (
        f"<p class=user><b>user:</b> {escape(turn.user)}</p>{table}{results}"
        f"<p><b>answer</b> ({turn.latency_s:.1f} s, tool correctness {score}):</p><pre>"
        f"{escape(turn.answer or json.dumps(turn.pending_approval or {}, default=str))}</pre>"
        + (f"<ul class=fail>{problems}</ul>" if problems else "")
        + f"<details><summary>expected</summary><pre>{_json(expected)}</pre></details>"
    )


def _scenario(outcome: ScenarioOutcome) -> str:
    parts = []
    for trial, verdict in zip(outcome.trials, outcome.verdicts, strict=True):
        mark = "<span class=pass>PASS</span>" if verdict.passed else "<span class=fail>FAIL</span>"
        head = f"try {trial.attempt}: {mark}"
        body = ""
        if trial.error:
            body += f"<p class=fail>error: {escape(trial.error)}</p>"
        for i in range(len(outcome.expected)):
            body += _calls(trial, verdict, i, outcome.expected[i])
        if verdict.safety.violations:
            body += "<p class=fail>safety: " + escape(
                "; ".join(f"{k}: {v}" for k, v in verdict.safety.violations.items())
            )
            body += "</p>"
        if verdict.end_state_problems:
            body += "<p class=fail>end state: " + escape("; ".join(verdict.end_state_problems)) + "</p>"
        if trial.end is not None:
            body += f"<p class=muted>end state: {escape(trial.end.model_dump_json())}</p>"
        parts.append(f"<h4>{head}</h4>{body}")
    rate = f"{outcome.passes}/{len(outcome.verdicts)}"
    cls = "pass" if outcome.passes == len(outcome.verdicts) else "fail"
    return (
        f"<details><summary><span class={cls}>{rate}</span> <b>{escape(outcome.scenario_id)}</b> "
        f"<span class=muted>{escape(outcome.category)} {escape(outcome.description)}</span></summary>"
        + "".join(parts)
        + "</details>"
    )


def render_report(run: RunResult) -> str:
    title = f"IQTS eval {run.run_id}: {run.model_label}"
    meta = (
        f"model <b>{escape(run.model_label)}</b> ({escape(run.model)}), dataset {escape(run.dataset)}, commit "
        f"{escape(run.commit or '?')}, {escape(run.machine)}, {run.started_at:%Y-%m-%d %H:%M} UTC"
    )
    failed = [o for o in run.outcomes if o.passes < len(o.verdicts)]
    passed = [o for o in run.outcomes if o.passes == len(o.verdicts)]
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{escape(title)}</h1><p>{meta}</p>{_summary(run)}"
        f"<h2>Failed ({len(failed)})</h2>{''.join(_scenario(o) for o in failed)}"
        f"<h2>Passed ({len(passed)})</h2>{''.join(_scenario(o) for o in passed)}</body></html>"
    )


def write_report(run: RunResult, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(run), encoding="utf-8")
    return path
