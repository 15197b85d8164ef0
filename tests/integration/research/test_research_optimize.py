"""Optuna studies over the real BTC/USD hours: batched trials score exactly what single backtests score, workers
share a study through PostgreSQL (journal and RDB storage), infeasible and pruned trials, NSGA-II fronts."""

from __future__ import annotations

import itertools
import json
import threading
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from engine.backtest.bars import Bars
from engine.backtest.config import BacktestConfig
from engine.backtest.vectorized import run_backtest
from engine.errors import ValidationFailedError
from engine.research.data import DataSelection
from engine.research.optimize import (
    count_trials,
    create_study,
    finish_study,
    optimize,
    optimize_bars,
    pareto_front,
    ranked_trials,
    run_study,
)
from engine.research.studies import StudySpec, get_study, parse_objectives
from engine.store.database import Database


def _spec(selection: DataSelection, **overrides: Any) -> StudySpec:
    values: dict[str, Any] = {
        "strategy": "sma_cross",
        "selection": selection,
        "objectives": parse_objectives(["sharpe"]),
        "config": BacktestConfig(fee=0.001),
        "batch_size": 8,
        "seed": 11,
    }
    return StudySpec.model_validate({**values, **overrides})


def test_batched_trials_score_exactly_what_single_backtests_score(btc: tuple[DataSelection, Bars]) -> None:
    selection, bars = btc
    spec = _spec(selection)
    study = optimize_bars(bars, spec, 24)
    trials = study.get_trials()
    assert len(trials) == 24 and all(t.state == TrialState.COMPLETE for t in trials)
    feasible = ranked_trials(trials, spec)
    assert feasible, "no feasible trial"
    for trial in feasible:
        single = run_backtest("sma_cross", bars, trial.params, spec.config)
        assert trial.value == single.metrics.sharpe  # the grid kernel equals the single run, to the bit
        assert trial.user_attrs["metrics"]["n_trades"] == single.metrics.n_trades
    infeasible = [t for t in trials if t.constraints]
    for trial in infeasible:  # sampled slow <= fast: told as infeasible, never the best
        assert trial.params["slow"] <= trial.params["fast"] and "slow" in trial.user_attrs["infeasible"]
    assert study.best_trial.number == feasible[0].number
    assert len(feasible) + len(infeasible) == 24


def _worker_ids(db: Database, journal: str) -> set[str]:
    with db.connection() as conn:
        rows = conn.execute("SELECT log FROM optuna_journal WHERE journal = %s", (journal,)).fetchall()
    logs = [json.loads(r[0]) for r in rows]
    return {log["worker_id"] for log in logs if "trial_id" not in log and log.get("op_code") == 4}


def test_two_workers_share_one_study_through_the_journal(
    db: Database, btc: tuple[DataSelection, Bars], unique: str
) -> None:
    selection, bars = btc
    record, _ = create_study(db, _spec(selection, batch_size=4), "tests", name=f"shared-{unique}", bars=bars)
    assert record.status == "created" and record.spec.selection.start_ms is not None
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            run_study(db, f"shared-{unique}", 10, bars=bars)
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    result = finish_study(db, record.id, "tests", bars=bars)
    assert result.n_trials == 20 and result.counts.running == 0 and result.status == "done"
    study = optuna.load_study(study_name=f"shared-{unique}", storage=_journal_storage(db, f"shared-{unique}"))
    assert sorted(t.number for t in study.trials) == list(range(20))  # the union, numbered once each
    assert len(_worker_ids(db, f"shared-{unique}")) == 2
    stored = get_study(db, record.id)
    assert stored.best_params == result.best_params and stored.best_run_id == result.best_run_id
    assert (
        stored.report is not None and stored.report["overfitting"]["n_trials"] == result.n_trials == 20
    )  # every trial tried


def _journal_storage(db: Database, name: str) -> Any:
    from engine.research.optimize import study_storage

    return study_storage(db, "journal", name)


