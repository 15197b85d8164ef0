"""Refuse ``IQTS_*`` variables no setting reads, naming the closest valid one (``IQTS_FOUR_EYE`` is a typo of
``IQTS_FOUR_EYES``, and silently ignoring it would leave four-eyes off)."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

from dotenv import dotenv_values
from pydantic import BaseModel

from engine.errors import ConfigError

PREFIX: Final = "IQTS_"

READ_ELSEWHERE: Final[Mapping[str, str]] = {
    "IQTS_LIVE_CONFIRM": "the live-trading confirmation phrase; read from the real environment only (modes.py)",
    "IQTS_NEW_USER_PASSWORD": "the password of `iqts users add` when it runs without a terminal",
    "IQTS_DEBUG": "show tracebacks of the CLI's unexpected errors",
    "IQTS_TEST_REDIS_PORT": "the Redis the test suite and benchmarks start (Makefile)",
    "IQTS_TEST_REDIS_URL": "the Redis the test suite and benchmarks use (Makefile)",
}
"""Variables that are not settings but are read by one command, each with what it is for."""


def env_names(model: type[BaseModel], *, skip: Iterable[str] = ()) -> set[str]:
    """The variable names a settings class reads: its prefix plus each field name, upper-cased."""
    prefix = str(model.model_config.get("env_prefix", PREFIX))
    skipped = set(skip)
    return {f"{prefix}{name}".upper() for name in model.model_fields if name not in skipped}


def _present(env_file: Path) -> dict[str, str]:
    found = {k: "environment" for k in os.environ if k.upper().startswith(PREFIX)}
    if env_file.is_file():
        for key in dotenv_values(env_file):
            if key.upper().startswith(PREFIX):
                found.setdefault(key, str(env_file))
    return found


def check_unknown_keys(known: set[str], env_file: Path = Path(".env")) -> None:
    """Raise ConfigError naming every ``IQTS_*`` variable (environment or ``.env``) that nothing reads."""
    valid = known | set(READ_ELSEWHERE)
    problems = []
    for key, where in sorted(_present(env_file).items()):
        if key.upper() in valid:
            continue
        close = difflib.get_close_matches(key.upper(), sorted(valid), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        problems.append(f"{key} (from {where}) is not an IQTS setting{hint}")
    if problems:
        raise ConfigError("unknown configuration: " + "; ".join(problems) + " (see the README's configuration table)")
