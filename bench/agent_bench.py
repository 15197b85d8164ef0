"""How fast the agent answers on the embedded model: cold start, warm start after a restart, per-turn p50/p95, and
prompt and generation tokens/s. Run: ``uv run python -m bench.agent_bench [--json] [--prompts N]`` or
``iqts bench agent``.

Each phase runs in a fresh process (as ``iqts chat`` would after a restart), connected to a real ``iqts mcp`` over
stdio with the configured model (``IQTS_LLM``, default the bundled local model):

* ``cold start``: the prefix caches are deleted first; the seconds from process start until the model has read the
  system prompt and tool catalogue (``Copilot.ready``), then until the first answer;
* ``warm start``: a second fresh process with the caches the first one left: the same two figures;
* ``turn``: the hand prompt list (:mod:`bench.agent_prompts`) in the warm process, p50 and p95 of the seconds per
  question (each a new thread), and the prompt and generation tokens/s llama.cpp reported for every model call.

The targets (issue 13, 2 cores): time to first token after a restart <= 10 s, first answer on a fresh install
<= 90 s, p50 per turn <= 15 s, p95 <= 45 s. Thread counts are measured first (``threads`` rows) when the code has
the measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel

from bench.agent_prompts import PROMPTS

RESULT: Final = "iqts-agent-bench-result "
TARGETS: Final = {
    "cold start: first answer": 90.0,
    "warm start: ready": 10.0,
    "turn p50": 15.0,
    "turn p95": 45.0,
}


class AgentRow(BaseModel):
    name: str
    value: float | None
    unit: str
    target: float | None = None
    note: str = ""


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(0, math.ceil(q * len(ordered)) - 1)
    return ordered[rank]


async def _child(prompts: list[str], started: float) -> dict[str, Any]:
    """One process's run: connect over stdio, wait for the warm-up, ask each prompt in a thread of its own."""
    from langchain_core.messages import AIMessage

    from agent.events import FinalEvent, TokenEvent, ToolStartEvent
    from agent.mcp import McpStdio
    from agent.session import Copilot
    from engine.settings import get_settings

    settings = get_settings()
    out: dict[str, Any] = {"turns": [], "calls": []}
    async with Copilot.connect(settings, mcp=McpStdio(), checkpoint_url=None) as copilot:
        out["connected_s"] = time.time() - started
        await copilot.ready()
        out["ready_s"] = time.time() - started
        out["model"] = copilot.model_label
        out["threads"] = getattr(copilot._deps.model, "threads", None)
        for prompt in prompts:
            thread = Copilot.new_thread_id()
            asked = time.monotonic()
            first_token: float | None = None
            tools: list[str] = []
            answer = ""
            async for event in copilot.ask(thread, prompt):
                if isinstance(event, TokenEvent) and first_token is None:
                    first_token = time.monotonic() - asked
                if isinstance(event, ToolStartEvent):
                    tools.append(event.tool)
                if isinstance(event, FinalEvent):
                    answer = event.text
            seconds = time.monotonic() - asked
            out["turns"].append(
                {"prompt": prompt, "seconds": seconds, "first_token_s": first_token, "tools": tools, "answer": answer}
            )
            if "first_answer_s" not in out:
                out["first_answer_s"] = time.time() - started
            snapshot = await copilot._graph.aget_state({"configurable": {"thread_id": thread}})
            for message in (snapshot.values or {}).get("messages", []):
                if isinstance(message, AIMessage):
                    timings = message.response_metadata.get("timings") or {}
                    if timings:
                        out["calls"].append(timings)
    return out


def _spawn(prompts: list[str], env: dict[str, str]) -> dict[str, Any]:
    started = time.time()
    argv = [sys.executable, "-m", "bench.agent_bench", "--child", json.dumps(prompts), "--started", str(started)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the agent bench child failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    line = next(line for line in reversed(done.stdout.splitlines()) if line.startswith(RESULT))
    result: dict[str, Any] = json.loads(line.removeprefix(RESULT))
    return result


def _cache_dir(state_dir: Path) -> Path:
    return state_dir / "models" / "prompt-cache"


def _measure_threads() -> list[AgentRow]:
    try:
        from agent.models import prefill
        from agent.models.factory import make_chat_model, prompt_cache_dir
        from agent.models.local import LocalChatModel, measure_threads
    except ImportError:  # code from before the measurement
        return []
    from engine.settings import get_settings

    settings = get_settings()
    if settings.agent.llm_threads is not None:
        return []
    model = make_chat_model(settings.llm, settings)
    if not isinstance(model, LocalChatModel):
        return []
    samples = measure_threads(model.model_path, prefill.thread_candidates())
    choice = prefill.save_choice(prompt_cache_dir(settings), samples)
    rows = []
    for sample in samples:
        chosen = " (chosen)" if sample.threads == choice.threads else ""
        rows.append(
            AgentRow(
                name=f"threads={sample.threads}",
                value=sample.turn_estimate_s,
                unit="s/turn est.",
                note=f"prompt {sample.prompt_tokens_per_s} tok/s, generation {sample.generation_tokens_per_s} tok/s"
                f"{chosen}",
            )
        )
    return rows


def _load_sample(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "ui.cli.main", "data", "load-sample"],
        env=env,
        capture_output=True,
        timeout=900,
        check=True,
    )


