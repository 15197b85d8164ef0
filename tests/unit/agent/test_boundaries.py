"""The agent acts only through MCP: it imports nothing from tools/, approvals/, knowledge/ or ui/, and from engine/
only the settings, the logger, the untrusted-data wrapper and the start-up import deferral."""

from __future__ import annotations

import ast
from pathlib import Path

AGENT = Path(__file__).resolve().parents[3] / "agent"
ALLOWED_ENGINE = {"engine.settings", "engine.telemetry", "engine.untrusted", "engine.imports"}
FORBIDDEN = ("tools", "approvals", "knowledge", "ui", "evals")


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def test_agent_imports_only_settings_and_telemetry_from_below() -> None:
    offenders = []
    for path in sorted(AGENT.rglob("*.py")):
        for module in imported_modules(path):
            top = module.split(".")[0]
            if top in FORBIDDEN or (top == "engine" and module not in ALLOWED_ENGINE):
                offenders.append(f"{path.relative_to(AGENT.parent)}: {module}")
    assert offenders == []
