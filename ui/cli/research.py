"""`iqts backtest` and `iqts optimize`: stored, reproducible backtests and Optuna studies from the terminal.

``iqts backtest STRATEGY SYMBOL ...`` runs (and stores) one backtest; ``iqts backtest show|list|reproduce`` read
stored runs. ``iqts optimize STRATEGY SYMBOL ...`` creates a study and runs trials; ``iqts optimize worker STUDY``
joins an existing study from any machine that reaches the same database.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer.core import TyperGroup

from engine.errors import ValidationFailedError
from engine.formatting import format_number
from engine.telemetry import get_logger
from ui.cli.common import database, parse_time_ms
from ui.cli.console import emit_json, err, out

if TYPE_CHECKING:  # numba, Optuna and pandas load only when a command runs
    from engine.research.runs import JournalWriter
    from engine.research.service import BacktestOut, StudyOut

log = get_logger(__name__)


class DefaultGroup(TyperGroup):
    """A group whose first argument, when it names no subcommand, goes to the ``run`` subcommand:
    ``iqts backtest sma_cross BTC/USD`` is ``iqts backtest run sma_cross BTC/USD``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


backtest_app = typer.Typer(
    cls=DefaultGroup,
    help="Backtest a strategy on stored data: `iqts backtest STRATEGY SYMBOL --param fast=10 ...`; show, list, "
    "reproduce stored runs.",
    no_args_is_help=True,
)
optimize_app = typer.Typer(
    cls=DefaultGroup,
    help="Optimise a strategy's parameters with Optuna: `iqts optimize STRATEGY SYMBOL --trials 200`; "
    "`iqts optimize worker STUDY` joins a study from any machine.",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
TimeframeOpt = Annotated[str | None, typer.Option("--timeframe", "-t", help="e.g. 1h (default: the finest stored)")]
ExchangeOpt = Annotated[str | None, typer.Option("--exchange", "-e", help="default: the freshest stored series")]
SinceOpt = Annotated[str | None, typer.Option("--since", help="first bar (YYYY-MM-DD or ISO 8601, UTC)")]
UntilOpt = Annotated[str | None, typer.Option("--until", help="end, exclusive (YYYY-MM-DD or ISO 8601, UTC)")]
ParamOpt = Annotated[
    list[str] | None, typer.Option("--param", "-p", help="a strategy parameter, NAME=VALUE (repeatable)")
]
FeeOpt = Annotated[float | None, typer.Option("--fee", help="fee per fill, fraction of notional (default 0.001)")]
SlippageOpt = Annotated[float | None, typer.Option("--slippage", help="adverse move per fill, fraction (default 0)")]
FillOpt = Annotated[str | None, typer.Option("--fill-at", help="next_open (default) or close")]
DirectionOpt = Annotated[str | None, typer.Option("--direction", help="long_only (default), long_short, short_only")]
StopOpt = Annotated[float | None, typer.Option("--stop-loss", help="exit this fraction against the entry")]
TakeOpt = Annotated[float | None, typer.Option("--take-profit", help="exit this fraction in favour")]
TrailOpt = Annotated[float | None, typer.Option("--trailing-stop", help="exit this fraction off the best price")]
CashOpt = Annotated[float | None, typer.Option("--cash", help="initial equity (default 10000)")]
ByOpt = Annotated[str | None, typer.Option("--by", help="who runs it (default: cli:<login name>)")]
NoJournalOpt = Annotated[bool, typer.Option("--no-journal", help="do not write a trade-journal note")]


def _actor(by: str | None) -> str:
    if by and by.strip():
        return by.strip()
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli"


def knowledge_journal(disabled: bool = False) -> JournalWriter | None:
    """The knowledge base's journal writer, or None when disabled or the knowledge layer is absent."""
    if disabled:
        return None
    try:
        from knowledge.service import journal_entry
    except ImportError as error:
        log.info("research.journal_unavailable", error=str(error))
        return None
    return journal_entry


def parse_params(items: list[str] | None) -> dict[str, str]:
    """``["fast=10", "slow=50"]`` -> ``{"fast": "10", "slow": "50"}`` (the strategy's model coerces the values)."""
    params: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValidationFailedError(f"--param: expected NAME=VALUE, e.g. fast=10 (got {item!r})")
        if name.strip() in params:
            raise ValidationFailedError(f"--param: parameter '{name.strip()}' given twice")
        params[name.strip()] = value.strip()
    return params


def _range(since: str | None, until: str | None) -> tuple[int | None, int | None]:
    return (
        parse_time_ms(since, "--since") if since else None,
        parse_time_ms(until, "--until") if until else None,
    )


@contextmanager
def _spinner(label: str) -> Iterator[Any]:
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as progress:
        task = progress.add_task(label, total=None)

        def update(text: str) -> None:
            progress.update(task, description=text)

        yield update


@contextmanager
def _trial_bar(label: str) -> Iterator[Any]:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
        disable=not err.is_terminal,
    ) as progress:
        task = progress.add_task(label, total=None)

        def update(done: int, total: int, message: str) -> None:
            progress.update(task, completed=done, total=total, description=f"{label}: {message}")

        yield update


