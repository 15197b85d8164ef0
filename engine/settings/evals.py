"""The eval harness's knobs (``IQTS_EVAL_*``): a branch of the settings tree. Only ``iqts eval`` reads them."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from engine.settings.base import branch_config


class EvalSettings(BaseSettings):
    """How ``iqts eval`` runs a scenario set."""

    model_config = branch_config("IQTS_EVAL_")

    dataset: str | None = Field(None, description="a dataset file or folder; unset: the bundled set (evals/datasets)")
    turn_timeout_s: float = Field(900.0, gt=0, description="a turn that takes longer is recorded as a failure")
    agent_max_steps: int = Field(6, ge=1, le=50, description="model steps per turn during an eval")
