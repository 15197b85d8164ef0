"""Prefill once: the local model's state after reading the fixed prefix (system prompt + tool catalogue) kept on disk.

Reading that prefix costs minutes on a busy 2-core machine (about 1,000 tokens at 5-30 tokens/s). llama.cpp can save a
slot's KV cache to a file and restore it in milliseconds (its server's ``/slots/0?action=save|restore``). The file
is named by a key over everything that decides those cached tokens: the model file (its pinned sha256, or path, size
and mtime for a file of the operator's), the context size and the prefix text. A restart with the same model and
the same tools restores it; any change misses and pays one prefill, which then writes its own file. At most
:data:`KEEP` files are kept (each is tens of MB), the least recently used go first.

Threads are chosen from a measured speed, not a guess: :func:`measure_threads` times a short fixed prompt on each
candidate thread count and records the estimated seconds of a typical turn (``threads.json`` beside the caches);
:func:`choose_threads` reads the fastest while that measurement is fresh.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path

from pydantic import BaseModel, Field

from engine.telemetry import get_logger

log = get_logger(__name__)

KEEP = 4
THREADS_FILE = "threads.json"
THREADS_FRESH_S = 3600.0
TYPICAL_PROMPT_TOKENS = 400  # what a turn reads beyond the cached prefix (the question, a tool result)
TYPICAL_ANSWER_TOKENS = 60  # what it writes (a tool call or a short answer)


def model_identity(path: str, sha256: str | None) -> str:
    """The pinned hash of a bundled model; for any other file its path, size and modification time."""
    if sha256:
        return f"sha256:{sha256}"
    try:
        st = os.stat(path)
    except OSError:
        return f"path:{path}"
    return f"path:{os.path.abspath(path)}:{st.st_size}:{st.st_mtime_ns}"


def prefix_key(model: str, context: int, prefix: str) -> str:
    """The cache file's stem for this model, context size and prefix text."""
    digest = hashlib.sha256(f"{model}\n{context}\n{prefix}".encode()).hexdigest()
    return f"prefix-{digest[:32]}"


def cache_file(directory: Path, key: str) -> Path:
    return directory / f"{key}.bin"


def touch(path: Path) -> None:
    """Mark a cache file as just used (the pruning order)."""
    now = time.time()
    os.utime(path, (now, now))


def prune(directory: Path, keep: int = KEEP) -> list[Path]:
    """Delete all but the ``keep`` most recently used cache files; returns the deleted ones."""
    files = sorted(directory.glob("prefix-*.bin"), key=lambda p: p.stat().st_mtime, reverse=True)
    removed = []
    for stale in files[keep:]:
        stale.unlink(missing_ok=True)
        removed.append(stale)
    return removed


class ThreadSample(BaseModel):
    threads: int
    prompt_tokens_per_s: float
    generation_tokens_per_s: float
    turn_estimate_s: float = Field(description="TYPICAL_PROMPT_TOKENS / prompt + TYPICAL_ANSWER_TOKENS / generation")


class ThreadChoice(BaseModel):
    threads: int
    measured_at: float
    cores: int
    load: float
    samples: list[ThreadSample]


def turn_estimate(prompt_tps: float, generation_tps: float) -> float:
    if prompt_tps <= 0 or generation_tps <= 0:
        return float("inf")
    return TYPICAL_PROMPT_TOKENS / prompt_tps + TYPICAL_ANSWER_TOKENS / generation_tps


def best(samples: list[ThreadSample]) -> ThreadSample:
    return min(samples, key=lambda s: (s.turn_estimate_s, s.threads))


def save_choice(directory: Path, samples: list[ThreadSample]) -> ThreadChoice:
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = 0.0
    choice = ThreadChoice(
        threads=best(samples).threads, measured_at=time.time(), cores=os.cpu_count() or 1, load=load, samples=samples
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / THREADS_FILE).write_text(choice.model_dump_json(indent=2))
    log.info("local_model.threads_measured", threads=choice.threads, samples=[s.model_dump() for s in samples])
    return choice


def load_choice(directory: Path, *, fresh_s: float = THREADS_FRESH_S) -> ThreadChoice | None:
    """The last measurement, if it is younger than ``fresh_s`` and was made on this many cores."""
    path = directory / THREADS_FILE
    try:
        choice = ThreadChoice.model_validate(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None
    if time.time() - choice.measured_at > fresh_s or choice.cores != (os.cpu_count() or 1):
        return None
    return choice


def thread_candidates() -> list[int]:
    cores = os.cpu_count() or 1
    return sorted({1, min(2, cores), min(4, cores)})


def choose_threads(directory: Path | None, fallback: int) -> int:
    """The fastest thread count of the last measurement in ``directory`` (of any age: every model of a process must
    pick the same count to share its engine; the warm-up measures again when it is stale); ``fallback`` without
    one."""
    choice = load_choice(directory, fresh_s=math.inf) if directory is not None else None
    return choice.threads if choice is not None else fallback
