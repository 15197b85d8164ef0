"""`iqts backtest` and `iqts optimize` as a user runs them (in process, and the optimize workers as processes of
their own, on the test database), and bad input as one clear line naming the parameter."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest

from engine.research.optimize import study_storage
from engine.research.runs import get_run, reproduce
from engine.research.studies import get_study
from engine.settings import Settings
from engine.store.database import Database
from tests.integration.research.conftest import iqts, start_iqts
from ui.cli import main as cli_main
from ui.cli import research


def test_backtest_stores_a_run_and_writes_a_self_contained_report(
    settings: Settings, db: Database, sample_loaded: None, tmp_path: Path
) -> None:
    report = tmp_path / "out" / "report.html"
    done = iqts(
        settings,
        *("backtest", "sma_cross", "BTC/USD", "--timeframe", "1h", "--since", "2018-01-01", "--until", "2019-01-01"),
        *("--param", "fast=10", "--param", "slow=50", "--fee", "0.002", "--fill-at", "close"),
        *("--json", "--report", str(report), "--no-journal"),
    )
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)  # the research service's BacktestOut, as the MCP tool returns it
    assert run["run_id"].startswith("bt_") and run["params"] == {"fast": 10, "slow": 50}
    assert run["config"]["fee"] == 0.002 and run["config"]["fill_at"] == "close" and run["n_bars"] == 8760
    assert run["report"] == str(report)
    page = report.read_text()
    assert page.count("<svg") == 3 and "sma_cross" in page and run["run_id"] in page
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert get_run(db, run["run_id"]).created_by.startswith("cli")
    assert reproduce(db, run["run_id"]).identical


def test_optimize_then_two_worker_processes_share_the_study(
    settings: Settings, db: Database, sample_loaded: None, unique: str
) -> None:
    name = f"cli-{unique}"
    created = iqts(
        settings,
        *("optimize", "sma_cross", "BTC/USD", "-t", "1h", "--since", "2018-06-01", "--until", "2019-01-01"),
        *("--trials", "4", "--study", name, "--batch", "2", "--seed", "1", "--json", "--no-journal"),
        *("--walk-forward", "--windows", "2", "--wf-trials", "4"),
    )
    assert created.returncode == 0, created.stderr
    first = json.loads(created.stdout)
    assert first["optuna_name"] == name and first["n_trials"] == 4 and first["best_run_id"].startswith("bt_")
    assert len(first["walk_forward"]["windows"]) == 2 and first["overfitting"]["n_trials"] >= 1

    workers = [
        start_iqts(settings, "optimize", "worker", name, "--trials", "5", "--json", "--no-journal") for _ in "ab"
    ]
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr
        assert json.loads(stdout)["study_id"] == first["study_id"]

    storage = study_storage(db, "journal", name)
    assert storage is not None
    study = optuna.load_study(study_name=name, storage=storage)
    assert sorted(t.number for t in study.trials) == list(range(14))  # 4 + 5 + 5, each trial once
    record = get_study(db, first["study_id"])
    assert record.n_trials == 14 and record.status == "done" and record.walk_forward is not None


@contextmanager
def _argv(*args: str) -> Iterator[None]:
    saved = sys.argv
    sys.argv = ["iqts", *args]
    try:
        yield
    finally:
        sys.argv = saved


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["backtest", "nope", "BTC/USD"], "unknown strategy 'nope' (available:"),
        (["backtest", "sma_cross", "BTC/USD", "-p", "fast=1000"], "parameter 'fast' should be less than or equal"),
        (["backtest", "sma_cross", "BTC/USD", "-p", "fast=60", "-p", "slow=50"], "parameter 'slow' must be greater"),
        (["backtest", "sma_cross", "BTC/USD", "-p", "fast"], "--param: expected NAME=VALUE"),
        (["backtest", "sma_cross", "BTC/USD", "--since", "2031-01-01"], "empty data range"),
        (["backtest", "sma_cross", "BTC/USD", "--fee", "0.5"], "fee: should be less than 0.1"),
        (["backtest", "sma_cross", "BTC/USD", "--fill-at", "noon"], "fill_at: "),
        (["optimize", "sma_cross", "BTC/USD", "--objective", "sharp"], "objective: unknown metric 'sharp'"),
        (["optimize", "sma_cross", "BTC/USD", "-p", "fst=3"], "unknown parameter 'fst'"),
        (["optimize", "worker", "st_0000000000000000"], "no study 'st_0000000000000000'"),
        (["backtest", "show", "bt_nope"], "no backtest run 'bt_nope'"),
    ],
)
def test_bad_input_is_one_clear_line(
    db: Database,
    sample_loaded: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    expected: str,
) -> None:
    @contextmanager
    def test_database() -> Iterator[Database]:
        yield db

    monkeypatch.setattr(research, "database", test_database)
    with _argv(*args), pytest.raises(SystemExit) as exited:
        cli_main.main()
    assert exited.value.code not in (0, None, 70)  # an IQTS error, not an internal one
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert expected in lines[0]


def test_the_metrics_table_prints_money_without_scientific_notation(
    db: Database, sample_loaded: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    @contextmanager
    def test_database() -> Iterator[Database]:
        yield db

    monkeypatch.setattr(research, "database", test_database)
    monkeypatch.setenv("COLUMNS", "200")
    with _argv("backtest", "sma_cross", "BTC/USD", "-t", "1h", "--no-journal"), pytest.raises(SystemExit) as exited:
        cli_main.main()
    assert exited.value.code in (0, None)
    printed = capsys.readouterr().out
    [row] = [line for line in printed.splitlines() if "final_equity" in line]
    assert "e+" not in printed and "e-0" not in printed
    value = row.replace("│", " ").split()[-1]
    assert "," in value and value.replace(",", "").replace(".", "").isdigit()  # e.g. 49,340.12, not 4.934e+04