def test_optuna_rdb_storage_on_the_iqts_database(db: Database, btc: tuple[DataSelection, Bars], unique: str) -> None:
    selection, bars = btc
    result = optimize(db, _spec(selection, batch_size=3), 6, "tests", storage="rdb", name=f"rdb-{unique}", bars=bars)
    assert result.storage == "rdb" and result.n_trials == 6
    run_study(db, f"rdb-{unique}", 3, bars=bars)  # a second worker joins
    with db.connection() as conn:
        count = conn.execute(
            "SELECT count(*) FROM optuna.trials t JOIN optuna.studies s USING (study_id) WHERE s.study_name = %s",
            (f"rdb-{unique}",),
        ).fetchone()
    assert count is not None and count[0] == 9  # Optuna's tables, in their own schema


def test_folds_prune_the_losers(btc: tuple[DataSelection, Bars]) -> None:
    selection, bars = btc
    spec = _spec(selection, folds=3, batch_size=4, seed=5)
    study = optimize_bars(bars, spec, 36)
    counts = count_trials(study.get_trials())
    assert counts.pruned > 0 and counts.complete > 0
    for trial in study.get_trials(states=(TrialState.PRUNED,)):
        assert trial.intermediate_values and max(trial.intermediate_values) < 2  # stopped before the last fold
    best = study.best_trial
    folds = [run_backtest("sma_cross", part, best.params, spec.config).metrics.sharpe for part in _thirds(bars)]
    assert best.value == pytest.approx(float(np.mean(folds)), rel=1e-12)


def _thirds(bars: Bars) -> list[Bars]:
    edges = np.linspace(0, len(bars), 4).astype(int)
    return [bars.slice(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def test_nsga2_finds_a_pareto_front(btc: tuple[DataSelection, Bars]) -> None:
    selection, bars = btc
    spec = _spec(selection, objectives=parse_objectives(["sharpe", "max_drawdown"]), batch_size=8)
    assert [o.direction for o in spec.objectives] == ["maximize", "minimize"]
    study = optimize_bars(bars, spec, 32)
    assert isinstance(study.sampler, optuna.samplers.NSGAIISampler)
    front = pareto_front(study.get_trials(), spec)
    others = [t for t in ranked_trials(study.get_trials(), spec) if t not in front]
    assert front and others
    for t in others:  # every other feasible trial is dominated by a front trial
        assert any(f.values[0] >= t.values[0] and f.values[1] <= t.values[1] for f in front)
    for a in front:
        assert not any(b.values[0] >= a.values[0] and b.values[1] < a.values[1] for b in front)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"strategy": "buy_and_hold"}, "no free parameters"),
        ({"fixed_params": {"fats": 3}}, "unknown parameter 'fats'"),
        ({"folds": 20}, None),
    ],
)
def test_bad_studies_are_refused(
    db: Database, btc: tuple[DataSelection, Bars], overrides: dict[str, Any], expected: str | None
) -> None:
    selection, bars = btc
    if expected is None:  # 20 folds of 8,760 bars are fine
        create_study(db, _spec(selection, **overrides), "tests", storage="memory", bars=bars)
        return
    with pytest.raises(ValidationFailedError, match=expected):
        create_study(db, _spec(selection, **overrides), "tests", storage="memory", bars=bars)


def test_objectives_are_checked() -> None:
    assert [str(o) for o in parse_objectives(["sharpe", "max_drawdown", "total_return:minimize"])] == [
        "maximize sharpe",
        "minimize max_drawdown",
        "minimize total_return",
    ]
    with pytest.raises(ValidationFailedError, match="unknown metric 'sharp'"):
        parse_objectives(["sharp"])
    with pytest.raises(ValidationFailedError, match="direction must be maximize or minimize"):
        parse_objectives(["sharpe:up"])
    with pytest.raises(ValidationFailedError, match="named twice"):
        parse_objectives(["sharpe", "sharpe"])