def run_agent_bench(prompts: int = len(PROMPTS)) -> list[AgentRow]:
    from engine.settings import get_settings

    settings = get_settings()
    env = dict(os.environ)
    env.setdefault("IQTS_LOG_LEVEL", "WARNING")
    _load_sample(env)
    rows = _measure_threads()
    for stale in _cache_dir(settings.state_dir).glob("prefix-*.bin"):
        stale.unlink()
    chosen = list(PROMPTS[: max(1, prompts)])
    cold = _spawn(chosen[:1], env)
    warm = _spawn(chosen, env)
    label = f"{warm.get('model')} threads={warm.get('threads')}"
    rows += [
        AgentRow(name="cold start: ready", value=round(cold["ready_s"], 2), unit="s", note="no prefix cache"),
        AgentRow(
            name="cold start: first answer",
            value=round(cold["first_answer_s"], 2),
            unit="s",
            target=TARGETS["cold start: first answer"],
            note=chosen[0],
        ),
        AgentRow(
            name="warm start: ready",
            value=round(warm["ready_s"], 2),
            unit="s",
            target=TARGETS["warm start: ready"],
            note="a restart, caches present",
        ),
        AgentRow(name="warm start: first answer", value=round(warm["first_answer_s"], 2), unit="s", note=chosen[0]),
    ]
    rows += [
        AgentRow(
            name=f"turn {i + 1}",
            value=round(t["seconds"], 2),
            unit="s",
            note=f"{t['prompt']} -> {', '.join(t['tools']) or 'no tool'}",
        )
        for i, t in enumerate(warm["turns"])
    ]
    seconds = [t["seconds"] for t in warm["turns"]]
    firsts = [t["first_token_s"] for t in warm["turns"] if t["first_token_s"] is not None]
    rows += [
        AgentRow(name="turn p50", value=round(statistics.median(seconds), 2), unit="s", target=TARGETS["turn p50"]),
        AgentRow(name="turn p95", value=round(_percentile(seconds, 0.95), 2), unit="s", target=TARGETS["turn p95"]),
        AgentRow(
            name="first answer token p50",
            value=round(statistics.median(firsts), 2) if firsts else None,
            unit="s",
            note=f"{len(firsts)} of {len(seconds)} turns streamed words",
        ),
    ]
    calls = warm["calls"]
    prompt_n = sum(float(c.get("prompt_n") or 0) for c in calls)
    prompt_ms = sum(float(c.get("prompt_ms") or 0) for c in calls)
    gen_n = sum(float(c.get("predicted_n") or 0) for c in calls)
    gen_ms = sum(float(c.get("predicted_ms") or 0) for c in calls)
    cached = sum(float(c.get("cache_n") or 0) for c in calls)
    rows += [
        AgentRow(
            name="prompt tokens/s",
            value=round(prompt_n / (prompt_ms / 1000), 2) if prompt_ms else None,
            unit="tok/s",
            note=f"{int(prompt_n)} read, {int(cached)} from the cache, {len(calls)} model calls",
        ),
        AgentRow(
            name="generation tokens/s",
            value=round(gen_n / (gen_ms / 1000), 2) if gen_ms else None,
            unit="tok/s",
            note=f"{int(gen_n)} generated; {label}",
        ),
    ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--prompts", type=int, default=len(PROMPTS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--started", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        result = asyncio.run(_child(json.loads(args.child), args.started or time.time()))
        sys.stdout.write(RESULT + json.dumps(result, default=str) + "\n")
        return
    rows = run_agent_bench(args.prompts)
    if args.json:
        sys.stdout.write(json.dumps([r.model_dump() for r in rows], indent=2) + "\n")
        return
    for row in rows:
        value = "-" if row.value is None else f"{row.value:g}"
        target = "" if row.target is None else f"  target {row.target:g}"
        sys.stdout.write(f"{row.name:<26} {value:>9} {row.unit:<12}{target}  {row.note}\n")


if __name__ == "__main__":
    main()
