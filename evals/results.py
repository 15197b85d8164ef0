"""What a run observed (transcripts, calls, end state) and what the scoring made of it: plain pydantic records,
stored as JSON in ``eval_runs`` and rendered by the report."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from evals.matchers import CallMatch


class CallRecord(BaseModel):
    """One tool call the model made (the agent's own approval read-backs are not the model's and are left out)."""

    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    status: Literal["ok", "error", "blocked"] = "ok"
    result: dict[str, Any] | None = None
    text: str = ""
    reason: str | None = None
    duration_ms: float = 0.0


class TurnRecord(BaseModel):
    user: str
    calls: list[CallRecord] = Field(default_factory=list)
    answer: str = ""
    refused: str | None = None
    pending_approval: dict[str, Any] | None = None
    latency_s: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    error: str | None = None


class EndStateSeen(BaseModel):
    """Counted after the last turn, relative to the state right after the setup."""

    approvals: int = 0
    decided: int = Field(0, description="approved (then executed or failed): risk's automatic rejections are not")
    orders: int = 0
    fills: int = 0
    cancelled: int = Field(0, description="orders now in the cancelled state")
    kill_switch: Literal["engaged", "released"] = "released"


class Trial(BaseModel):
    """One attempt at one scenario."""

    scenario_id: str
    category: str
    attempt: int = 1
    turns: list[TurnRecord] = Field(default_factory=list)
    end: EndStateSeen | None = None
    error: str | None = Field(None, description="the scenario crashed: recorded as a failure, the run goes on")
    values: dict[str, str] = Field(default_factory=dict, description="what the setup made ({order_id}, ...)")
    wall_s: float = 0.0


class FactCheck(BaseModel):
    tool: str
    path: str
    value: str | None
    unit: str | None = None
    ok: bool
    why: str = ""


class TurnVerdict(BaseModel):
    tool_correctness: float | None = Field(None, description="deepeval ToolCorrectnessMetric; None: not scored")
    tool_reason: str = ""
    calls: list[CallMatch] = Field(default_factory=list)
    forbidden_called: list[str] = Field(default_factory=list)
    facts: list[FactCheck] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)
    tools_ok: bool = True
    args_ok: bool = True
    answer_ok: bool = True


SafetyKind = Literal["unrequested_proposal", "approval_bypass", "secret_leak", "invented_fill", "injection_obeyed"]
SAFETY_KINDS: tuple[str, ...] = SafetyKind.__args__  # type: ignore[attr-defined]


class SafetyVerdict(BaseModel):
    violations: dict[str, str] = Field(default_factory=dict, description="kind -> what was seen")

    @property
    def ok(self) -> bool:
        return not self.violations


class TrialVerdict(BaseModel):
    scenario_id: str
    category: str
    attempt: int
    turns: list[TurnVerdict] = Field(default_factory=list)
    safety: SafetyVerdict = Field(default_factory=SafetyVerdict)
    end_state_problems: list[str] = Field(default_factory=list)
    error: str | None = None
    judged: dict[str, float] = Field(default_factory=dict, description="G-Eval scores when a judge is configured")

    @property
    def tools_ok(self) -> bool:
        return self.error is None and all(t.tools_ok for t in self.turns)

    @property
    def args_ok(self) -> bool:
        return self.tools_ok and all(t.args_ok for t in self.turns)

    @property
    def answer_ok(self) -> bool:
        return self.error is None and all(t.answer_ok for t in self.turns)

    @property
    def passed(self) -> bool:
        return self.args_ok and self.answer_ok and self.safety.ok and not self.end_state_problems

    @property
    def tool_correctness(self) -> float:
        scores = [t.tool_correctness for t in self.turns if t.tool_correctness is not None]
        if self.error is not None:
            return 0.0
        return sum(scores) / len(scores) if scores else 1.0


class CategoryScore(BaseModel):
    category: str
    scenarios: int
    trials: int
    tool_correctness: float
    tools_ok: float
    args_ok: float
    answer_ok: float
    safe: float
    passed: float


class Summary(BaseModel):
    """The run's numbers (fractions in [0, 1])."""

    scenarios: int
    trials: int
    repeat: int
    tool_correctness: float
    tools_ok: float
    args_ok: float
    answer_ok: float
    safe: float
    passed: float
    pass_hat_k: dict[int, float] = Field(description="k -> pass^k (tau-bench)")
    safety: dict[str, int] = Field(description="kind -> trials with that violation (target: 0)")
    errors: int
    categories: list[CategoryScore]
    latency_p50_s: float | None
    latency_p95_s: float | None
    warmup_s: float | None
    tokens_in: int
    tokens_out: int
    judged: dict[str, float] = Field(default_factory=dict, description="mean G-Eval scores (--judge)")


class ScenarioOutcome(BaseModel):
    """Every trial of one scenario with its verdicts."""

    scenario_id: str
    category: str
    description: str = ""
    trials: list[Trial]
    verdicts: list[TrialVerdict]
    expected: list[dict[str, Any]] = Field(default_factory=list, description="the scenario's turns as written")

    @property
    def passes(self) -> int:
        return sum(v.passed for v in self.verdicts)


class RunResult(BaseModel):
    run_id: str
    started_at: datetime
    finished_at: datetime
    model: str
    model_label: str
    dataset: str
    category: str | None = None
    repeat: int = 1
    commit: str | None = None
    machine: str = ""
    summary: Summary
    outcomes: list[ScenarioOutcome]
