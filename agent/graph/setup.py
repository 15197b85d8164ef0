"""The wiring: intake -> recall -> agent <-> tools -> (approval wait) -> final."""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from agent.graph.conditional_logic import after_agent, after_intake, after_tools
from agent.graph.nodes import AgentDeps, make_agent, make_await_approval, make_final, make_intake, make_tools
from agent.graph.recall import make_recall
from agent.graph.state import AgentState


def build_graph(
    deps: AgentDeps, checkpointer: BaseCheckpointSaver[Any] | None
) -> CompiledStateGraph[Any, Any, Any, Any]:
    graph = StateGraph(AgentState)
    graph.add_node("intake", make_intake(deps))
    graph.add_node("recall", make_recall(deps))
    graph.add_node("agent", make_agent(deps))
    graph.add_node("tools", make_tools(deps))
    graph.add_node("await_approval", make_await_approval(deps))
    graph.add_node("final", make_final(deps))
    graph.add_edge(START, "intake")
    graph.add_conditional_edges("intake", after_intake, {"recall": "recall", "final": "final"})
    graph.add_edge("recall", "agent")
    graph.add_conditional_edges("agent", after_agent, {"tools": "tools", "final": "final"})
    graph.add_conditional_edges("tools", after_tools, {"await_approval": "await_approval", "agent": "agent"})
    graph.add_edge("await_approval", "final")
    graph.add_edge("final", END)
    return graph.compile(checkpointer=checkpointer, name="iqts-copilot")
