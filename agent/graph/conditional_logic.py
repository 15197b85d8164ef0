"""Where the graph goes next (pure functions of the state)."""

from __future__ import annotations

from typing import Literal

from langchain_core.messages import AIMessage

from agent.graph.state import AgentState


def after_intake(state: AgentState) -> Literal["recall", "final"]:
    return "recall" if state.get("intake", {}).get("decision") == "ok" else "final"


def after_agent(state: AgentState) -> Literal["tools", "final"]:
    last = state["messages"][-1]
    return "tools" if isinstance(last, AIMessage) and last.tool_calls else "final"


def after_tools(state: AgentState) -> Literal["await_approval", "agent"]:
    return "await_approval" if state.get("pending_approval") else "agent"
