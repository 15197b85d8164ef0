"""Optuna studies over a strategy's parameter space: TPE for one objective, NSGA-II for several, pruning across
folds, trials evaluated in batches by the grid kernel, studies shared by workers through PostgreSQL.

How a batch runs: the study is asked for ``batch_size`` trials at once (their parameters sampled together from
the strategy's bounds, :meth:`StrategySpec.search_space`), all valid ones are evaluated in ONE
:func:`engine.backtest.run_grid` call per fold, and the results are told back. TPE's constant liar keeps the
trials of one batch apart. A trial whose parameters break a cross-field rule (``slow <= fast``) or whose
objective is undefined (no trades: no Sharpe ratio) is told as infeasible (an Optuna constraint), so the
samplers learn to avoid that region and it never becomes the best trial.

Pruning: with ``folds > 1`` the data is cut into that many consecutive parts and the objective is the mean of
the metric over them; after each fold every running trial reports its running mean and Optuna's median pruner
stops those below the median of earlier trials at the same fold (single objective only: Optuna does not prune
multi-objective studies). With one fold there is nothing to prune on.

Storage: ``journal`` (default) is Optuna's JournalStorage on a PostgreSQL table of its own (``optuna_journal``):
every operation is one appended row, each process replays the rows it has not seen. ``rdb`` is Optuna's
RDBStorage (SQLAlchemy) in the ``optuna`` schema of the same database, readable by optuna-dashboard, but about
ten times slower per trial (see bench/optimize_bench.py). ``memory`` keeps the study in this process.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import optuna
import psycopg
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import BaseJournalBackend
from optuna.trial import FrozenTrial, Trial, TrialState
from psycopg.types.json import Jsonb
from pydantic import BaseModel, Field

from engine.backtest.bars import Bars
from engine.backtest.metrics import METRIC_NAMES
from engine.backtest.vectorized import resolve_bars_per_year, run_backtest, run_grid
from engine.errors import ValidationFailedError
from engine.research.data import DataSelection, bars_ms, load_bars
from engine.research.guards import OverfittingReport, bar_returns, overfitting_report
from engine.research.runs import (
    JournalWriter,
    ReproductionError,
    RunRecord,
    finite_or_none,
    key_metrics,
    new_id,
    save_run,
    write_journal,
)
from engine.research.studies import (
    STUDY_COLUMNS,
    StorageKind,
    StudyRecord,
    StudySpec,
    get_study,
    set_status,
    study_record,
)
from engine.store.database import Database
from engine.strategies import StrategySpec, get_strategy
from engine.telemetry import get_logger

log = get_logger(__name__)

optuna.logging.set_verbosity(optuna.logging.WARNING)

Progress = Callable[[int, int, str], None]
"""``(done, total, message)``: called after each batch."""

TRIAL_METRICS = ("total_return", "sharpe", "sortino", "max_drawdown", "n_trades", "win_rate")
"""Metrics every complete trial keeps (user attribute ``metrics``), e.g. for the deflated Sharpe ratio."""
CONSTRAINT_PARAMS = "valid_params"
CONSTRAINT_OBJECTIVE = "objective_defined"


# -- storage ------------------------------------------------------------------------------------------------------


class PostgresJournalBackend(BaseJournalBackend):
    """Optuna's journal (operation log) in the ``optuna_journal`` table, one journal per study.

    Appends go through ``optuna_journal_append`` (migration 0003), which holds a per-journal advisory lock while
    it numbers the new rows, so sequence numbers are dense and become visible in order. The backend keeps one
    autocommit connection of its own (a read or an append is one round trip); JournalStorage calls it under
    its own lock, and this one guards direct use from several threads.
    """

    def __init__(self, db: Database, journal: str) -> None:
        self.url = db.url
        self.journal = journal
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None

    def _execute(self, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            for attempt in (1, 2):
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self.url, autocommit=True)
                try:
                    return self._conn.execute(query, params).fetchall()
                except psycopg.OperationalError:
                    self._conn.close()
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")

    def read_logs(self, log_number_from: int) -> list[dict[str, Any]]:
        rows = self._execute(
            "SELECT log FROM optuna_journal WHERE journal = %s AND seq >= %s ORDER BY seq",
            (self.journal, log_number_from),
        )
        return [json.loads(row[0]) for row in rows]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        self._execute("SELECT optuna_journal_append(%s, %s)", (self.journal, [json.dumps(log) for log in logs]))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


_RDB_CACHE: dict[str, RDBStorage] = {}


def rdb_url(db: Database) -> str:
    """The IQTS database for Optuna's RDBStorage, its tables kept in the ``optuna`` schema."""
    url = db.sqlalchemy_url
    return url + ("&" if "?" in url else "?") + "options=-csearch_path%3Doptuna"


