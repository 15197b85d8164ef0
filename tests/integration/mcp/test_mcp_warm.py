"""The warm-up an MCP server over stdio starts in the background: after it, the knowledge base has its starter
documents and the first search pays no indexing, and a failing part is logged without stopping the others."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from engine.bus.memory import InProcessBus
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database
from knowledge.service import list_documents
from tools.server import warm_services


def test_the_warm_up_indexes_the_starter_documents_and_loads_the_kernels(settings: Settings, db: Database) -> None:
    runtime = Runtime(settings=settings, db=db, bus=InProcessBus())
    assert not any(d.kind == "risk_policy" for d in list_documents(db))
    with capture_logs() as logs:
        warm_services(runtime)
    warmed = {e["part"] for e in logs if e["event"] == "mcp.warmed"}
    assert warmed == {"knowledge", "kernels"} and not [e for e in logs if e["event"] == "mcp.warm_failed"]
    assert any(d.kind == "risk_policy" for d in list_documents(db))  # the starter documents, indexed


def test_a_failing_part_is_logged_and_the_rest_still_warms(
    settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    import knowledge.service

    def broken(_: Database) -> None:
        raise RuntimeError("the embedder is not installed")

    monkeypatch.setattr(knowledge.service, "warm", broken)
    with capture_logs() as logs:
        warm_services(Runtime(settings=settings, db=db, bus=InProcessBus()))
    failed = [e for e in logs if e["event"] == "mcp.warm_failed"]
    assert [e["part"] for e in failed] == ["knowledge"] and "not installed" in failed[0]["error"]
    assert [e["part"] for e in logs if e["event"] == "mcp.warmed"] == ["kernels"]
