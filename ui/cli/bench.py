"""`iqts bench`: the benchmarks, each printed with its ratio against its peers in the same run."""

from __future__ import annotations

import importlib
from typing import Annotated, Any

import typer
from rich.table import Table

from ui.cli.console import emit_json, out

app = typer.Typer(help="Benchmarks (figures and ratios against peers, measured in one run).", no_args_is_help=True)

# name -> (module, function) ; each function returns a list of pydantic rows or dicts
SUITES: dict[str, tuple[str, str]] = {
    "data": ("bench.data_bench", "run_data_bench"),
    "backtest": ("bench.backtest_bench", "run_backtest_bench"),
    "risk": ("bench.risk_bench", "run_risk_bench"),
    "execution": ("bench.execution_bench", "run_execution_bench"),
    "optimize": ("bench.optimize_bench", "run_optimize_bench"),
    "startup": ("bench.startup_bench", "run_startup_bench"),
    "agent": ("bench.agent_bench", "run_agent_bench"),
    "knowledge": ("bench.knowledge_bench", "run_knowledge_bench"),
}
CUSTOM = {"knowledge"}  # commands with options of their own, defined below


def _rows(name: str, **kwargs: Any) -> list[dict[str, Any]]:
    module, function = SUITES[name]
    rows = getattr(importlib.import_module(module), function)(**kwargs)
    return [r.model_dump() if hasattr(r, "model_dump") else dict(r) for r in rows]


def _print(name: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    table = Table(*rows[0].keys(), title=f"bench: {name}")
    for row in rows:
        table.add_row(*(f"{v:.6g}" if isinstance(v, float) else "" if v is None else str(v) for v in row.values()))
    out.print(table)


def _command(name: str) -> None:
    def run(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
        rows = _rows(name)
        emit_json(rows) if as_json else _print(name, rows)

    run.__doc__ = f"Run the {name} benchmark."
    app.command(name)(run)


for _name in SUITES:
    if _name not in CUSTOM:
        _command(_name)


@app.command("knowledge")
def knowledge_cmd(
    large: Annotated[bool, typer.Option("--large", help="also measure latency at 100,000 chunks (minutes)")] = False,
    queries: Annotated[int, typer.Option(min=10, help="timed queries per method and size")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Knowledge retrieval: hit@1/@5, MRR, nDCG@5 per method; search p50/p95 at 10k (and 100k) chunks."""
    rows = _rows("knowledge", large=large, queries=queries)
    emit_json(rows) if as_json else _print("knowledge", rows)


@app.command("all")
def all_cmd(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Run every benchmark but the agent's (it runs the model for many minutes: `iqts bench agent`)."""
    results = {name: _rows(name) for name in SUITES if name != "agent"}
    if as_json:
        emit_json(results)
        return
    for name, rows in results.items():
        _print(name, rows)
