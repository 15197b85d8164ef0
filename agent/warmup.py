"""Warm the local model up once per process, in the background, before anyone asks (``iqts up`` starts the chat,
the chat starts this).

The warm-up is an ordinary client: it measures thread counts when no fresh measurement exists, then opens a
:class:`~agent.session.Copilot` over stdio (``iqts mcp``, the same tool catalogue every session gets) and waits for
its prefill, which restores the prefix cache file when one matches. The engine is shared by the process, so the
sessions that open afterwards find the prefix already in its cache. :func:`status` says how far it is, for the chat's
"warming up the local model (n s)" notice.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from pydantic import BaseModel

from engine.settings import Settings
from engine.telemetry import get_logger

log = get_logger(__name__)


class WarmStatus(BaseModel):
    started_at: float
    finished_s: float | None = None
    error: str | None = None

    @property
    def ready(self) -> bool:
        return self.finished_s is not None or self.error is not None

    def elapsed_s(self, now: float | None = None) -> float:
        if self.finished_s is not None:
            return self.finished_s
        return (now if now is not None else time.time()) - self.started_at


_status: list[WarmStatus] = []
_task: list[asyncio.Task[None]] = []


def status() -> WarmStatus | None:
    """This process's warm-up, if one was started."""
    return _status[0] if _status else None


def notice(seconds: float, *, ready: bool) -> str:
    """The chat's line about the warm-up."""
    if ready:
        return f"The local model is ready (warm-up took {seconds:.0f} s)."
    return f"warming up the local model ({seconds:.0f} s) ... the first answer waits for it."


def uses_local_model(settings: Settings) -> bool:
    from agent.models.spec import ModelSpecError, parse_spec

    try:
        return parse_spec(settings.llm).provider == "local"
    except ModelSpecError:
        return False


def weights_present(settings: Settings) -> bool:
    """The local model's file is there already: the warm-up never downloads it (``scripts/bootstrap.sh model`` or
    the first question does)."""
    from agent.models.fetch import ARTIFACTS, QWEN_CODER_1_5B, SMOLLM2_135M, is_fetched, models_dir
    from agent.models.spec import parse_spec

    if settings.agent.llm_model_path:
        return Path(settings.agent.llm_model_path).is_file()
    name = parse_spec(settings.llm).model
    artifact = {"smollm2": SMOLLM2_135M}.get(name) or ARTIFACTS.get(name) or QWEN_CODER_1_5B
    return is_fetched(artifact, models_dir(settings))


def start(settings: Settings) -> WarmStatus | None:
    """Start the warm-up (once per process; None when the configured model needs none, or is not fetched yet)."""
    if _status:
        return _status[0]
    if not uses_local_model(settings):
        return None
    if not weights_present(settings):
        log.info("agent.warm_up_skipped", reason="the local model is not fetched yet")
        return None
    state = WarmStatus(started_at=time.time())
    _status.append(state)
    _task.append(asyncio.create_task(_run(settings, state), name="iqts-local-model-warm-up"))
    return state


async def _run(settings: Settings, state: WarmStatus) -> None:
    try:
        await warm(settings)
    except Exception as error:  # the sessions still work: each then pays its own prefill
        state.error = str(error)[:300]
        log.warning("agent.warm_up_failed", error=state.error)
    else:
        state.finished_s = time.time() - state.started_at
        log.info("agent.warm_up_done", s=round(state.finished_s, 2))


async def warm(settings: Settings) -> float | None:
    """Measure threads if needed, then connect as any client would and wait for the prefix; the seconds it took."""
    from agent.mcp import McpStdio
    from agent.models import prefill
    from agent.models.factory import describe_model, make_chat_model, prompt_cache_dir
    from agent.models.local import LocalChatModel, measure_threads
    from agent.session import Copilot

    started = time.monotonic()
    model = await asyncio.to_thread(make_chat_model, settings.llm, settings)
    directory = prompt_cache_dir(settings)
    if (
        isinstance(model, LocalChatModel)
        and settings.agent.llm_threads is None
        and prefill.load_choice(directory) is None
    ):
        samples = await asyncio.to_thread(measure_threads, model.model_path, prefill.thread_candidates())
        choice = prefill.save_choice(directory, samples)
        model = model.model_copy(update={"threads": choice.threads})
    async with Copilot.connect(
        settings, mcp=McpStdio(), checkpoint_url=None, model=model, model_info=describe_model(settings.llm, settings)
    ) as copilot:
        await copilot.ready()
    return time.monotonic() - started