def _fmt(value: Any, pct: bool = False) -> str:
    return format_number(value, pct=pct)


_PCT = {
    "total_return",
    "cagr",
    "volatility",
    "max_drawdown",
    "win_rate",
    "expectancy",
    "exposure",
    "benchmark_return",
    "excess_return",
}


def _metrics_table(run: BacktestOut) -> Table:
    table = Table("metric", "value", title=f"{run.run_id}: {run.strategy} {run.symbol} {run.timeframe}")
    for name, value in run.metrics.model_dump().items():
        table.add_row(name, _fmt(value, name in _PCT))
    return table


@backtest_app.command("run")
def backtest_cmd(
    strategy: Annotated[str, typer.Argument(help="strategy name (see `iqts backtest strategies`)")],
    symbol: Annotated[str, typer.Argument(help="unified symbol of a stored series, e.g. BTC/USD")],
    timeframe: TimeframeOpt = None,
    exchange: ExchangeOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    param: ParamOpt = None,
    fee: FeeOpt = None,
    slippage: SlippageOpt = None,
    fill_at: FillOpt = None,
    direction: DirectionOpt = None,
    stop_loss: StopOpt = None,
    take_profit: TakeOpt = None,
    trailing_stop: TrailOpt = None,
    cash: CashOpt = None,
    report: Annotated[Path | None, typer.Option("--report", help="write a self-contained HTML report here")] = None,
    by: ByOpt = None,
    no_journal: NoJournalOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Backtest STRATEGY on the stored SYMBOL series; the run is stored and can be reproduced by its id."""
    from engine.research import service

    start_ms, end_ms = _range(since, until)
    request = service.BacktestRequest(
        **_given(locals(), "strategy", "symbol", "timeframe", "exchange", "fee", "slippage", "fill_at", "direction"),
        **_given(locals(), "stop_loss", "take_profit", "trailing_stop"),
        params=parse_params(param),
        initial_cash=cash,
        start_ms=start_ms,
        end_ms=end_ms,
        report_path=report,
    )
    with database() as db, _spinner(f"backtest {strategy} {symbol}"):
        run = service.backtest(db, request, _actor(by), journal=knowledge_journal(no_journal))
    _print_run(run, as_json)


def _print_run(run: BacktestOut, as_json: bool, *, details: bool = False) -> None:
    if as_json:
        emit_json(run)
        return
    out.print(_metrics_table(run))
    if details:
        out.print(f"params {run.params}; config {run.config}")
    out.print(
        f"run [bold]{run.run_id}[/] {run.exchange} {run.symbol} {run.timeframe} {run.start:%Y-%m-%d %H:%M} .. "
        f"{run.end:%Y-%m-%d %H:%M} ({run.n_bars:,} bars, sha256 {run.data_checksum[:16]}); engine {run.engine_version}"
    )
    if run.report is not None:
        out.print(f"report: {run.report}")


@backtest_app.command("show")
def show_cmd(
    run_id: Annotated[str, typer.Argument(help="run id, bt_...")],
    report: Annotated[Path | None, typer.Option("--report", help="write the HTML report here")] = None,
    as_json: JsonOpt = False,
) -> None:
    """A stored run: parameters, data, metrics (and its HTML report on request)."""
    from engine.research import service

    with database() as db:
        run = service.get_backtest(db, run_id, report_path=report)
    _print_run(run, as_json, details=True)


@backtest_app.command("list")
def list_cmd(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 20,
    strategy: Annotated[str | None, typer.Option("--strategy")] = None,
    symbol: Annotated[str | None, typer.Option("--symbol")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The newest stored runs."""
    from engine.research import service

    with database() as db:
        runs = service.list_runs(db, limit, strategy=strategy, symbol=symbol)
    if as_json:
        emit_json(runs)
        return
    table = Table("id", "created", "strategy", "params", "series", "return", "sharpe", "max dd", "trades")
    for r in runs.runs:
        m = r.metrics
        table.add_row(
            r.run_id,
            f"{r.created_at:%Y-%m-%d %H:%M}",
            r.strategy,
            ", ".join(f"{k}={v}" for k, v in r.params.items()),
            f"{r.symbol} {r.timeframe}",
            _fmt(m.total_return, True),
            _fmt(m.sharpe),
            _fmt(m.max_drawdown, True),
            str(m.n_trades),
        )
    out.print(table)


def _given(arguments: dict[str, Any], *names: str) -> dict[str, Any]:
    """The named command options, for a service request."""
    return {name: arguments[name] for name in names}


@backtest_app.command("reproduce")
def reproduce_cmd(run_id: Annotated[str, typer.Argument(help="run id, bt_...")], as_json: JsonOpt = False) -> None:
    """Re-run a stored backtest from its record and check it matches to the bit (exit 1 if not)."""
    from engine.research.runs import reproduce

    with database() as db:
        report = reproduce(db, run_id)
    if as_json:
        emit_json(report)
    else:
        verdict = "[green]identical to the bit[/]" if report.identical else "[red]differs[/]"
        out.print(
            f"{run_id}: {verdict} (equity {report.equity_identical}, metrics {report.metrics_identical}, "
            f"trades {report.trades_identical}; engine then {report.engine_version_then}, now "
            f"{report.engine_version_now})"
        )
    if not report.identical:
        raise typer.Exit(1)


@backtest_app.command("strategies")
def strategies_cmd(as_json: JsonOpt = False) -> None:
    """The registered strategies and their parameters' bounds."""
    from engine.research import service

    listed = service.list_strategies()
    if as_json:
        emit_json(listed)
        return
    table = Table("strategy", "parameters (default, bounds)", "summary")
    for s in listed.strategies:
        space = ", ".join(f"{p.name}={p.default:g} [{p.low:g}..{p.high:g}]" for p in s.parameters)
        table.add_row(s.name, space or "-", s.summary)
    out.print(table)


# -- optimize -----------------------------------------------------------------------------------------------------


def _print_study(result: StudyOut) -> None:
    table = Table(
        "#",
        "params",
        *result.objectives,
        "return",
        "sharpe",
        "max dd",
        "trades",
        title=f"study {result.study_id} ({result.optuna_name}): top trials",
    )
    for t in result.top_trials:
        m = t.metrics
        table.add_row(
            str(t.number),
            ", ".join(f"{k}={v}" for k, v in t.params.items()),
            *(_fmt(v) for v in t.values or []),
            _fmt(m.get("total_return"), True),
            _fmt(m.get("sharpe")),
            _fmt(m.get("max_drawdown"), True),
            _fmt(m.get("n_trades")),
        )
    out.print(table)
    out.print(
        f"{result.n_trials} trials: {result.complete} complete, {result.infeasible} infeasible, {result.pruned} "
        f"pruned, {result.failed} failed, {result.running} running (status {result.status})"
    )
    out.print(
        f"best {result.best_params} -> {', '.join(_fmt(v) for v in result.best_values)}; "
        f"stored run {result.best_run_id}"
    )
    g = result.overfitting
    out.print(
        f"overfitting guards: deflated Sharpe {_fmt(g.dsr)} (best Sharpe {_fmt(g.sharpe)} vs "
        f"{_fmt(g.expected_max_sharpe)} expected from luck over {g.n_trials} trials), PSR {_fmt(g.psr)}, "
        f"PBO {_fmt(g.pbo)} over {g.pbo_configs} configurations"
    )
    for warning in g.warnings:
        out.print(f"[yellow]warning:[/] {warning}")
    wf = result.walk_forward
    if wf:
        table = Table(
            "window",
            "test from",
            "params",
            "IS sharpe",
            "OOS sharpe",
            "IS return",
            "OOS return",
            "DSR",
            "PBO",
            title="walk-forward (out of sample)",
        )
        for w in wf["windows"]:
            table.add_row(
                str(w["index"] + 1),
                w["test_from"],
                ", ".join(f"{k}={v}" for k, v in w["best_params"].items()),
                _fmt(w["in_sample"]["sharpe"]),
                _fmt(w["out_of_sample"]["sharpe"]),
                _fmt(w["in_sample"]["total_return"], True),
                _fmt(w["out_of_sample"]["total_return"], True),
                _fmt(w["deflated_sharpe"]),
                _fmt(w.get("pbo")),
            )
        out.print(table)
        out.print(
            f"mean Sharpe IS {_fmt(wf['mean_is_sharpe'])} / OOS {_fmt(wf['mean_oos_sharpe'])}, degradation "
            f"{_fmt(wf['degradation_ratio'])}, efficiency {_fmt(wf['walk_forward_efficiency'])}, "
            f"{wf['positive_oos_fraction']:.0%} of windows positive, mean PBO {_fmt(wf.get('mean_pbo'))}"
        )
        for warning in wf["warnings"]:
            out.print(f"[yellow]warning:[/] {warning}")


@optimize_app.command("run")
def optimize_cmd(
    strategy: Annotated[str, typer.Argument(help="strategy name (see `iqts backtest strategies`)")],
    symbol: Annotated[str, typer.Argument(help="unified symbol of a stored series, e.g. BTC/USD")],
    trials: Annotated[int, typer.Option("--trials", "-n", help="trials to run here (0: only create the study)")] = 200,
    objective: Annotated[
        list[str] | None,
        typer.Option("--objective", "-o", help="metric[:maximize|minimize]; twice or more for NSGA-II"),
    ] = None,
    walk_forward: Annotated[bool, typer.Option("--walk-forward", help="also validate out of sample")] = False,
    windows: Annotated[int, typer.Option("--windows", help="walk-forward test windows")] = 4,
    wf_mode: Annotated[str, typer.Option("--wf-mode", help="rolling or anchored")] = "rolling",
    train_ratio: Annotated[float, typer.Option("--train-ratio", help="training bars per test bar")] = 3.0,
    wf_trials: Annotated[int | None, typer.Option("--wf-trials", help="trials per window (default: --trials)")] = None,
    folds: Annotated[int, typer.Option("--folds", help="consecutive data parts; >1 enables pruning")] = 1,
    batch: Annotated[int, typer.Option("--batch", help="trials evaluated per grid call")] = 16,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    study_name: Annotated[str | None, typer.Option("--study", help="name workers join by (default: the id)")] = None,
    storage: Annotated[str, typer.Option("--storage", help="journal (default), rdb or memory")] = "journal",
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="hold a parameter fixed, NAME=VALUE")] = None,
    timeframe: TimeframeOpt = None,
    exchange: ExchangeOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    fee: FeeOpt = None,
    slippage: SlippageOpt = None,
    fill_at: FillOpt = None,
    direction: DirectionOpt = None,
    by: ByOpt = None,
    no_journal: NoJournalOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Optimise STRATEGY's parameters on SYMBOL (TPE, or NSGA-II for several objectives) in a stored study."""
    from engine.research import service

    start_ms, end_ms = _range(since, until)
    request = service.OptimiseRequest(
        **_given(locals(), "strategy", "symbol", "trials", "timeframe", "exchange", "fee", "slippage", "fill_at"),
        **_given(locals(), "direction", "folds", "seed"),
        objectives=objective or ["sharpe"],
        fixed_params=parse_params(param),
        batch_size=batch,
        storage=storage,
        name=study_name,
        start_ms=start_ms,
        end_ms=end_ms,
        walk_forward=service.WalkForwardOptions(
            windows=windows, mode=wf_mode, train_ratio=train_ratio, trials=wf_trials or max(trials, 1)
        )
        if walk_forward
        else None,
    )
    with database() as db:
        if trials == 0:
            record = service.create_study(db, request, _actor(by))
            if as_json:
                emit_json(record)
                return
            out.print(
                f"study [bold]{record.id}[/] created (name {record.optuna_name}, storage {record.storage}); "
                f"run workers with `iqts optimize worker {record.optuna_name} --trials N`"
            )
            return
        with _trial_bar(f"{strategy} {symbol}") as progress:
            result = service.optimise(db, request, _actor(by), progress=progress, journal=knowledge_journal(no_journal))
    if as_json:
        emit_json(result)
        return
    _print_study(result)


