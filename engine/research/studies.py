"""Stored optimisation studies: what a study optimises (``StudySpec``) and its row in ``studies``.

Kept apart from :mod:`engine.research.optimize` so that reading a study (the inbox, listings) does not load
Optuna.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.backtest.config import BacktestConfig, MetricsConfig
from engine.backtest.metrics import METRIC_NAMES
from engine.errors import NotFoundError, ValidationFailedError
from engine.research.data import DataSelection
from engine.store.database import Database

StorageKind = Literal["journal", "rdb", "memory"]
Direction = Literal["maximize", "minimize"]
MINIMIZED = frozenset({"max_drawdown", "max_drawdown_duration", "volatility", "turnover"})
OBJECTIVE_METRICS: tuple[str, ...] = tuple(m for m in METRIC_NAMES if m not in ("n_bars", "benchmark_return"))


class Objective(BaseModel):
    """One metric to optimise; the direction defaults to the metric's sense (drawdown down, Sharpe up)."""

    model_config = ConfigDict(frozen=True)

    metric: str
    direction: Direction = "maximize"

    @model_validator(mode="before")
    @classmethod
    def _default_direction(cls, data: Any) -> Any:
        if isinstance(data, str):
            data = {"metric": data}
        if isinstance(data, dict) and data.get("direction") is None:
            data = {**data, "direction": "minimize" if data.get("metric") in MINIMIZED else "maximize"}
        return data

    @field_validator("metric")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in OBJECTIVE_METRICS:
            raise ValueError(f"unknown objective '{value}' (known: {', '.join(OBJECTIVE_METRICS)})")
        return value

    def __str__(self) -> str:
        return f"{self.direction} {self.metric}"


def parse_objectives(objectives: Iterable[str | Objective]) -> list[Objective]:
    """``["sharpe", "max_drawdown"]`` or objectives -> validated objectives (ValidationFailedError naming it)."""
    out = []
    for item in objectives:
        if isinstance(item, Objective):
            out.append(item)
            continue
        metric, _, direction = str(item).partition(":")
        if metric.strip() not in OBJECTIVE_METRICS:
            raise ValidationFailedError(
                f"objective: unknown metric '{metric.strip()}' (known: {', '.join(OBJECTIVE_METRICS)})"
            )
        if direction and direction not in ("maximize", "minimize"):
            raise ValidationFailedError(f"objective '{item}': direction must be maximize or minimize")
        out.append(Objective.model_validate({"metric": metric.strip(), "direction": direction or None}))
    if not out:
        raise ValidationFailedError("objective: at least one metric to optimise")
    if len({o.metric for o in out}) != len(out):
        raise ValidationFailedError("objective: a metric is named twice")
    return out


class StudySpec(BaseModel):
    """Everything a worker needs to evaluate trials of a study, on any machine."""

    model_config = ConfigDict(frozen=True)

    strategy: str
    selection: DataSelection = Field(description="the exact bars (range pinned to the first and last bar)")
    objectives: list[Objective] = Field(min_length=1, max_length=4)
    config: BacktestConfig = Field(default_factory=BacktestConfig)
    metrics_config: MetricsConfig = Field(default_factory=MetricsConfig)
    fixed_params: dict[str, Any] = Field(default_factory=dict, description="parameters held fixed, not searched")
    folds: int = Field(1, ge=1, le=20, description="consecutive data parts; the objective is their mean")
    batch_size: int = Field(16, ge=1, le=4096, description="trials asked for and evaluated per grid call")
    seed: int | None = None

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def directions(self) -> list[Direction]:
        return [o.direction for o in self.objectives]


class StudyRecord(BaseModel):
    """A row of ``studies``."""

    id: str
    optuna_name: str
    storage: StorageKind
    kind: Literal["optimize", "walk_forward"]
    strategy: str
    exchange: str
    symbol: str
    timeframe: str
    start_ts: int
    end_ts: int
    n_bars: int
    data_checksum: str
    objectives: list[Objective]
    spec: StudySpec
    status: Literal["created", "running", "done", "failed"]
    n_trials: int
    best_params: dict[str, Any] | None
    best_value: float | None
    best_values: list[float | None] | None
    best_run_id: str | None
    report: dict[str, Any] | None
    walk_forward: dict[str, Any] | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    created_by: str


STUDY_COLUMNS = (
    "id, optuna_name, storage, kind, strategy, exchange, symbol, timeframe, start_ts, end_ts, n_bars, "
    "data_checksum, objectives, spec, status, n_trials, best_params, best_value, best_values, best_run_id, report, "
    "walk_forward, error, created_at, updated_at, created_by"
)


def study_record(row: tuple[Any, ...]) -> StudyRecord:
    names = [c.strip() for c in STUDY_COLUMNS.split(",")]
    return StudyRecord.model_validate(dict(zip(names, row, strict=True)))


def get_study(db: Database, ref: str) -> StudyRecord:
    """A study by id (``st_...``) or Optuna study name."""
    with db.connection() as conn:
        row = conn.execute(
            f"SELECT {STUDY_COLUMNS} FROM studies WHERE id = %s OR optuna_name = %s", (ref.strip(), ref.strip())
        ).fetchone()
    if row is None:
        raise NotFoundError(f"no study {ref!r} (give its id, st_..., or its name; see `iqts optimize list`)")
    return study_record(row)


def list_studies(db: Database, limit: int = 20) -> list[StudyRecord]:
    with db.connection() as conn:
        rows = conn.execute(
            f"SELECT {STUDY_COLUMNS} FROM studies ORDER BY created_at DESC, id LIMIT %s", (limit,)
        ).fetchall()
    return [study_record(r) for r in rows]


def set_status(db: Database, study_id: str, status: str, error: str | None = None) -> None:
    with db.connection() as conn:
        conn.execute(
            "UPDATE studies SET status = %s, error = %s, updated_at = now() WHERE id = %s", (status, error, study_id)
        )
