"""The eval harness's service functions: what ``iqts eval`` (and ``make eval``) calls.

run = await run_eval(settings, dataset=None, model="local", repeat=1)    # scores, stores in eval_runs
compare_runs(settings, "ev_a", "ev_b")                                   # what got better or worse
list_eval_runs(settings)
"""

from __future__ import annotations

import platform
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from engine.settings import AgentSettings, Settings
from engine.store.database import connect
from engine.store.migrate import upgrade
from engine.telemetry import get_logger
from evals.judge import judge_trial, make_judge
from evals.metrics import score_trial, summarise
from evals.results import RunResult, ScenarioOutcome
from evals.runner import CANARIES, ModelProvider, ProgressFn, TrialRunner, expected_view, run_all
from evals.scenario import DEFAULT_DATASET, load_dataset, render, select
from evals.store import RunRow, list_runs, load_run, save_run
from evals.world import DatabaseServer, RunDatabases

log = get_logger(__name__)

REPO = Path(__file__).resolve().parent.parent


def _commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            check=False,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def machine() -> str:
    import os

    return f"{platform.node()} {platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}"


async def run_eval(
    settings: Settings,
    *,
    dataset: Path | None = None,
    model: str | None = None,
    category: str | None = None,
    repeat: int = 1,
    limit: int | None = None,
    ids: list[str] | None = None,
    judge: str | None = None,
    progress: ProgressFn | None = None,
    store: bool = True,
) -> RunResult:
    """Run the scenario set against the agent with ``model`` (default ``IQTS_LLM``), score it, store it. With a
    ``judge`` (``openai:MODEL``, ``ollama:MODEL``) the answers are also scored by G-Eval."""
    path = dataset or (Path(settings.eval.dataset) if settings.eval.dataset else DEFAULT_DATASET)
    scenarios = select(load_dataset(path), category, limit, ids)
    spec = model or settings.llm
    provider = ModelProvider.of(spec, settings)
    judge_model = make_judge(judge, settings) if judge else None  # fail before the run, not after it
    agent_settings = settings.agent.model_copy(update={"agent_max_steps": settings.eval.agent_max_steps})
    assert isinstance(agent_settings, AgentSettings)
    started, commit = datetime.now(UTC), _commit()  # the code the run started on
    # the planted credentials are in the agent's configuration too, as in production where both share one
    databases = RunDatabases(
        DatabaseServer.of(settings), overrides={"exchange_api_key": CANARIES[0], "exchange_api_secret": CANARIES[1]}
    )
    runner = TrialRunner(databases, provider, agent_settings, settings.eval.turn_timeout_s)
    try:
        trials = await run_all(scenarios, runner, max(1, repeat), progress)
    finally:
        databases.close()
    outcomes = [
        ScenarioOutcome(
            scenario_id=s.id,
            category=s.category,
            description=s.description,
            trials=ts,
            verdicts=[score_trial(s, t, CANARIES) for t in ts],
            expected=expected_view(render(s, ts[0].values) if ts else s),
        )
        for s, ts in zip(scenarios, trials, strict=True)
    ]
    if judge_model is not None:
        for outcome in outcomes:
            for trial, verdict in zip(outcome.trials, outcome.verdicts, strict=True):
                verdict.judged = judge_trial(judge_model, trial)
    run = RunResult(
        run_id=f"ev_{uuid.uuid4().hex[:10]}",
        started_at=started,
        finished_at=datetime.now(UTC),
        model=spec,
        model_label=provider.label,
        dataset=str(path),
        category=category,
        repeat=max(1, repeat),
        commit=commit,
        machine=machine(),
        summary=summarise(outcomes, max(1, repeat), runner.warmup_s),
        outcomes=outcomes,
    )
    if store:
        database = connect(settings)
        try:
            upgrade(database)
            save_run(database, run)
        finally:
            database.close()
    log.info("eval.done", run=run.run_id, scenarios=len(outcomes), passed=round(run.summary.passed, 3))
    return run


def rescore_run(settings: Settings, run_id: str, dataset: Path | None = None) -> RunResult:
    """Score a stored run's transcripts again with today's matchers and scenarios (no model is run), stored as a new
    run that names the one it rescored."""
    old = get_run(settings, run_id)
    by_id = {s.id: s for s in load_dataset(dataset or Path(old.dataset))}
    outcomes = []
    for outcome in old.outcomes:
        scenario = by_id.get(outcome.scenario_id)
        if scenario is None:
            continue
        verdicts = [score_trial(scenario, t, CANARIES) for t in outcome.trials]
        outcomes.append(outcome.model_copy(update={"verdicts": verdicts}))
    run = old.model_copy(
        update={
            "run_id": f"ev_{uuid.uuid4().hex[:10]}",
            "model_label": f"{old.model_label} (rescored {old.run_id} at {_commit()})",
            "summary": summarise(outcomes, old.repeat, old.summary.warmup_s),
            "outcomes": outcomes,
        }
    )
    database = connect(settings)
    try:
        save_run(database, run)
    finally:
        database.close()
    return run


def get_run(settings: Settings, run_id: str) -> RunResult:
    database = connect(settings)
    try:
        upgrade(database)
        return load_run(database, run_id)
    finally:
        database.close()


def list_eval_runs(settings: Settings, limit: int = 20) -> list[RunRow]:
    database = connect(settings)
    try:
        upgrade(database)
        return list_runs(database, limit)
    finally:
        database.close()


Change = Literal["better", "worse", "same", "only_a", "only_b"]


class ScenarioChange(BaseModel):
    scenario_id: str
    category: str
    a: float | None
    b: float | None
    change: Change
    problems_b: list[str]


class Comparison(BaseModel):
    run_a: str
    run_b: str
    model_a: str
    model_b: str
    passed_a: float
    passed_b: float
    deltas: dict[str, float]
    scenarios: list[ScenarioChange]

    @property
    def changed(self) -> list[ScenarioChange]:
        return [s for s in self.scenarios if s.change != "same"]


def _rate(outcome: ScenarioOutcome) -> float:
    return outcome.passes / len(outcome.verdicts) if outcome.verdicts else 0.0


def compare_runs(settings: Settings, run_a: str, run_b: str) -> Comparison:
    """Per scenario, the pass rate in A and in B, and what changed."""
    a, b = get_run(settings, run_a), get_run(settings, run_b)
    by_a = {o.scenario_id: o for o in a.outcomes}
    by_b = {o.scenario_id: o for o in b.outcomes}
    rows = []
    for sid in sorted(by_a.keys() | by_b.keys()):
        oa, ob = by_a.get(sid), by_b.get(sid)
        ra = _rate(oa) if oa else None
        rb = _rate(ob) if ob else None
        change: Change
        if ra is None:
            change = "only_b"
        elif rb is None:
            change = "only_a"
        else:
            change = "better" if rb > ra else "worse" if rb < ra else "same"
        problems = [p for v in (ob.verdicts if ob else []) for t in v.turns for p in t.problems][:5]
        either = oa or ob
        category = either.category if either is not None else ""
        rows.append(ScenarioChange(scenario_id=sid, category=category, a=ra, b=rb, change=change, problems_b=problems))
    fields = ("tool_correctness", "tools_ok", "args_ok", "answer_ok", "passed")
    deltas = {f: getattr(b.summary, f) - getattr(a.summary, f) for f in fields}
    return Comparison(
        run_a=a.run_id,
        run_b=b.run_id,
        model_a=a.model_label,
        model_b=b.model_label,
        passed_a=a.summary.passed,
        passed_b=b.summary.passed,
        deltas=deltas,
        scenarios=rows,
    )
