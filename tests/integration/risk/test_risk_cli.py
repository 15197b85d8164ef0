"""`iqts risk` as a user runs it (argv through ``ui.cli.main.main``, settings from the environment), on the real
database; in process (``tests.support.cli``), which spares each command the app's import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.audit import entries
from engine.risk.killswitch import status
from engine.risk.policy import load_default_policy
from engine.risk.store import active_version
from engine.settings import Settings
from engine.store.database import Database
from tests.integration.risk.conftest import ApprovalFactory
from tests.support.cli import CliResult, run_iqts, settings_env

BUNDLED = load_default_policy().version

pytestmark = pytest.mark.usefixtures("clean_risk_state")


def _iqts(settings: Settings, *args: str) -> CliResult:
    # no IQTS_REDIS_URL: the in-process bus, so the broadcast goes nowhere outside the command
    return run_iqts(*args, env=settings_env(settings) | {"IQTS_REDIS_URL": None})


def _iqts_together(settings: Settings, *commands: list[str]) -> list[CliResult]:
    """Independent commands, one after the other in the order given."""
    return [_iqts(settings, *args) for args in commands]


def _ok(result: CliResult) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def _one_line_error(result: CliResult, expected: str) -> None:
    assert result.returncode != 0
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_engage_status_and_release_with_an_approval(
    settings: Settings, db: Database, make_approval: ApprovalFactory, unique: str
) -> None:
    engaged = _ok(_iqts(settings, "risk", "engage", "--reason", f"cli drill {unique}", "--by", "dave"))
    assert "kill switch ENGAGED by dave" in engaged
    assert status(db).engaged and status(db).reason == f"cli drill {unique}"
    assert entries(db, subject="kill_switch", limit=1)[0].actor == "dave"

    shown, refused = _iqts_together(
        settings, ["risk", "status", "--json"], ["risk", "release", "--approval", f"nope-{unique}"]
    )
    report = json.loads(_ok(shown))
    assert report["kill_switch"]["engaged"] is True and report["kill_switch"]["by"] == "dave"
    assert report["policy_version"] == BUNDLED and report["breakers"] == [] and report["accounts"] == []
    _one_line_error(refused, f"no approval nope-{unique}")
    assert status(db).engaged

    approval_id = make_approval()
    released = _ok(_iqts(settings, "risk", "release", "--approval", approval_id, "--by", "erin"))
    assert f"released by erin with approval {approval_id}" in released
    assert not status(db).engaged


def test_policy_set_show_and_list(settings: Settings, db: Database, unique: str, tmp_path: Path) -> None:
    default = _ok(_iqts(settings, "risk", "policy", "show"))
    assert default.startswith("# IQTS default risk policy") and "max_order_notional: 5000" in default

    version = f"cli-{unique}"
    body = f'# tightened for the test\nversion: "{version}"\ndefaults:\n  max_order_notional: 123.45\n'
    path, changed = tmp_path / "policy.yaml", tmp_path / "changed.yaml"
    path.write_text(body)
    changed.write_text(body.replace("123.45", "999"))
    assert f"risk policy version {version} saved and active" in _ok(_iqts(settings, "risk", "policy", "set", str(path)))
    assert active_version(db) == version
    active, old, listing, conflict = _iqts_together(
        settings,
        ["risk", "policy", "show"],
        ["risk", "policy", "show", "--version", str(BUNDLED), "--json"],
        ["risk", "policy", "list", "--json"],
        ["risk", "policy", "set", str(changed)],
    )
    assert _ok(active) == body  # exactly as saved, comments included
    shown = json.loads(_ok(old))
    assert shown["version"] == str(BUNDLED) and shown["active"] is False
    assert shown["policy"]["defaults"]["max_order_notional"] == "5000"
    listed = {p["version"]: p["active"] for p in json.loads(_ok(listing))}
    assert listed[version] is True and listed[str(BUNDLED)] is False
    _one_line_error(conflict, "already stored with different content")
    assert active_version(db) == version
