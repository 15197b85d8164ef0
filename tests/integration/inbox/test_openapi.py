"""The JSON API against its own OpenAPI document: schemathesis in process, authenticated with an API token."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from approvals.users import Role, create_user, issue_token
from engine.bus import InProcessBus
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database
from tests.integration.inbox.helpers import PASSWORD
from ui.api.app import create_app


@pytest.fixture
def api_schema(settings: Settings, db: Database, market: Decimal, unique: str) -> Any:
    runtime = Runtime(settings=settings, db=db, bus=InProcessBus())
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(runtime)).include(path_regex="^/api/")


@pytest.fixture
def token(db: Database, unique: str) -> str:
    create_user(db, f"fuzz{unique}", PASSWORD, Role.APPROVER)
    return issue_token(db, f"fuzz{unique}", "schemathesis", actor="test")


def test_the_api_keeps_its_contract(api_schema: Any, token: str) -> None:
    """Every /api operation, with generated valid and invalid input: only documented statuses and bodies."""
    headers = {"Authorization": f"Bearer {token}"}
    tested = []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None
            )
            def check(case: Any) -> None:
                case.call_and_validate(headers=headers)

            check()
        tested.append(operation.label)
    assert len(tested) == 10, tested  # approvals (5), orders (2), the kill switch (3)


def test_every_operation_documents_its_errors(settings: Settings, db: Database) -> None:
    document = create_app(Runtime(settings=settings, db=db, bus=InProcessBus())).openapi()
    paths = document["paths"]
    assert set(paths) >= {
        "/api/approvals",
        "/api/approvals/{request_id}",
        "/api/approvals/{request_id}/approve",
        "/api/approvals/{request_id}/reject",
        "/api/orders",
        "/api/orders/{order_id}",
        "/api/session",
    }
    assert not any(p.startswith(("/inbox", "/login", "/logout", "/history")) for p in paths)  # pages stay out
    approve = paths["/api/approvals/{request_id}/approve"]["post"]["responses"]
    assert set(approve) >= {"200", "400", "401", "403", "404", "409", "422"}
    assert set(paths["/api/approvals/{request_id}"]["get"]["responses"]) >= {"200", "401", "404", "422"}
    assert {"HTTPBearer", "APIKeyCookie"} <= set(document["components"]["securitySchemes"])
