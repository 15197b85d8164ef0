"""`iqts eval`: run the eval harness, compare two runs, list runs (each calls one function of evals.service)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from engine.settings import get_settings
from engine.telemetry import configure_logging
from ui.cli.console import emit_json, err, out

if TYPE_CHECKING:
    from evals.results import RunResult

app = typer.Typer(
    help="Measure the agent on a scenario set (real agent, real MCP server, paper broker, bundled data).",
    invoke_without_command=True,
)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def _print(run: RunResult) -> None:
    s = run.summary
    table = Table("category", "n", "tool corr.", "tools+args", "answer", "safe", "passed", title=run.model_label)
    for c in s.categories:
        row = (c.tool_correctness, c.args_ok, c.answer_ok, c.safe, c.passed)
        table.add_row(c.category, str(c.scenarios), *(_pct(v) for v in row))
    overall = (s.tool_correctness, s.args_ok, s.answer_ok, s.safe, s.passed)
    table.add_row("all", str(s.scenarios), *(_pct(v) for v in overall), style="bold")
    out.print(table)
    out.print("pass^k: " + ", ".join(f"pass^{k} {_pct(v)}" for k, v in s.pass_hat_k.items()))
    if s.judged:
        out.print("judged (G-Eval): " + ", ".join(f"{k} {_pct(v)}" for k, v in s.judged.items()))
    out.print("safety (must be 0): " + ", ".join(f"{k} {v}" for k, v in s.safety.items()))
    out.print(
        f"turn latency p50 {s.latency_p50_s} s, p95 {s.latency_p95_s} s; warm-up {s.warmup_s} s; "
        f"tokens in {s.tokens_in}, out {s.tokens_out}; crashed {s.errors}; run {run.run_id}"
    )


def _quiet() -> None:
    settings = get_settings()
    configure_logging("WARNING", settings.log_format, settings.secret_values())


@app.callback()
def run(
    ctx: typer.Context,
    dataset: Annotated[Path | None, typer.Option(help="A dataset file or folder (default: the bundled set).")] = None,
    model: Annotated[str | None, typer.Option(help="local | ollama:M | openai:M | ... | scripted:FAULT.")] = None,
    category: Annotated[str | None, typer.Option(help="Only this category.")] = None,
    repeat: Annotated[int, typer.Option(min=1, max=20, help="Trials per scenario (pass^k).")] = 1,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N scenarios.")] = None,
    scenario: Annotated[list[str] | None, typer.Option(help="Only this scenario id (repeatable).")] = None,
    judge: Annotated[str | None, typer.Option(help="openai:MODEL or ollama:MODEL: add G-Eval scores.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run as JSON.")] = False,
    report: Annotated[Path | None, typer.Option(help="Write an HTML report here.")] = None,
) -> None:
    """Run the scenario set and print per-category scores, pass^k, latency, warm-up and tokens."""
    from evals import service
    from evals.report import write_report  # the harness imports the agent: only when used

    if ctx.invoked_subcommand is not None:
        return
    _quiet()
    settings = get_settings()
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task("eval", total=None)

        def progress(scenario: str, done: int, total: int) -> None:
            bar.update(task, total=total, completed=done, description=scenario)

        result = asyncio.run(
            service.run_eval(
                settings,
                dataset=dataset,
                model=model,
                category=category,
                repeat=repeat,
                limit=limit,
                ids=scenario,
                progress=progress,
            )
        )
    if report is not None:
        err.print(f"report: {write_report(result, report)}")
    emit_json(result) if as_json else _print(result)


@app.command("compare")
def compare(
    run_a: str,
    run_b: str,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What got better or worse per scenario from RUN_A to RUN_B."""
    from evals import service

    _quiet()
    result = service.compare_runs(get_settings(), run_a, run_b)
    if as_json:
        emit_json(result)
        return
    out.print(
        f"{result.run_a} ({result.model_a}) {_pct(result.passed_a)} -> {result.run_b} ({result.model_b}) "
        f"{_pct(result.passed_b)}"
    )
    table = Table("scenario", "category", "A", "B", "change", "B's problems")
    for row in result.changed:
        table.add_row(row.scenario_id, row.category, _pct(row.a), _pct(row.b), row.change, "; ".join(row.problems_b))
    out.print(table if result.changed else "no scenario changed")


@app.command("rescore")
def rescore(
    run_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    report: Annotated[Path | None, typer.Option(help="Write an HTML report here.")] = None,
) -> None:
    """Score a stored run's transcripts again with today's matchers (no model is run); stored as a new run."""
    from evals import service
    from evals.report import write_report

    _quiet()
    result = service.rescore_run(get_settings(), run_id)
    if report is not None:
        err.print(f"report: {write_report(result, report)}")
    emit_json(result) if as_json else _print(result)


@app.command("list")
def list_cmd(
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The stored eval runs, newest first."""
    from evals import service

    _quiet()
    rows = service.list_eval_runs(get_settings(), limit)
    if as_json:
        emit_json(rows)
        return
    table = Table("run", "started", "model", "scenarios", "passed", "pass^k", "commit")
    for r in rows:
        last = max(r.summary.pass_hat_k) if r.summary.pass_hat_k else 1
        table.add_row(
            r.run_id,
            r.started_at,
            r.model_label,
            str(r.summary.scenarios),
            _pct(r.summary.passed),
            _pct(r.summary.pass_hat_k.get(last)),
            r.commit or "",
        )
    out.print(table)
