"""The chat's session logic against the live API's MCP endpoint, with the scripted chat model and the test database;
a recording sink stands in for the Chainlit window."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from agent.events import ApprovalPendingEvent, FinalEvent
from approvals.users import Role, create_user
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database
from tests.integration.chat.script import scripted_model
from tests.integration.mcp.conftest import mcp_api  # noqa: F401  (fixture)
from ui.chat.config import ChatSettings
from ui.chat.copilot import ChatAgent
from ui.chat.render import ApprovalState, EquityChart, ToolView

PASSWORD = "a long enough password"


@dataclass
class RecordingSink:
    """Everything a turn showed, in order."""

    shown: list[tuple[str, Any]] = field(default_factory=list)

    async def tool_started(self, view: ToolView) -> None:
        self.shown.append(("tool_started", view))

    async def tool_finished(self, view: ToolView, chart: EquityChart | None) -> None:
        self.shown.append(("tool_finished", (view, chart)))

    async def token(self, text: str) -> None:
        self.shown.append(("token", text))

    async def approval_card(self, card: ApprovalPendingEvent) -> None:
        self.shown.append(("card", card))

    async def approval_status(self, card: ApprovalPendingEvent, state: ApprovalState) -> None:
        self.shown.append(("status", state))

    async def answer(self, final: FinalEvent | None, charts: list[EquityChart]) -> None:
        self.shown.append(("answer", (final, charts)))

    async def notice(self, text: str) -> None:
        self.shown.append(("notice", text))

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.shown]

    def of(self, kind: str) -> list[Any]:
        return [value for k, value in self.shown if k == kind]


@pytest.fixture
def clean_risk_state(db: Database) -> None:
    with db.connection() as conn:
        conn.execute("DELETE FROM system_state WHERE key IN ('kill_switch', 'breakers')")


@pytest.fixture
def trader(db: Database) -> str:
    return create_user(db, f"chat{uuid.uuid4().hex[:8]}", PASSWORD, Role.TRADER).username


AgentFactory = Callable[..., Any]


@pytest.fixture
def chat_agent(
    settings: Settings,
    db: Database,
    mcp_api: tuple[str, Runtime],  # noqa: F811
    trader: str,
    clean_risk_state: None,
    monkeypatch: pytest.MonkeyPatch,
) -> AgentFactory:
    """``async with chat_agent() as agent:`` a session's ChatAgent for a new trader, closed at the end."""
    url, _ = mcp_api
    monkeypatch.setenv("IQTS_AGENT_APPROVAL_WAIT_S", "2")
    monkeypatch.setenv("IQTS_AGENT_APPROVAL_POLL_S", "0.2")

    @asynccontextmanager
    async def make(username: str | None = None) -> AsyncIterator[ChatAgent]:
        agent = ChatAgent(
            db=db,
            settings=settings,
            chat=ChatSettings(api_url=url),
            username=username or trader,
            session_id=uuid.uuid4().hex,
            model_factory=scripted_model,
        )
        try:
            yield agent
        finally:
            await agent.close()

    return make
