"""A scripted model for the chat's tests: deterministic, and it answers only with figures the tools returned.

The chat process loads it through ``IQTS_CHAT_MODEL_FACTORY=tests.integration.chat.script:scripted_model``. Each
reply is decided from the conversation so far: a question about a price calls ``get_ticker``, a backtest request
calls ``run_backtest``, "buy N SYMBOL" calls ``propose_order``; after a tool result it answers quoting that result.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from agent.models.scripted import ScriptedChatModel, tool_call

LABEL = "scripted chat test model"
_BUY = re.compile(r"\b(buy|sell)\s+([0-9]*\.?[0-9]+)\s+([A-Z]{2,10}/[A-Z]{2,10})", re.IGNORECASE)
_SYMBOL = re.compile(r"\b([A-Z]{2,10}/[A-Z]{2,10})\b")


def tool_json(message: ToolMessage) -> dict[str, Any]:
    """The structured result a tool returned (the agent keeps it beside the view the model reads); the text of an
    error otherwise, unwrapped from the agent's untrusted-data marker."""
    artifact = message.artifact
    if message.status != "error" and isinstance(artifact, dict) and isinstance(artifact.get("structured"), dict):
        return dict(artifact["structured"])
    text = str(message.content)
    body = text.split("\n", 1)[1].rsplit("\n", 1)[0] if text.startswith("<untrusted-data") else text
    try:
        value = json.loads(body)
    except json.JSONDecodeError:
        return {"text": body}
    return value if isinstance(value, dict) else {"value": value}


def _turn(messages: Sequence[BaseMessage]) -> tuple[str, list[ToolMessage]]:
    """The latest question and the tool results that followed it."""
    tools: list[ToolMessage] = []
    for message in reversed(messages):
        if isinstance(message, ToolMessage):
            tools.insert(0, message)
        elif isinstance(message, HumanMessage) and not str(message.content).startswith("(IQTS)"):  # not a hint
            return str(message.content), tools
    return "", tools


def reply(messages: Sequence[BaseMessage]) -> AIMessage:
    question, results = _turn(messages)
    if results:
        last = results[-1]
        data = tool_json(last)
        if last.status == "error" or "text" in data:
            return AIMessage(content=f"The {last.name} tool failed: {data.get('text', 'no details')}")
        if last.name == "get_ticker":
            return AIMessage(
                content=f"The last {data['symbol']} price is {data['last']} ({data['source']}, {data['as_of']})."
            )
        if last.name == "run_backtest":
            metrics = data.get("metrics") or (data.get("run") or {}).get("metrics") or {}
            run_id = data.get("run_id") or (data.get("run") or {}).get("run_id") or "?"
            return AIMessage(
                content=f"Backtest {run_id} done: total return {metrics.get('total_return')}, "
                f"max drawdown {metrics.get('max_drawdown')}."
            )
        return AIMessage(content=f"{last.name} answered; see the step above.")
    lowered = question.lower()
    order = _BUY.search(question)
    if order:
        side, quantity, symbol = order.group(1).lower(), order.group(2), order.group(3).upper()
        return tool_call("propose_order", order={"symbol": symbol, "side": side, "quantity": float(quantity)})
    symbol_match = _SYMBOL.search(question)
    symbol = symbol_match.group(1).upper() if symbol_match else "BTC/USD"
    if "backtest" in lowered:
        return tool_call("run_backtest", strategy="sma_cross", symbol=symbol)
    if "price" in lowered:
        return tool_call("get_ticker", symbol=symbol)
    return AIMessage(content="I can look up prices, run backtests and propose orders for a human to approve.")


def scripted_model() -> ScriptedChatModel:
    """A fresh model (one per chat session) that replies with :func:`reply` as many times as it is asked."""
    return ScriptedChatModel(script=[reply] * 500, label=LABEL)
