"""The optional judged metrics: deepeval's G-Eval driven through a judge double (a stand-in for the judge model,
which is never ours), and clear one-line errors for judges that cannot be built."""

from __future__ import annotations

import json
from typing import Any

import pytest
from deepeval.models import DeepEvalBaseLLM

from engine.settings import load_settings
from evals.judge import JudgeUnavailableError, judge_trial, make_judge
from evals.results import CallRecord, Trial, TurnRecord


class FixedJudge(DeepEvalBaseLLM):  # type: ignore[no-untyped-call]
    """Answers every G-Eval prompt with the same score; records the prompts."""

    def __init__(self, score: int) -> None:
        self.score = score
        self.prompts: list[str] = []
        super().__init__(model="fixed-judge")

    def load_model(self, *args: Any, **kwargs: Any) -> Any:
        return self

    def generate(self, prompt: str, *args: Any, **kwargs: Any) -> str:
        self.prompts.append(prompt)
        return json.dumps({"score": self.score, "reason": "fixed"})

    async def a_generate(self, prompt: str, *args: Any, **kwargs: Any) -> str:
        return self.generate(prompt)

    def get_model_name(self, *args: Any, **kwargs: Any) -> str:
        return "fixed judge"


def test_g_eval_scores_each_answered_turn() -> None:
    trial = Trial(
        scenario_id="j",
        category="market_data",
        turns=[
            TurnRecord(
                user="BTC price?",
                answer="BTC is 43210.5",
                calls=[CallRecord(tool="get_ticker", text='{"last": 43210.5}')],
            ),
            TurnRecord(user="buy 1 BTC", answer="", pending_approval={"summary": "pending"}),
        ],
    )
    judge = FixedJudge(10)
    scores = judge_trial(judge, trial)
    assert scores == {"task_completion": 1.0, "faithfulness": 1.0}
    assert any("43210.5" in p for p in judge.prompts)  # the tool result is the faithfulness context
    assert judge_trial(FixedJudge(0), trial) == {"task_completion": 0.0, "faithfulness": 0.0}


def test_a_judge_that_cannot_be_built_is_one_line() -> None:
    settings = load_settings()
    with pytest.raises(JudgeUnavailableError, match="openai:MODEL or ollama:MODEL"):
        make_judge("anthropic:claude", settings)
    with pytest.raises(JudgeUnavailableError, match="write openai:MODEL"):
        make_judge("openai", settings)
    if settings.openai_api_key is None:
        with pytest.raises(JudgeUnavailableError, match="IQTS_OPENAI_API_KEY is not set"):
            make_judge("openai:gpt-4o-mini", settings)