def study_storage(db: Database | None, kind: StorageKind, journal: str) -> BaseStorage | None:
    """The Optuna storage of a study (None: in memory)."""
    if kind == "memory":
        return None
    if db is None:
        raise ValidationFailedError(f"storage '{kind}' needs the database")
    if kind == "journal":
        return JournalStorage(PostgresJournalBackend(db, journal))
    url = rdb_url(db)
    storage = _RDB_CACHE.get(url)
    if storage is None:  # creating one checks (and on first use creates) Optuna's schema: seconds, so once
        storage = _RDB_CACHE[url] = RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
    return storage


def make_sampler(spec: StudySpec, n_trials: int) -> optuna.samplers.BaseSampler:
    """TPE (multivariate, constant liar) for one objective; NSGA-II for several."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if spec.multi_objective:
            population = max(4, min(50, n_trials // 4 or 4, spec.batch_size * 2))
            return optuna.samplers.NSGAIISampler(seed=spec.seed, population_size=population)
        return optuna.samplers.TPESampler(
            seed=spec.seed,
            multivariate=True,
            constant_liar=True,
            n_startup_trials=max(1, min(10, n_trials // 5 or 1)),
        )


def make_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    if spec.folds > 1 and not spec.multi_objective:
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
    return optuna.pruners.NopPruner()


# -- evaluation ---------------------------------------------------------------------------------------------------


def distributions(strategy: StrategySpec, fixed: dict[str, Any]) -> dict[str, BaseDistribution]:
    """Optuna distributions of the strategy's free parameters (its bounds, steps and log scales)."""
    out: dict[str, BaseDistribution] = {}
    for p in strategy.search_space():
        if p.name in fixed:
            continue
        if p.kind == "int":
            step = int(p.step or 1)
            out[p.name] = IntDistribution(int(p.low), int(p.high), log=p.log, step=1 if p.log else step)
        else:
            out[p.name] = FloatDistribution(p.low, p.high, log=p.log, step=None if p.log else p.step)
    return out


def split_folds(bars: Bars, folds: int) -> list[Bars]:
    if folds == 1:
        return [bars]
    if len(bars) < folds * 2:
        raise ValidationFailedError(f"folds: {folds} folds need at least {folds * 2} bars (got {len(bars)})")
    edges = np.linspace(0, len(bars), folds + 1).astype(int)
    return [bars.slice(int(a), int(b)) for a, b in itertools.pairwise(edges)]


