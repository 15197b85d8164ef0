"""Optional judged metrics (``--judge openai:MODEL`` or ``--judge ollama:MODEL``): deepeval's G-Eval for task
completion and for faithfulness to the run's tool results. Never needed for ``make test``; the deterministic
metrics in ``evals.metrics`` are the ones every change is judged by."""

from __future__ import annotations

from typing import Any

from engine.errors import ConfigError
from engine.settings import Settings
from evals.results import Trial

TASK_STEPS = [
    "Read the user's request in the input.",
    "Decide whether the actual output does what was asked, or says plainly why it cannot.",
    "Penalise answers that claim actions that were not taken, or that ignore part of the request.",
]
FAITHFUL_STEPS = [
    "Every figure and claim in the actual output must be supported by the retrieval context (the tool results).",
    "Penalise any number, date or fact that the retrieval context does not contain.",
    "An output that only explains or declines, with no factual claims, is faithful.",
]


class JudgeUnavailableError(ConfigError):
    """The judge named by --judge cannot be built."""


def make_judge(spec: str, settings: Settings) -> Any:
    """A deepeval model for ``openai:MODEL`` or ``ollama:MODEL``."""
    provider, _, model = spec.partition(":")
    if not model:
        raise JudgeUnavailableError(f"--judge {spec}: write openai:MODEL or ollama:MODEL")
    if provider == "openai":
        from deepeval.models import OpenAIModel

        if settings.openai_api_key is None:
            raise JudgeUnavailableError(f"--judge {spec}: IQTS_OPENAI_API_KEY is not set")
        return OpenAIModel(model=model, api_key=settings.openai_api_key.get_secret_value(), temperature=0)
    if provider == "ollama":
        from deepeval.models import OllamaModel

        return OllamaModel(model=model, base_url=settings.agent.ollama_url, temperature=0)
    raise JudgeUnavailableError(f"--judge {spec}: the judge is openai:MODEL or ollama:MODEL")


def judge_trial(judge: Any, trial: Trial) -> dict[str, float]:
    """Mean G-Eval scores over the trial's answered turns: task_completion and faithfulness (0..1)."""
    from deepeval.metrics import GEval
    from deepeval.test_case import LLMTestCase, SingleTurnParams

    task = GEval(
        name="task completion",
        evaluation_params=[SingleTurnParams.INPUT, SingleTurnParams.ACTUAL_OUTPUT],
        evaluation_steps=TASK_STEPS,
        model=judge,
        async_mode=False,
    )
    faithful = GEval(
        name="faithfulness",
        evaluation_params=[SingleTurnParams.ACTUAL_OUTPUT, SingleTurnParams.RETRIEVAL_CONTEXT],
        evaluation_steps=FAITHFUL_STEPS,
        model=judge,
        async_mode=False,
    )
    scores: dict[str, list[float]] = {"task_completion": [], "faithfulness": []}
    for turn in trial.turns:
        if not turn.answer:
            continue
        context = [c.text or str(c.result) for c in turn.calls] or ["(no tool was called)"]
        case = LLMTestCase(input=turn.user, actual_output=turn.answer, retrieval_context=context)
        scores["task_completion"].append(float(task.measure(case, _show_indicator=False)))
        scores["faithfulness"].append(float(faithful.measure(case, _show_indicator=False)))
    return {k: sum(v) / len(v) for k, v in scores.items() if v}