@optimize_app.command("worker")
def worker_cmd(
    study: Annotated[str, typer.Argument(help="study id (st_...) or name")],
    trials: Annotated[int, typer.Option("--trials", "-n", help="trials to run in this worker")] = 100,
    by: ByOpt = None,
    no_journal: NoJournalOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Join a stored study and run trials (start several, on any machines that reach the database)."""
    from engine.research import service

    with database() as db, _trial_bar(f"worker {study}") as progress:
        result = service.run_worker(
            db, study, trials, _actor(by), progress=progress, journal=knowledge_journal(no_journal)
        )
    if as_json:
        emit_json(result)
        return
    _print_study(result)


@optimize_app.command("show")
def show_study_cmd(
    study: Annotated[str, typer.Argument(help="study id (st_...) or name")], as_json: JsonOpt = False
) -> None:
    """A stored study: status, best trial, overfitting guards, walk-forward report."""
    from engine.research.studies import get_study

    with database() as db:
        record = get_study(db, study)
    if as_json:
        emit_json(record)
        return
    out.print(
        f"study {record.id} ({record.optuna_name}, {record.kind}, storage {record.storage}): {record.strategy} "
        f"{record.symbol} {record.timeframe}, {', '.join(str(o) for o in record.objectives)}; status "
        f"{record.status}, {record.n_trials} trials; best {record.best_params} -> {_fmt(record.best_value)} "
        f"(run {record.best_run_id})"
    )
    if record.report:
        g = record.report.get("overfitting", {})
        out.print(f"deflated Sharpe {_fmt(g.get('dsr'))} over {g.get('n_trials')} trials, PBO {_fmt(g.get('pbo'))}")


@optimize_app.command("list")
def list_studies_cmd(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 20, as_json: JsonOpt = False
) -> None:
    """The newest studies."""
    from engine.research.studies import list_studies

    with database() as db:
        studies = list_studies(db, limit)
    if as_json:
        emit_json([s.model_dump(mode="json") for s in studies])
        return
    table = Table("id", "name", "created", "kind", "strategy", "series", "objective", "status", "trials", "best")
    for s in studies:
        table.add_row(
            s.id,
            s.optuna_name,
            f"{s.created_at:%Y-%m-%d %H:%M}",
            s.kind,
            s.strategy,
            f"{s.symbol} {s.timeframe}",
            ", ".join(str(o) for o in s.objectives),
            s.status,
            str(s.n_trials),
            _fmt(s.best_value),
        )
    out.print(table)
