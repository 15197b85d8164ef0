"""The LangGraph graph: wiring (setup, conditional_logic, checkpointer) apart from the roles (nodes)."""

from agent.graph.checkpointer import open_checkpointer
from agent.graph.nodes import AgentDeps
from agent.graph.setup import build_graph

__all__ = ["AgentDeps", "build_graph", "open_checkpointer"]
