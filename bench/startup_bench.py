"""Start-up time of the IQTS processes a person (or an IDE assistant) waits for, beside baselines of the same run.

Run: ``uv run python -m bench.startup_bench [--json] [--repeat N]`` or ``iqts bench startup``.

Rows, each the median of ``--repeat`` fresh subprocesses (a warm disk cache: one unmeasured run goes first):

* baselines: ``python -c pass`` (the interpreter), ``import mcp.server.fastmcp`` (the MCP SDK as it is imported
  by a server) and ``import typer`` (the CLI framework): what no IQTS change can go below;
* ``iqts --help``, ``iqts version``, ``iqts risk status`` (one database round trip; the embedded server is
  started once before timing, as it is on a machine where IQTS already ran);
* ``iqts mcp``: a real MCP client session over stdio (the SDK's ``stdio_client``): spawn to the ``initialize``
  answer, and to the ``tools/list`` answer.

``wall_s`` is what the person waits; ``cpu_s`` (user + system of the child) is what the process itself costs, which
a busy shared machine does not inflate. ``x_python`` is ``wall_s`` against the bare interpreter of the same run.
The targets (quiet machine): ``iqts mcp`` initialize <= 1.5 s, CLI commands <= 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Final

from pydantic import BaseModel

TARGET_MCP_INITIALIZE_S: Final = 1.5
TARGET_CLI_S: Final = 1.0
DEFAULT_REPEAT: Final = 3
CLI: Final = [sys.executable, "-m", "ui.cli.main"]


class StartupRow(BaseModel):
    name: str
    kind: str  # baseline | cli | mcp
    wall_s: float
    cpu_s: float | None
    x_python: float
    target_s: float | None
    runs: int


def _run_once(argv: Sequence[str], env: dict[str, str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=300, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[-400:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _measure(argv: Sequence[str], env: dict[str, str], repeat: int) -> tuple[float, float]:
    _run_once(argv, env)  # unmeasured: byte-code and disk cache, the embedded database started
    samples = [_run_once(argv, env) for _ in range(repeat)]
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


async def _mcp_session_once(env: dict[str, str]) -> tuple[float, float]:
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=CLI[0], args=[*CLI[1:], "mcp"], env=env)
    started = time.perf_counter()
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        initialized = time.perf_counter() - started
        await session.list_tools()
        listed = time.perf_counter() - started
    return initialized, listed


def _measure_mcp(env: dict[str, str], repeat: int) -> tuple[float, float]:
    asyncio.run(_mcp_session_once(env))
    samples = [asyncio.run(_mcp_session_once(env)) for _ in range(repeat)]
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def run_startup_bench(repeat: int = DEFAULT_REPEAT) -> list[StartupRow]:
    env = dict(os.environ)
    env.setdefault("IQTS_LOG_LEVEL", "WARNING")
    rows: list[StartupRow] = []
    python_s, python_cpu = _measure([sys.executable, "-c", "pass"], env, repeat)

    def add(name: str, kind: str, wall: float, cpu: float | None, target: float | None) -> None:
        rows.append(
            StartupRow(
                name=name,
                kind=kind,
                wall_s=round(wall, 3),
                cpu_s=None if cpu is None else round(cpu, 3),
                x_python=round(wall / python_s, 1) if python_s > 0 else 0.0,
                target_s=target,
                runs=repeat,
            )
        )

    add("python -c pass", "baseline", python_s, python_cpu, None)
    for name, code in (("import mcp.server.fastmcp", "import mcp.server.fastmcp"), ("import typer", "import typer")):
        wall, cpu = _measure([sys.executable, "-c", code], env, repeat)
        add(name, "baseline", wall, cpu, None)
    for args in (["--help"], ["version"], ["risk", "status"]):
        wall, cpu = _measure([*CLI, *args], env, repeat)
        add("iqts " + " ".join(args), "cli", wall, cpu, TARGET_CLI_S)
    initialized, listed = _measure_mcp(env, repeat)
    add("iqts mcp: initialize", "mcp", initialized, None, TARGET_MCP_INITIALIZE_S)
    add("iqts mcp: tools/list", "mcp", listed, None, None)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT)
    args = parser.parse_args()
    rows = run_startup_bench(args.repeat)
    if args.json:
        sys.stdout.write(json.dumps([r.model_dump() for r in rows], indent=2) + "\n")
        return
    for row in rows:
        sys.stdout.write(
            f"{row.name:<28} {row.wall_s:7.3f} s wall  {row.cpu_s if row.cpu_s is not None else '-':>6} s cpu  "
            f"x{row.x_python:<6} target {row.target_s if row.target_s is not None else '-'}\n"
        )


if __name__ == "__main__":
    main()
