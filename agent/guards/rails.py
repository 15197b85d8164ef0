"""guardrails-ai, offline: the answer checks of :mod:`agent.guards.answers` run as guardrails validators.

guardrails imports slowly (about 5 s) and phones home unless told not to, so it is imported only when a final answer
reports a proposal, and only after the process is prepared:

* ``LITELLM_LOCAL_MODEL_COST_MAP=True`` (litellm, which guardrails pulls in, fetches a cost map at import otherwise);
* ``NLTK_DATA`` points at ``<state_dir>/nltk_data`` (if nltk is installed, guardrails would download punkt at
  import; the folder carries an empty ``tokenizers/punkt`` marker: IQTS never uses guardrails' sentence splitter);
* in code, never in the user's home: guardrails' settings get ``enable_metrics=False`` and
  ``use_remote_inferencing=False``, tracing is disabled, every Guard is configured with metrics off, and each
  validator runs locally (``use_local=True``).

If guardrails cannot be imported, :func:`check_answer` runs the same plain functions and says so.
"""

from __future__ import annotations

import os
import threading
import warnings
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from agent.guards.answers import (
    AnswerCheck,
    ProposalSummary,
    check_answer_plain,
    check_no_false_claims,
    check_no_invented_numbers,
)
from agent.guards.figures import Figure, FigureRepair, repair_figures
from engine.telemetry import get_logger

log = get_logger(__name__)

_lock = threading.Lock()
_state: dict[str, Any] = {"runner": None, "figures": None, "unavailable": None}


def prepare_offline(state_dir: Path) -> None:
    """Environment for an offline, silent guardrails import (setdefault: an operator's choice wins)."""
    nltk_data = state_dir / "nltk_data"
    (nltk_data / "tokenizers" / "punkt").mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("NLTK_DATA", str(nltk_data))
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("GUARDRAILS_PROCESS_COUNT", "1")


def _build_runner() -> Any:
    from guardrails import Guard, OnFailAction
    from guardrails.classes.rc import RC
    from guardrails.settings import settings as rails_settings
    from guardrails.validator_base import FailResult, PassResult, Validator, register_validator

    offline_rc = RC(enable_metrics=False, use_remote_inferencing=False)
    rails_settings.rc = offline_rc
    rails_settings.disable_tracing = True

    class OfflineGuard(Guard):  # type: ignore[misc]
        """A Guard that never reads ~/.guardrailsrc: its configuration is the offline one above."""

        def _load_rc(self) -> None:
            rails_settings.rc = offline_rc

    @register_validator(name="iqts/no-invented-numbers", data_type="string")  # type: ignore[misc]
    class NoInventedNumbers(Validator):  # type: ignore[misc]
        def _validate(self, value: Any, metadata: dict[str, Any]) -> Any:
            failure = check_no_invented_numbers(str(value), metadata["sources"])
            return FailResult(error_message=failure) if failure else PassResult()

    @register_validator(name="iqts/no-false-execution-claims", data_type="string")  # type: ignore[misc]
    class NoFalseClaims(Validator):  # type: ignore[misc]
        def _validate(self, value: Any, metadata: dict[str, Any]) -> Any:
            failure = check_no_false_claims(str(value), metadata["proposals"])
            return FailResult(error_message=failure) if failure else PassResult()

    def run(answer: str, proposals: list[ProposalSummary], sources: set[Decimal]) -> AnswerCheck:
        guard = OfflineGuard(name="iqts-proposal-answer")
        guard.configure(allow_metrics_collection=False)
        guard.use(  # one call: each `use` replaces the validators set before it
            NoInventedNumbers(on_fail=OnFailAction.NOOP, use_local=True),
            NoFalseClaims(on_fail=OnFailAction.NOOP, use_local=True),
        )
        outcome = guard.validate(answer, metadata={"sources": sources, "proposals": proposals})
        failures = [
            str(s.failure_reason)
            for s in (outcome.validation_summaries or [])
            if s.validator_status == "fail" and s.failure_reason
        ]
        return AnswerCheck(
            passed=bool(outcome.validation_passed) and not failures, failures=failures, validator="guardrails-ai"
        )

    @register_validator(name="iqts/figures-from-tools", data_type="string")  # type: ignore[misc]
    class FiguresFromTools(Validator):  # type: ignore[misc]
        """Each figure of the answer is a tool result's, at its scale: otherwise FIX replaces or removes it."""

        def _validate(self, value: Any, metadata: dict[str, Any]) -> Any:
            repair = repair_figures(str(value), metadata["figures"], metadata["sources"])
            if not repair.changed:
                return PassResult()
            return FailResult(error_message=repair.describe(), fix_value=repair.text)

    def figures(answer: str, rendered: list[Figure], sources: set[Decimal]) -> FigureCheck:
        guard = OfflineGuard(name="iqts-answer-figures")
        guard.configure(allow_metrics_collection=False)
        guard.use(FiguresFromTools(on_fail=OnFailAction.FIX, use_local=True))
        metadata: dict[str, Any] = {"figures": rendered, "sources": sources}
        outcome = guard.validate(answer, metadata=metadata)
        text = outcome.validated_output if isinstance(outcome.validated_output, str) else answer
        repair = repair_figures(answer, rendered, sources) if text != answer else None  # what the FIX did, said
        return FigureCheck(text=text, repair=repair, validator="guardrails-ai")

    _state["figures"] = figures
    return run


class FigureCheck(BaseModel):
    """The answer after the figure check (``repair`` says what was replaced or removed)."""

    text: str
    repair: FigureRepair | None = None
    validator: Literal["guardrails-ai", "python"] = "python"


def _runner() -> Any:
    with _lock:
        if _state["runner"] is None and _state["unavailable"] is None:
            try:
                with warnings.catch_warnings():  # guardrails' CLI module warns about typer options at import
                    warnings.simplefilter("ignore", DeprecationWarning)
                    _state["runner"] = _build_runner()
            except ImportError as error:
                _state["unavailable"] = str(error)
                log.warning("guards.guardrails_unavailable", error=str(error))
    return _state["runner"]


def check_figures(answer: str, figures: list[Figure], sources: set[Decimal], *, state_dir: Path) -> FigureCheck:
    """Repair the answer's figures against the rendered tool results (guardrails-ai's FIX when importable, the same
    repair otherwise)."""
    prepare_offline(state_dir)
    if _runner() is None:
        repair = repair_figures(answer, figures, sources)
        return FigureCheck(text=repair.text, repair=repair if repair.changed else None, validator="python")
    result: FigureCheck = _state["figures"](answer, figures, sources)
    return result


def check_answer(
    answer: str, proposals: list[ProposalSummary], sources: set[Decimal], *, state_dir: Path
) -> AnswerCheck:
    """Validate a final answer that reports proposals (guardrails-ai when importable, the same checks otherwise)."""
    prepare_offline(state_dir)
    runner = _runner()
    if runner is None:
        return check_answer_plain(answer, proposals, sources)
    result: AnswerCheck = runner(answer, proposals, sources)
    return result
