"""docker-compose.yml cannot run here (no Docker engine): check it by reading."""

from __future__ import annotations

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


def test_dockerfile_runs_the_cli() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert "uv sync --frozen" in text
    assert 'CMD ["iqts", "api"]' in text
