"""Fixtures of the research-engine integration tests: the real sample in the test database and a slice of the
real BTC/USD hourly bars (2018-2019) small enough for many trials."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from engine.backtest.bars import Bars
from engine.research.data import DataSelection, resolve_and_load
from engine.settings import Settings
from engine.store.database import Database
from tests.support.cli import CliResult, run_iqts, settings_env

IQTS = [sys.executable, "-m", "ui.cli.main"]
SINCE_MS = 1_514_764_800_000  # 2018-01-01
UNTIL_MS = 1_546_300_800_000  # 2019-01-01


@pytest.fixture(scope="module")
def btc(db: Database, sample_loaded: None) -> tuple[DataSelection, Bars]:
    """BTC/USD 1h (Coinbase) over 2018: 8,760 real bars."""
    return resolve_and_load(db, "BTC/USD", timeframe="1h", start_ms=SINCE_MS, end_ms=UNTIL_MS)


def iqts(settings: Settings, *args: str) -> CliResult:
    """Run the CLI as a user does, on the test database: in process (``tests.support.cli``; a subprocess spent ~2 s
    importing the app), argv through ``ui.cli.main.main``, settings from the environment."""
    return run_iqts(*args, env=settings_env(settings))


def start_iqts(settings: Settings, *args: str) -> subprocess.Popen[str]:
    env = os.environ | {"IQTS_STATE_DIR": str(settings.state_dir), "IQTS_DB_NAME": settings.db_name}
    return subprocess.Popen([*IQTS, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
