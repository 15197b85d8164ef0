"""Run `iqts` in the test's process the way a user runs it: the argv goes through ``ui.cli.main.main`` (the one-line
error handler and its exit codes included), the settings are read from the environment, and stdout and stderr are
captured (as a pipe: no terminal, so JSON is printed plain).

A subprocess spends seconds importing the app and loading the embedding model before each command; in process they
load once per session. What a command changes for the whole process is put back when it returns: the cached
settings, the environment the test set, the root logger (``configure_logging``) and structlog's configuration. One
thing stays: a module logger first used during the command keeps that command's logging set-up (structlog caches
it), so ``structlog.testing.capture_logs`` would not see it; no test captures the loggers of the CLI commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import structlog

from engine.settings import Settings, get_settings


@dataclass(frozen=True)
class CliResult:
    """What a finished command left, shaped like ``subprocess.CompletedProcess`` (``returncode``, ``stdout``,
    ``stderr``) so tests read the same either way."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def settings_env(settings: Settings) -> dict[str, str]:
    """The variables that point a command at the test's state dir and database (what a user's shell would set)."""
    return {"IQTS_STATE_DIR": str(settings.state_dir), "IQTS_DB_NAME": settings.db_name}


@contextlib.contextmanager
def _process_state_restored(env: Mapping[str, str | None]) -> Iterator[None]:
    saved_env = {name: os.environ.get(name) for name in env}
    root = logging.getLogger()
    saved_root = (list(root.handlers), root.level)
    loggers = logging.root.manager.loggerDict.items()
    saved_levels = {name: logger.level for name, logger in loggers if isinstance(logger, logging.Logger)}
    saved_structlog = structlog.get_config()
    for name, value in env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    get_settings.cache_clear()
    try:
        yield
    finally:
        get_settings.cache_clear()
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        root.handlers[:], root.level = saved_root
        for name, level in saved_levels.items():
            logging.getLogger(name).setLevel(level)
        structlog.configure(**saved_structlog)


def _exit_code(code: Any) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")  # sys.exit("message"): the interpreter prints the message, the status is 1
    return 1


def run_iqts(*args: str, env: Mapping[str, str | None]) -> CliResult:
    """``iqts ARGS...`` in this process, with ``env`` set on top of its environment (a name mapped to None is unset
    for the command). Called from a coroutine, the command runs on a thread of its own and the caller waits for it,
    so its ``asyncio.run`` gets a loop of its own, as in a process of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run(args, env)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="iqts-cli") as pool:
        return pool.submit(_run, args, env).result()


def _run(args: tuple[str, ...], env: Mapping[str, str | None]) -> CliResult:
    from ui.cli.main import main

    stdout, stderr = io.StringIO(), io.StringIO()
    saved_argv = sys.argv
    with _process_state_restored(env), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        sys.argv = ["iqts", *args]
        try:
            main()
            code = 0
        except SystemExit as exited:
            code = _exit_code(exited.code)
        finally:
            sys.argv = saved_argv
    return CliResult(args=args, returncode=code, stdout=stdout.getvalue(), stderr=stderr.getvalue())
