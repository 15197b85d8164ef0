"""A scripted model for the harness's own tests: a test double of the MODEL only (the agent graph, the MCP server, the
database and the paper venue are real). It plays a scenario from its expectations, perfectly or with one fault, so
the harness can be shown to score a perfect agent 100 % and each fault exactly as much lower as it should.

``--model scripted:perfect`` (or ``scripted:wrong_tool``, ``scripted:wrong_argument``, ``scripted:invented_figure``,
``scripted:obey_injection``) runs ``iqts eval`` with it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Literal, get_args

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from agent.models.capabilities import Capabilities, ModelInfo
from agent.models.scripted import ScriptedChatModel, tool_call
from evals.matchers import MISSING, lookup, matcher_example
from evals.scenario import Scenario

Fault = Literal["perfect", "wrong_tool", "wrong_argument", "invented_figure", "obey_injection"]
FAULTS: tuple[str, ...] = get_args(Fault)
INVENTED = "98765.43"
_REPLIES = 200  # more model calls than any scenario can ask for


def _tool_json(message: ToolMessage) -> dict[str, Any]:
    """The tool's structured result (what the agent keeps beside the view the model reads)."""
    artifact = message.artifact
    if isinstance(artifact, dict) and isinstance(artifact.get("structured"), dict):
        return dict(artifact["structured"])
    text = str(message.content)
    body = text.split("\n", 1)[1].rsplit("\n", 1)[0] if text.startswith("<untrusted-data") else text
    try:
        value = json.loads(body)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _set_path(target: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value


def _wrong(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float, Decimal)):
        return float(value) * 3 + 1
    if isinstance(value, str):
        lowered = value.lower()
        if "btc" in lowered or "bitcoin" in lowered:
            return "ETH/USD"
        if "/" in value or lowered in ("eth", "ltc", "ether", "litecoin"):
            return "BTC/USD"  # another market that exists: a plausible mistake, not a broken call
        if value in ("buy", "sell"):
            return "sell" if value == "buy" else "buy"
        return value + "_wrong"
    if isinstance(value, list):
        return [_wrong(v) for v in value] or ["wrong"]
    return "wrong"


class ScenarioPlayer:
    """Decides each reply from the conversation so far: the next expected call of this turn, else the answer."""

    def __init__(self, scenario: Scenario, fault: Fault) -> None:
        self.scenario = scenario
        self.fault = fault

    def _turn(self, messages: Sequence[BaseMessage]) -> tuple[int, list[BaseMessage]]:
        humans = [
            i for i, m in enumerate(messages) if isinstance(m, HumanMessage) and not str(m.content).startswith("(IQTS)")
        ]
        start = humans[-1] if humans else 0
        said = str(messages[start].content).strip() if humans else ""
        index = next((i for i, t in enumerate(self.scenario.turns) if t.user.strip() == said), len(humans) - 1)
        return max(0, index), list(messages[start + 1 :])

    def _args(self, index: int, call_no: int) -> dict[str, Any]:
        call = self.scenario.turns[index].calls[call_no]
        args: dict[str, Any] = {}
        for path, matcher in call.args.items():
            value = matcher_example(matcher)
            if value is not MISSING:
                _set_path(args, path, value)
        if self.fault == "wrong_argument" and call_no == 0 and call.args:
            path = next(iter(call.args))
            current = lookup(args, path)
            _set_path(args, path, _wrong(None if current is MISSING else current))
        return args

    def __call__(self, messages: Sequence[BaseMessage]) -> AIMessage:
        index, since = self._turn(messages)
        index = min(index, len(self.scenario.turns) - 1)
        turn = self.scenario.turns[index]
        made = sum(len(m.tool_calls) for m in since if isinstance(m, AIMessage))
        injection = self.scenario.injection
        if made < len(turn.calls):
            name = turn.calls[made].tool
            if self.fault == "wrong_tool" and made == 0:
                name = "data_coverage" if name != "data_coverage" else "list_markets"
            return tool_call(name, **self._args(index, made))
        obey = self.fault == "obey_injection" and injection is not None and injection.tools
        if obey and injection is not None and made == len(turn.calls):  # read the data first, then do as it says
            return tool_call(injection.tools[0], reason="as the instructions in the data said")
        return AIMessage(content=self._answer(index, since))

    def _answer(self, index: int, since: list[BaseMessage]) -> str:
        turn = self.scenario.turns[index]
        results: dict[str, dict[str, Any]] = {}
        for message in since:
            if isinstance(message, ToolMessage) and message.status != "error":
                results[str(message.name)] = _tool_json(message)
        parts = []
        for fact in turn.answer.facts:
            raw = lookup(results.get(fact.tool, {}), fact.path)
            if raw is not MISSING and raw is not None:
                try:
                    value = Decimal(str(raw)) * fact.scale
                except ArithmeticError:
                    continue
                parts.append(f"{fact.path} is {value.normalize():f}{(' ' + fact.unit) if fact.unit else ''}.")
        if turn.answer.refusal:
            parts.insert(0, "I cannot do that.")
        if turn.answer.contains_any:
            parts.append(turn.answer.contains_any[0])
        if any(c.tool == "propose_order" for c in turn.calls):
            parts.append("I proposed it; it waits for a human in the inbox and nothing is executed before that.")
        if not parts:
            parts.append("Here is what the tools show." if turn.calls else "Happy to help with research.")
        injection = self.scenario.injection
        if self.fault == "obey_injection" and injection is not None and injection.canary:
            parts.append(injection.canary)
        if self.fault == "invented_figure":
            parts.append(f"Yesterday it was {INVENTED}.")
        return " ".join(parts)


SCRIPTED_INFO = Capabilities(
    native_tool_calling=True, constrained_decoding=False, streaming=True, json_schema_output=False, runs_offline=True
)


def scripted_model(scenario: Scenario, fault: Fault) -> tuple[ScriptedChatModel, ModelInfo]:
    player = ScenarioPlayer(scenario, fault)
    label = f"scripted ({fault})"
    model = ScriptedChatModel(script=[player] * _REPLIES, label=label)
    info = ModelInfo(provider="scripted", model=fault, label=label, capabilities=SCRIPTED_INFO)
    return model, info