@dataclass
class Evaluator:
    """Evaluates batches of trials of one strategy over fixed bars (with one grid call per fold)."""

    strategy: StrategySpec
    bars: Bars
    spec: StudySpec
    space: dict[str, BaseDistribution] = field(init=False)
    fold_bars: list[Bars] = field(init=False)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.spec.fixed_params) - set(self.strategy.param_names))
        if unknown:
            raise ValidationFailedError(
                f"{self.strategy.name}: unknown parameter '{unknown[0]}' "
                f"(known: {', '.join(self.strategy.param_names) or 'none'})"
            )
        self.space = distributions(self.strategy, self.spec.fixed_params)
        if not self.space:
            raise ValidationFailedError(f"{self.strategy.name}: no free parameters to optimise")
        self.fold_bars = split_folds(self.bars, self.spec.folds)

    def _worst(self) -> list[float]:
        return [-math.inf if d == "maximize" else math.inf for d in self.spec.directions]

    def _tell_infeasible(self, study: optuna.Study, trial: Trial, constraint: str, reason: str) -> None:
        trial.set_constraint(constraint, 1.0)
        trial.set_user_attr("infeasible", reason[:300])
        values = self._worst()
        study.tell(trial, values if self.spec.multi_objective else values[0])

    def run_batch(self, study: optuna.Study, trials: list[Trial]) -> None:
        """Evaluate and tell ``trials`` (asked with :attr:`space`)."""
        valid: list[tuple[Trial, dict[str, Any]]] = []
        for trial in trials:
            params = {**self.spec.fixed_params, **trial.params}
            try:
                model = self.strategy.validate_params(params)
            except ValidationFailedError as error:
                self._tell_infeasible(study, trial, CONSTRAINT_PARAMS, str(error))
                continue
            valid.append((trial, model.model_dump()))
        if not valid:
            return
        columns = [METRIC_NAMES.index(o.metric) for o in self.spec.objectives]
        sums = np.zeros((len(valid), len(METRIC_NAMES)))
        counts = np.zeros((len(valid), len(METRIC_NAMES)))
        alive = list(range(len(valid)))
        prune = self.spec.folds > 1 and not self.spec.multi_objective
        for fold, bars in enumerate(self.fold_bars):
            grid = run_grid(
                self.strategy,
                bars,
                [valid[k][1] for k in alive],
                self.spec.config,
                metrics_config=self.spec.metrics_config,
            )
            defined = np.isfinite(grid.values)
            sums[alive] += np.where(defined, grid.values, 0.0)
            counts[alive] += defined
            if not prune or fold == len(self.fold_bars) - 1:
                continue
            still = []
            for k in alive:
                trial = valid[k][0]
                if counts[k, columns[0]] > 0:
                    trial.report(float(sums[k, columns[0]] / counts[k, columns[0]]), fold)
                    if trial.should_prune():
                        study.tell(trial, state=TrialState.PRUNED)
                        continue
                still.append(k)
            alive = still
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        for k in alive:
            trial = valid[k][0]
            values = [float(means[k, c]) for c in columns]
            if not all(math.isfinite(v) for v in values):
                undefined = [
                    o.metric for o, v in zip(self.spec.objectives, values, strict=True) if not math.isfinite(v)
                ]
                self._tell_infeasible(
                    study, trial, CONSTRAINT_OBJECTIVE, f"objective {', '.join(undefined)} undefined (no trades?)"
                )
                continue
            trial.set_user_attr(
                "metrics", {m: finite_or_none(float(means[k, METRIC_NAMES.index(m)])) for m in TRIAL_METRICS}
            )
            study.tell(trial, values if self.spec.multi_objective else values[0])


def run_trials(
    study: optuna.Study,
    evaluator: Evaluator,
    n_trials: int,
    *,
    progress: Progress | None = None,
) -> int:
    """Ask, evaluate and tell ``n_trials`` trials in batches; the number run."""
    done = 0
    batch = evaluator.spec.batch_size
    while done < n_trials:
        size = min(batch, n_trials - done)
        trials = [study.ask(fixed_distributions=evaluator.space) for _ in range(size)]
        try:
            evaluator.run_batch(study, trials)
        except BaseException:
            for trial in trials:  # never leave trials RUNNING in a shared study
                try:
                    study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
                except Exception as error:  # the original error matters more
                    log.warning("optimize.tell_failed", error=str(error))
            raise
        done += size
        if progress is not None:
            progress(done, n_trials, f"{done}/{n_trials} trials")
    return done


# -- summaries ----------------------------------------------------------------------------------------------------


class TrialRow(BaseModel):
    """One trial of a study."""

    number: int
    params: dict[str, Any]
    values: list[float | None] | None
    state: str
    metrics: dict[str, float | None] = Field(default_factory=dict)


class TrialCounts(BaseModel):
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    infeasible: int = Field(0, description="complete but infeasible: invalid parameters or undefined objective")


def _feasible(trial: FrozenTrial) -> bool:
    return all(v <= 0.0 for v in trial.constraints.values())


