"""IQTS agent layer: a LangGraph copilot that acts only through its MCP session.

Public API: :class:`agent.session.Copilot` (``connect``, ``ask``, ``resume``), the events in :mod:`agent.events`,
:func:`agent.models.make_chat_model` and :func:`agent.models.describe_model`, :mod:`agent.mcp` targets
(:class:`McpStdio`, :class:`McpHttp`). Imports are lazy so that ``import agent`` stays cheap.
"""

from engine.imports import defer_slow_imports

defer_slow_imports()  # before the MCP SDK (agent.mcp) or agent.models.constrained import jsonschema
