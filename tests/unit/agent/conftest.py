"""The agent against the real MCP server (the live API's /mcp with a trader's token), a scripted model, and the
test database for checkpoints. An approver and a paper venue stand in for the person and the worker."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import pytest
from pydantic import SecretStr

from agent.mcp import McpHttp
from agent.models.scripted import ScriptedChatModel
from agent.session import Copilot
from approvals.users import Role, User
from engine.execution.paper import ManualPriceFeed, PaperBroker, PaperBrokerConfig, PriceBar
from engine.execution.router import Router
from engine.execution.worker import build_order_manager
from engine.runtime import Runtime
from engine.settings import AgentSettings, Settings
from engine.store.database import Database
from tests.integration.mcp.conftest import mcp_api, trader_token  # noqa: F401  (fixtures)

APPROVER = User(id=-1, username="ann-approver", role=Role.APPROVER)
FILL_PRICE = Decimal(8700)

CopilotFactory = Callable[..., Any]


@pytest.fixture
def clean_risk_state(db: Database) -> None:
    with db.connection() as conn:
        conn.execute("DELETE FROM system_state WHERE key IN ('kill_switch', 'breakers')")


@pytest.fixture
def agent_settings() -> AgentSettings:
    return AgentSettings(agent_approval_wait_s=1.0, agent_approval_poll_s=0.2, agent_max_steps=6)


@pytest.fixture
def copilot(
    settings: Settings,
    db: Database,
    mcp_api: tuple[str, Runtime],  # noqa: F811
    trader_token: str,  # noqa: F811
    agent_settings: AgentSettings,
    clean_risk_state: None,
) -> CopilotFactory:
    """``async with copilot(script) as (c, model):`` a Copilot over HTTP MCP with a scripted model."""
    url, _ = mcp_api

    @asynccontextmanager
    async def make(script: list[Any], *, checkpoint: bool = True) -> AsyncIterator[tuple[Copilot, ScriptedChatModel]]:
        model = ScriptedChatModel(script=script)
        async with Copilot.connect(
            settings,
            mcp=McpHttp(url=url, token=SecretStr(trader_token)),
            checkpoint_url=db.url if checkpoint else None,
            model=model,
            agent_settings=agent_settings,
        ) as c:
            yield c, model

    return make


async def execute_on_paper(runtime: Runtime, approval_id: str) -> None:
    """What the execution worker does with an approved order, on a paper venue fed one bar by hand."""
    from engine.execution import gate

    feed = ManualPriceFeed()
    feed.push(
        "BTC/USD", PriceBar(int(time.time() * 1000), FILL_PRICE, FILL_PRICE, FILL_PRICE, FILL_PRICE, Decimal(1000))
    )
    broker = PaperBroker(PaperBrokerConfig(name="paper", initial_balances={"USD": Decimal(100_000)}), feed)
    manager = build_order_manager(runtime, Router({"paper": broker}))
    with runtime.db.connection() as conn:
        intent = gate.load_approved_intent(conn, approval_id)
    await manager.submit_approved(intent, approval_id)