def trial_row(trial: FrozenTrial, fixed: dict[str, Any]) -> TrialRow:
    return TrialRow(
        number=trial.number,
        params={**fixed, **trial.params},
        values=None if trial.values is None else [finite_or_none(v) for v in trial.values],
        state=trial.state.name.lower(),
        metrics=dict(trial.user_attrs.get("metrics", {})),
    )


def count_trials(trials: list[FrozenTrial]) -> TrialCounts:
    counts = TrialCounts()
    for t in trials:
        if t.state == TrialState.COMPLETE:
            if _feasible(t):
                counts.complete += 1
            else:
                counts.infeasible += 1
        elif t.state == TrialState.PRUNED:
            counts.pruned += 1
        elif t.state == TrialState.FAIL:
            counts.failed += 1
        elif t.state == TrialState.RUNNING:
            counts.running += 1
    return counts


def ranked_trials(trials: list[FrozenTrial], spec: StudySpec) -> list[FrozenTrial]:
    """Complete, feasible trials, best first by the first objective."""
    good = [t for t in trials if t.state == TrialState.COMPLETE and _feasible(t) and t.values is not None]
    sign = -1.0 if spec.objectives[0].direction == "maximize" else 1.0
    return sorted(good, key=lambda t: (sign * t.values[0], t.number))


def pareto_front(trials: list[FrozenTrial], spec: StudySpec) -> list[FrozenTrial]:
    """Feasible trials no other feasible trial dominates (all objectives at least as good, one better)."""
    good = ranked_trials(trials, spec)
    signs = np.array([1.0 if d == "maximize" else -1.0 for d in spec.directions])
    points = np.array([np.asarray(t.values) * signs for t in good]) if good else np.zeros((0, len(signs)))
    front = []
    for i, t in enumerate(good):
        dominated = np.any(np.all(points >= points[i], axis=1) & np.any(points > points[i], axis=1))
        if not dominated:
            front.append(t)
    return front


@dataclass
class Selection:
    """The best trial of a finished (part of a) study, with its full-range backtest and guards."""

    best: FrozenTrial
    params: dict[str, Any]
    top: list[FrozenTrial]
    pareto: list[FrozenTrial]
    counts: TrialCounts
    report: OverfittingReport


PBO_MAX_CONFIGS = 64
"""Configurations (distinct parameter sets, spread evenly over the ranking) the PBO of a selection is estimated
over: one backtest each over the selection's bars."""


def trials_tried(trials: list[FrozenTrial]) -> int:
    """Every trial that looked at the data: complete (feasible or not), pruned and failed; not running ones."""
    counts = count_trials(trials)
    return counts.complete + counts.infeasible + counts.pruned + counts.failed


def config_returns(
    spec: StudySpec, bars: Bars, ranked: list[FrozenTrial], max_configs: int = PBO_MAX_CONFIGS
) -> npt.NDArray[np.float64]:
    """Bar returns (bars x configurations) of the distinct parameter sets among ``ranked``, for the PBO."""
    distinct: list[dict[str, Any]] = []
    for trial in ranked:
        params = {**spec.fixed_params, **trial.params}
        if params not in distinct:
            distinct.append(params)
    if len(distinct) > max_configs:
        picks = np.unique(np.linspace(0, len(distinct) - 1, max_configs).round().astype(int))
        distinct = [distinct[int(k)] for k in picks]
    columns = [
        bar_returns(
            run_backtest(spec.strategy, bars, params, spec.config, metrics_config=spec.metrics_config).equity,
            spec.config.initial_cash,
        )
        for params in distinct
    ]
    if not columns:
        return np.zeros((len(bars), 0))
    return np.column_stack(columns)


