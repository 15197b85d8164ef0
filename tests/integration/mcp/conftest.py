"""A live API with MCP at /mcp, sample data loaded, and users with tokens."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from approvals.users import Role, create_user, issue_token
from engine.bus import InProcessBus
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database
from tests.support.live_server import free_port, live_server
from ui.api.app import create_app


@pytest.fixture(scope="module")
def mcp_api(settings: Settings, db: Database, sample_loaded: None) -> Iterator[tuple[str, Runtime]]:
    port = free_port()
    live_settings = settings.model_copy(update={"api_port": port})
    runtime = Runtime(settings=live_settings, db=db, bus=InProcessBus())
    with live_server(create_app(runtime), port) as url:
        yield url, runtime


@pytest.fixture(scope="module")
def trader_token(db: Database) -> str:
    import uuid

    name = f"trader{uuid.uuid4().hex[:6]}"
    create_user(db, name, "a long enough password", Role.TRADER)
    return issue_token(db, name, "tests", actor="tests")


@pytest.fixture(scope="module")
def viewer_token(db: Database) -> str:
    import uuid

    name = f"viewer{uuid.uuid4().hex[:6]}"
    create_user(db, name, "a long enough password", Role.VIEWER)
    return issue_token(db, name, "tests", actor="tests")
