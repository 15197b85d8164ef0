"""The agent's only way to act: an MCP client session to the IQTS tool server, over stdio or streamable HTTP.

Exactly what an IDE assistant does: spawn ``iqts mcp`` (stdio, the local user) or call ``/mcp`` on the API with a
bearer token (that token's user and role). ``engine.settings`` is read for configuration only.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.tools import BaseTool
from langchain_mcp_adapters.sessions import StdioConnection, StreamableHttpConnection, create_session
from langchain_mcp_adapters.tools import load_mcp_tools
from mcp import ClientSession
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from engine.settings import Settings
from engine.telemetry import get_logger

log = get_logger(__name__)


class McpStdio(BaseModel):
    """Spawn the IQTS MCP server over stdio (``iqts mcp``), with this process's IQTS configuration."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["stdio"] = "stdio"
    command: str = Field(default_factory=lambda: sys.executable)
    args: list[str] = Field(default_factory=lambda: ["-m", "ui.cli.main", "mcp"])
    env: dict[str, str] | None = None
    cwd: str | None = None


class McpHttp(BaseModel):
    """Talk to ``/mcp`` on a running IQTS API with a bearer token (``iqts users token NAME``)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["http"] = "http"
    url: str = Field(description="the API's base URL or the full /mcp URL")
    token: SecretStr
    timeout_s: float = 60.0

    @property
    def endpoint(self) -> str:
        base = self.url.rstrip("/")
        return base if base.endswith("/mcp") else f"{base}/mcp"


McpTarget = McpStdio | McpHttp


def stdio_env(settings: Settings) -> dict[str, str]:
    """The child's environment: this one, plus the settings that decide which database it opens."""
    env = dict(os.environ)
    env["IQTS_STATE_DIR"] = str(settings.state_dir)
    env["IQTS_DB_NAME"] = settings.db_name
    env["IQTS_MODE"] = settings.mode
    if settings.database_url is not None:
        env["IQTS_DATABASE_URL"] = settings.database_url.get_secret_value()
    return env


@dataclass
class McpConnection:
    """An initialised session, its tools as LangChain tools, and the server's instructions."""

    session: ClientSession
    tools: list[BaseTool]
    instructions: str
    server_name: str
    transport: str

    def tool(self, name: str) -> BaseTool | None:
        return next((t for t in self.tools if t.name == name), None)

    async def strategy_parameters(self) -> dict[str, list[str]]:
        """Each strategy's parameter names in order, from ``list_strategies`` ({} when the server has no such
        tool or it fails: the agent then does without)."""
        if self.tool("list_strategies") is None:
            return {}
        try:
            result = await self.session.call_tool("list_strategies", {})
        except Exception as error:  # the catalogue is a help, not a need
            log.warning("agent.catalogue_failed", error=str(error)[:300])
            return {}
        content = result.structuredContent or {}
        return {
            str(item["name"]): [str(p["name"]) for p in item.get("parameters", []) if isinstance(p, dict)]
            for item in content.get("strategies", [])
            if isinstance(item, dict) and "name" in item
        }


def _connection(target: McpTarget, settings: Settings) -> StdioConnection | StreamableHttpConnection:
    if isinstance(target, McpStdio):
        stdio: StdioConnection = {
            "transport": "stdio",
            "command": target.command,
            "args": list(target.args),
            "env": target.env if target.env is not None else stdio_env(settings),
        }
        if target.cwd:
            stdio["cwd"] = target.cwd
        return stdio
    from datetime import timedelta

    http: StreamableHttpConnection = {
        "transport": "streamable_http",
        "url": target.endpoint,
        "headers": {"Authorization": f"Bearer {target.token.get_secret_value()}"},
        "timeout": timedelta(seconds=target.timeout_s),
    }
    return http


@asynccontextmanager
async def open_mcp(target: McpTarget, settings: Settings) -> AsyncIterator[McpConnection]:
    """Connect, initialise, list the tools; close everything on exit."""
    async with create_session(_connection(target, settings)) as session:
        init: Any = await session.initialize()
        tools = await load_mcp_tools(session, server_name="iqts")
        yield McpConnection(
            session=session,
            tools=tools,
            instructions=str(init.instructions or ""),
            server_name=str(init.serverInfo.name),
            transport=target.kind,
        )