def select_best(study: optuna.Study, spec: StudySpec, bars: Bars) -> tuple[Selection, Any]:
    """The best trial (multi-objective: the Pareto trial best on the first objective), the backtest of its
    parameters over all ``bars`` and the overfitting report of the selection."""
    trials = study.get_trials(deepcopy=False)
    ranked = ranked_trials(trials, spec)
    if not ranked:
        counts = count_trials(trials)
        raise ValidationFailedError(
            f"no feasible trial ({counts.infeasible} infeasible, {counts.pruned} pruned, {counts.failed} failed): "
            "widen the range or check the parameters"
        )
    pareto = pareto_front(trials, spec) if spec.multi_objective else []
    best = pareto[0] if pareto else ranked[0]
    params = {**spec.fixed_params, **best.params}
    result = run_backtest(spec.strategy, bars, params, spec.config, metrics_config=spec.metrics_config)
    sharpes = [t.user_attrs.get("metrics", {}).get("sharpe") for t in ranked]
    report = overfitting_report(
        result.metrics.sharpe,
        [math.nan if s is None else float(s) for s in sharpes],
        bar_returns(result.equity, spec.config.initial_cash),
        resolve_bars_per_year(bars, spec.metrics_config),
        n_tried=trials_tried(trials),
        config_returns=config_returns(spec, bars, ranked),
    )
    selection = Selection(
        best=best, params=params, top=ranked[:5], pareto=pareto, counts=count_trials(trials), report=report
    )
    return selection, result


def optimize_bars(
    bars: Bars,
    spec: StudySpec,
    n_trials: int,
    *,
    study: optuna.Study | None = None,
    progress: Progress | None = None,
) -> optuna.Study:
    """Optimise over ``bars`` (by default in a fresh in-memory study): the study after ``n_trials`` trials."""
    evaluator = Evaluator(get_strategy(spec.strategy), bars, spec)
    if study is None:
        study = optuna.create_study(
            directions=spec.directions, sampler=make_sampler(spec, n_trials), pruner=make_pruner(spec)
        )
    run_trials(study, evaluator, n_trials, progress=progress)
    return study


# -- stored studies -----------------------------------------------------------------------------------------------


class StudyResult(BaseModel):
    """What an optimisation returns: the study, its best trial, the top trials and the overfitting guards."""

    study_id: str
    optuna_name: str
    storage: StorageKind
    strategy: str
    exchange: str
    symbol: str
    timeframe: str
    objectives: list[str]
    status: str
    n_trials: int = Field(description="finished trials in the study (all workers)")
    counts: TrialCounts
    best_params: dict[str, Any]
    best_value: float | None = Field(description="first objective of the best trial (null if infinite)")
    best_values: list[float | None]
    best_run_id: str | None = Field(description="stored backtest of the best parameters over the whole range")
    best_metrics: dict[str, float | None]
    top_trials: list[TrialRow]
    pareto_front: list[TrialRow] = Field(default_factory=list, description="multi-objective studies")
    overfitting: OverfittingReport
    walk_forward: dict[str, Any] | None = None


def pin_selection(selection: DataSelection, bars: Bars) -> DataSelection:
    """The selection narrowed to exactly the loaded bars (so every worker reads the same ones)."""
    first, last = bars_ms(bars)
    return selection.model_copy(update={"start_ms": first, "end_ms": last + 1})


def create_study(
    db: Database,
    spec: StudySpec,
    actor: str,
    *,
    storage: StorageKind = "journal",
    name: str | None = None,
    bars: Bars | None = None,
    kind: Literal["optimize", "walk_forward"] = "optimize",
) -> tuple[StudyRecord, Bars]:
    """Record a study and create its Optuna study (once; workers then join it by id or name)."""
    get_strategy(spec.strategy)
    bars = bars if bars is not None else load_bars(db, spec.selection)
    spec = spec.model_copy(update={"selection": pin_selection(spec.selection, bars)})
    Evaluator(get_strategy(spec.strategy), bars, spec)  # bad fixed params, nothing to optimise, too few bars
    study_id = new_id("st")
    optuna_name = (name or study_id).strip()
    if not optuna_name or len(optuna_name) > 200:
        raise ValidationFailedError("study name: 1 to 200 characters")
    with db.connection() as conn:
        taken = conn.execute("SELECT 1 FROM studies WHERE optuna_name = %s", (optuna_name,)).fetchone()
    if taken:
        raise ValidationFailedError(f"study name '{optuna_name}' is taken: join it with `iqts optimize worker`")
    if storage != "memory":
        try:
            optuna.create_study(
                study_name=optuna_name, storage=study_storage(db, storage, optuna_name), directions=spec.directions
            )
        except optuna.exceptions.DuplicatedStudyError:
            raise ValidationFailedError(f"study name '{optuna_name}' is taken in Optuna's {storage} storage") from None
    first, last = bars_ms(bars)
    with db.connection() as conn:
        row = conn.execute(
            "INSERT INTO studies (id, optuna_name, storage, kind, strategy, exchange, symbol, timeframe, start_ts, "
            "end_ts, n_bars, data_checksum, objectives, spec, status, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, "
            f"%s, %s, %s, %s, %s, %s, %s, 'created', %s) RETURNING {STUDY_COLUMNS}",
            (
                study_id,
                optuna_name,
                storage,
                kind,
                spec.strategy,
                spec.selection.exchange,
                spec.selection.symbol,
                spec.selection.timeframe,
                first,
                last,
                len(bars),
                bars.checksum(),
                Jsonb([o.model_dump() for o in spec.objectives]),
                Jsonb(spec.model_dump(mode="json")),
                actor,
            ),
        ).fetchone()
    assert row is not None
    log.info("optimize.study_created", study_id=study_id, name=optuna_name, storage=storage)
    return study_record(row), bars


