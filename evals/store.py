"""The ``eval_runs`` table: one row per run (summary and outcomes as JSON)."""

from __future__ import annotations

from psycopg.types.json import Jsonb
from pydantic import BaseModel

from engine.errors import NotFoundError
from engine.store.database import Database
from evals.results import RunResult, ScenarioOutcome, Summary

_COLUMNS = "id, started_at, finished_at, model, model_label, dataset, category, repeat, git_commit, machine, summary"


class RunRow(BaseModel):
    """A stored run without its outcomes (for listings)."""

    run_id: str
    started_at: str
    model_label: str
    dataset: str
    category: str | None
    repeat: int
    commit: str | None
    summary: Summary


def save_run(db: Database, run: RunResult) -> None:
    outcomes = [o.model_dump(mode="json") for o in run.outcomes]
    with db.connection() as conn:
        conn.execute(
            f"INSERT INTO eval_runs ({_COLUMNS}, outcomes) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                run.run_id,
                run.started_at,
                run.finished_at,
                run.model,
                run.model_label,
                run.dataset,
                run.category,
                run.repeat,
                run.commit,
                run.machine,
                Jsonb(run.summary.model_dump(mode="json")),
                Jsonb(outcomes),
            ),
        )


def load_run(db: Database, run_id: str) -> RunResult:
    with db.connection() as conn:
        row = conn.execute(f"SELECT {_COLUMNS}, outcomes FROM eval_runs WHERE id = %s", (run_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no eval run {run_id} (see iqts eval list)")
    return RunResult(
        run_id=row[0],
        started_at=row[1],
        finished_at=row[2],
        model=row[3],
        model_label=row[4],
        dataset=row[5],
        category=row[6],
        repeat=row[7],
        commit=row[8],
        machine=row[9],
        summary=Summary.model_validate(row[10]),
        outcomes=[ScenarioOutcome.model_validate(o) for o in row[11]],
    )


def list_runs(db: Database, limit: int = 20) -> list[RunRow]:
    with db.connection() as conn:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM eval_runs ORDER BY started_at DESC LIMIT %s", (limit,)).fetchall()
    return [
        RunRow(
            run_id=r[0],
            started_at=r[1].isoformat(timespec="seconds"),
            model_label=r[4],
            dataset=r[5],
            category=r[6],
            repeat=r[7],
            commit=r[8],
            summary=Summary.model_validate(r[10]),
        )
        for r in rows
    ]
