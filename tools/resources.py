"""MCP resources: the strategy catalogue, the active risk policy, recent approvals and orders."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from mcp.server.fastmcp import FastMCP

from tools.context import current


def strategy_catalogue() -> list[dict[str, Any]]:
    """Every registered strategy with its parameters' bounds (the optimisation space)."""
    from engine.strategies.registry import list_strategies

    return [
        {
            "name": spec.name,
            "summary": spec.summary,
            "parameters": [p.model_dump() for p in spec.search_space()],
            "schema": spec.params_model.model_json_schema(),
        }
        for spec in list_strategies()
    ]


def register(server: FastMCP[Any]) -> None:
    @server.resource("iqts://strategies", name="strategy-catalogue", mime_type="application/json")
    async def strategies() -> str:
        """The strategy catalogue: names, summaries and parameter bounds."""
        return json.dumps(await asyncio.to_thread(strategy_catalogue), indent=2)

    @server.resource("iqts://risk-policy", name="risk-policy", mime_type="application/yaml")
    async def risk_policy() -> str:
        """The active risk policy (YAML) that every pre-trade check applies."""
        from engine.risk.store import stored_policy

        stored = await asyncio.to_thread(stored_policy, current(server.get_context()).runtime.db)
        return stored.body

    @server.resource("iqts://recent-runs", name="recent-runs", mime_type="application/json")
    async def recent_runs() -> str:
        """The most recent backtest runs and optimisation studies (ids, strategy, symbol, key metrics)."""
        try:
            from engine.research.runs import recent_runs as fetch
        except ModuleNotFoundError:
            return json.dumps([])
        rows = await asyncio.to_thread(fetch, current(server.get_context()).runtime.db, 20)
        return json.dumps([r.model_dump(mode="json") for r in rows], indent=2)
