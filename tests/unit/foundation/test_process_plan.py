"""The process plan: every deployment shape runs each duty exactly once, and the commands' help comes from it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ui.cli.main import app
from ui.process.plan import BY_DUTY, COMMANDS, DEPLOYMENTS, SERVICES, Duty, singletons

REPO = Path(__file__).resolve().parents[3]


def _coverage(commands: tuple[str, ...]) -> Counter[Duty]:
    return Counter(duty for command in commands for duty in COMMANDS[command])


def test_every_duty_is_a_listed_service() -> None:
    assert {s.duty for s in SERVICES} == set(Duty)
    assert set(singletons()) == {
        Duty.RISK_MONITOR,
        Duty.APPROVAL_EXPIRY,
        Duty.NOTIFIER,
        Duty.AUDIT_ANCHOR,
        Duty.JOURNAL,
    }


@pytest.mark.parametrize("shape", sorted(DEPLOYMENTS))
def test_each_deployment_shape_runs_each_duty_exactly_once(shape: str) -> None:
    assert _coverage(DEPLOYMENTS[shape]) == Counter(set(Duty)), shape


def test_the_compose_file_is_the_split_shape() -> None:
    """docker-compose.yml's long-running iqts services are exactly the split's commands (one each)."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    commands = []
    for name, service in compose["services"].items():
        command = service.get("command")
        if not command or command[0] != "iqts" or name == "migrate":
            continue
        commands.append(command[1])
    assert sorted(commands) == sorted(DEPLOYMENTS["split"])
    assert _coverage(tuple(commands)) == Counter(set(Duty))


def test_the_singletons_run_in_the_worker_not_the_api() -> None:
    """Before the plan, `iqts api` + `iqts worker` ran neither the risk monitor nor expiry nor the notifier."""
    assert set(singletons()) <= set(COMMANDS["worker"])
    assert not set(singletons()) & set(COMMANDS["api"])


@pytest.mark.parametrize("command", ["up", "api", "worker", "chat"])
def test_help_lists_the_duties_of_the_plan(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.replace("│", " ").split())  # rich wraps and boxes the help
    for duty in COMMANDS[command]:
        assert " ".join(f"{duty}: {BY_DUTY[duty].summary}".split()) in text
    for duty in set(Duty) - set(COMMANDS[command]):
        assert f" {duty}: " not in text
