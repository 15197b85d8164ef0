"""docker-compose.yml cannot run here (no Docker engine): check it by reading."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from typer.main import get_command

from ui.cli.main import app

REPO = Path(__file__).resolve().parents[3]


def _compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_compose_has_the_full_stack_with_healthchecks() -> None:
    services = _compose()["services"]
    for name in ("postgres", "redis", "api", "worker", "chat", "prometheus", "grafana", "ollama"):
        assert name in services, name
    assert "pgvector" in services["postgres"]["image"]
    for name, service in services.items():
        one_shot = service.get("restart") == "no"
        assert one_shot or "healthcheck" in service, f"{name} has no healthcheck"


def test_compose_dependencies_exist_and_iqts_commands_are_real() -> None:
    services = _compose()["services"]
    cli = get_command(app)
    for name, service in services.items():
        for dep in service.get("depends_on", {}) or {}:
            assert dep in services, f"{name} depends on missing {dep}"
        command = service.get("command")
        if command and command[0] == "iqts":
            group = cli
            for word in command[1:]:
                if word.startswith("-"):
                    break
                sub = group.commands.get(word) if hasattr(group, "commands") else None  # type: ignore[union-attr]
                if sub is None:
                    break
                group = sub
            assert group is not cli, f"{name}: `{' '.join(command)}` is not an iqts command"


def test_prometheus_scrapes_the_api_metrics() -> None:
    config = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    job = config["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["api:8000"]


def test_prometheus_alerts_are_loaded_and_name_metrics_iqts_registers() -> None:
    from engine.bus.consumer import DEAD_LETTERS  # noqa: F401  (registers the counter)
    from engine.execution import metrics  # noqa: F401
    from engine.telemetry import REGISTRY

    config = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    compose = (REPO / "docker-compose.yml").read_text()
    assert "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in compose
    rules = yaml.safe_load((REPO / "deploy/prometheus/alerts.yml").read_text())["groups"][0]["rules"]
    known = set(REGISTRY._names_to_collectors)  # prometheus_client has no public lookup
    for rule in rules:
        metric = re.findall(r"iqts_[a-z_]+", rule["expr"])[0]
        assert metric in known, f"{rule['alert']}: {metric} is not a metric IQTS exports"


def test_dockerfile_runs_the_cli() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert "uv sync --frozen" in text
    assert 'CMD ["iqts", "api"]' in text