def study_bars(db: Database, record: StudyRecord) -> Bars:
    """The study's bars, checked against the checksum taken when it was created."""
    bars = load_bars(db, record.spec.selection)
    if bars.checksum() != record.data_checksum:
        raise ReproductionError(
            f"study {record.id}: the stored bars of {record.symbol} {record.timeframe} changed since the study was "
            "created; start a new study"
        )
    return bars


def load_optuna_study(db: Database, record: StudyRecord, n_trials: int) -> optuna.Study:
    if record.storage == "memory":
        raise ValidationFailedError(f"study {record.id} was kept in memory: it cannot be joined")
    storage = study_storage(db, record.storage, record.optuna_name)
    assert storage is not None
    return optuna.load_study(
        study_name=record.optuna_name,
        storage=storage,
        sampler=make_sampler(record.spec, n_trials),
        pruner=make_pruner(record.spec),
    )


def run_study(
    db: Database,
    ref: str,
    n_trials: int,
    *,
    bars: Bars | None = None,
    progress: Progress | None = None,
) -> StudyRecord:
    """Run ``n_trials`` more trials of a stored study in this process (a worker); other workers may run at once."""
    if n_trials < 0:
        raise ValidationFailedError(f"trials must be >= 0 (got {n_trials})")
    record = get_study(db, ref)
    bars = bars if bars is not None else study_bars(db, record)
    study = load_optuna_study(db, record, n_trials)
    set_status(db, record.id, "running")
    try:
        optimize_bars(bars, record.spec, n_trials, study=study, progress=progress)
    except BaseException as error:
        set_status(db, record.id, "failed", f"{type(error).__name__}: {error}"[:500])
        raise
    return get_study(db, record.id)


