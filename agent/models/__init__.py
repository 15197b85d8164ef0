"""Chat models behind one factory with declared capabilities (after TradingAgents' ``llm_clients``)."""

from agent.models.capabilities import Capabilities, ModelInfo
from agent.models.factory import describe_model, make_chat_model
from agent.models.spec import ModelSpecError, parse_spec

__all__ = ["Capabilities", "ModelInfo", "ModelSpecError", "describe_model", "make_chat_model", "parse_spec"]