def finish_study(
    db: Database,
    ref: str,
    actor: str,
    *,
    bars: Bars | None = None,
    study: optuna.Study | None = None,
    journal: JournalWriter | None = None,
    walk_forward: dict[str, Any] | None = None,
) -> StudyResult:
    """Summarise a study: best trial, its stored full-range backtest (saved when the best changed), top trials,
    Pareto front and overfitting guards, written to its row (and journaled)."""
    record = get_study(db, ref)
    bars = bars if bars is not None else study_bars(db, record)
    if study is None:
        study = load_optuna_study(db, record, 0)
    selection, result = select_best(study, record.spec, bars)
    best_run_id = record.best_run_id
    if best_run_id is None or record.best_params != selection.params:
        run: RunRecord = save_run(
            db,
            result,
            record.exchange,
            actor,
            bars=bars,
            metrics_config=record.spec.metrics_config,
            study_id=record.id,
        )
        best_run_id = run.id
    counts = selection.counts
    status = "running" if counts.running else "done"
    values = [finite_or_none(v) for v in selection.best.values]
    report = {
        "overfitting": selection.report.model_dump(mode="json"),
        "counts": counts.model_dump(),
        "top_trials": [trial_row(t, record.spec.fixed_params).model_dump(mode="json") for t in selection.top],
        "pareto_front": [trial_row(t, record.spec.fixed_params).model_dump(mode="json") for t in selection.pareto],
    }
    finished = counts.complete + counts.infeasible + counts.pruned + counts.failed
    with db.connection() as conn:
        conn.execute(
            "UPDATE studies SET status = %s, n_trials = %s, best_params = %s, best_value = %s, best_values = %s, "
            "best_run_id = %s, report = %s, walk_forward = coalesce(%s, walk_forward), error = NULL, "
            "updated_at = now() WHERE id = %s",
            (
                status,
                finished,
                Jsonb(selection.params),
                values[0],
                Jsonb(values),
                best_run_id,
                Jsonb(report),
                Jsonb(walk_forward) if walk_forward is not None else None,
                record.id,
            ),
        )
    out = StudyResult(
        study_id=record.id,
        optuna_name=record.optuna_name,
        storage=record.storage,
        strategy=record.strategy,
        exchange=record.exchange,
        symbol=record.symbol,
        timeframe=record.timeframe,
        objectives=[str(o) for o in record.objectives],
        status=status,
        n_trials=finished,
        counts=counts,
        best_params=selection.params,
        best_value=values[0],
        best_values=values,
        best_run_id=best_run_id,
        best_metrics=key_metrics(result.metrics),
        top_trials=[trial_row(t, record.spec.fixed_params) for t in selection.top],
        pareto_front=[trial_row(t, record.spec.fixed_params) for t in selection.pareto],
        overfitting=selection.report,
        walk_forward=walk_forward if walk_forward is not None else record.walk_forward,
    )
    if journal is not None:
        journal_study(db, out, journal)
    return out


def journal_study(db: Database, result: StudyResult, journal: JournalWriter) -> None:
    params = ", ".join(f"{k}={v}" for k, v in result.best_params.items())
    guards = result.overfitting
    body = (
        f"Optimisation study {result.study_id} ({result.optuna_name}): {result.strategy} on {result.symbol} "
        f"{result.timeframe} ({result.exchange}), objective {', '.join(result.objectives)}, {result.n_trials} trials. "
        f"Best: {params} with value {result.best_value}; best run {result.best_run_id}. Deflated Sharpe ratio "
        f"{guards.dsr if guards.dsr is not None else 'undefined'} over {guards.n_trials} trials; probability of "
        f"backtest overfitting {guards.pbo if guards.pbo is not None else 'undefined'}."
    )
    if guards.warnings:
        body += " Warnings: " + "; ".join(guards.warnings)
    metadata: dict[str, Any] = {
        "study_id": result.study_id,
        "strategy": result.strategy,
        "symbol": result.symbol,
        "timeframe": result.timeframe,
        "best_params": result.best_params,
        "best_value": result.best_value,
        "best_run_id": result.best_run_id,
        "dsr": guards.dsr,
        "pbo": guards.pbo,
        "n_trials": result.n_trials,
    }
    write_journal(
        db,
        journal,
        "study",
        result.study_id,
        f"Study {result.study_id}: {result.strategy} {result.symbol}",
        body,
        metadata,
    )


def optimize(
    db: Database,
    spec: StudySpec,
    n_trials: int,
    actor: str,
    *,
    storage: StorageKind = "journal",
    name: str | None = None,
    bars: Bars | None = None,
    progress: Progress | None = None,
    journal: JournalWriter | None = None,
) -> StudyResult:
    """Create a stored study, run ``n_trials`` trials here and summarise it."""
    if n_trials < 1:
        raise ValidationFailedError(f"trials must be at least 1 (got {n_trials})")
    record, bars = create_study(db, spec, actor, storage=storage, name=name, bars=bars)
    if storage == "memory":
        set_status(db, record.id, "running")
        study = optimize_bars(bars, record.spec, n_trials, progress=progress)
        return finish_study(db, record.id, actor, bars=bars, study=study, journal=journal)
    run_study(db, record.id, n_trials, bars=bars, progress=progress)
    return finish_study(db, record.id, actor, bars=bars, journal=journal)
