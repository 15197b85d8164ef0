"""Tool calling by constrained decoding: one JSON schema whose ``anyOf`` has a branch per bound tool plus a
``final_answer`` branch; the runtime (llama.cpp's grammar sampler) can only emit JSON that fits it.

* Each tool's MCP input schema is made strict: ``$ref`` inlined, ``null`` alternatives dropped (omit instead),
  Decimal's number-or-string collapsed to number, ``additionalProperties: false`` on every object, titles, defaults
  and regex patterns removed (llama.cpp cannot compile every pattern, and the server validates anyway).
* A branch is ``{"tool": <const name>, "arguments": <strict input schema>}``; the answer branch is
  ``{"tool": "final_answer", "answer": <string>}``. ``tool`` comes first, so the choice is made before arguments.
* The model's output is parsed with pydantic (:class:`Decision`) and the arguments validated against the strict
  schema (jsonschema): there is no free-text parsing anywhere.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, ValidationError

FINAL_ANSWER = "final_answer"
DEFAULT_STRING_LIMIT = 256
ANSWER_LIMIT = 1200
"""Characters of a final answer (about 300 tokens, 30 s of generation on one core): the figures the tools returned
are rendered under it, so the model's words need not be long. An answer cut off there ends at its last sentence."""
BRIEF_ANSWER_LIMIT = 240
"""Characters of an answer whose figures are rendered under it (about 60 tokens, 6 s at one thread): the model
states the figure or two asked about and the renderer shows the rest. Reciting every metric of a backtest took
230-300 tokens and 45-90 s."""
SHORT_ANSWER_LIMIT = 480
"""Characters of an answer from results without figures to render (passages, catalogues): three short sentences."""
ANSWER_BOUNDS = (BRIEF_ANSWER_LIMIT, SHORT_ANSWER_LIMIT, ANSWER_LIMIT)
ANSWER_LIMIT_KEY = "iqts_answer_limit"
"""The ``additional_kwargs`` key by which a message in the window lowers the answer bound of the next reply."""
_DROP_KEYS = {"title", "default", "examples", "pattern", "$schema", "exclusiveMinimum", "exclusiveMaximum"}
_MAX_DEPTH = 24
MAP_VALUE: dict[str, Any] = {"anyOf": [{"type": "number"}, {"type": "boolean"}, {"type": "string", "maxLength": 64}]}
"""The values of a map whose schema does not say (``additionalProperties: true``)."""


class ConstrainedOutputError(ValueError):
    """The constrained output did not parse or validate (for example it was cut off at the token limit)."""


class ToolSpec(BaseModel):
    """A tool as the model sees it: a name, a description and its strict argument schema."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    parameters: dict[str, Any]


class Decision(BaseModel):
    """What the constrained model emitted: a tool call or the final answer."""

    model_config = ConfigDict(extra="forbid")

    tool: str = Field(min_length=1)
    arguments: dict[str, Any] | None = None
    answer: str | None = None


def _resolve(ref: str, root: Mapping[str, Any]) -> dict[str, Any]:
    if not ref.startswith("#/"):
        raise ValueError(f"only local $refs are supported, not {ref}")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part]
    return dict(node)


def strict_schema(schema: Mapping[str, Any], root: Mapping[str, Any] | None = None, depth: int = 0) -> dict[str, Any]:
    """A self-contained, strict copy of ``schema`` (see the module docstring)."""
    if depth > _MAX_DEPTH:
        raise ValueError("schema nests too deeply (recursive $ref?)")
    root = root if root is not None else schema
    node = dict(schema)
    if "$ref" in node:
        merged = {**_resolve(str(node.pop("$ref")), root), **node}
        return strict_schema(merged, root, depth + 1)
    for key in ("anyOf", "oneOf"):
        if key in node:
            branches = [b for b in node.pop(key) if not (isinstance(b, dict) and b.get("type") == "null")]
            types = {b.get("type") for b in branches if isinstance(b, dict)}
            if "number" in types and "string" in types and len(branches) == 2:  # pydantic's Decimal
                branches = [b for b in branches if b.get("type") == "number"]
            description = node.get("description")
            rest = {k: v for k, v in node.items() if k not in _DROP_KEYS and k != "$defs"}
            if len(branches) == 1:
                return strict_schema({**rest, **branches[0]}, root, depth + 1)
            alternatives: dict[str, Any] = {"anyOf": [strict_schema(b, root, depth + 1) for b in branches]}
            if description:
                alternatives["description"] = description
            return alternatives
    if "allOf" in node and len(node["allOf"]) == 1:
        inner = node.pop("allOf")[0]
        return strict_schema({**inner, **node}, root, depth + 1)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP_KEYS or key == "$defs":
            continue
        if key == "properties":
            out[key] = {name: strict_schema(sub, root, depth + 1) for name, sub in value.items()}
        elif key == "items" and isinstance(value, dict):
            out[key] = strict_schema(value, root, depth + 1)
        else:
            out[key] = copy.deepcopy(value)
    if out.get("type") == "string" and not {"enum", "const", "format", "maxLength"} & out.keys():
        out["maxLength"] = DEFAULT_STRING_LIMIT  # a small model can loop inside a string: bound it
    if out.get("type") == "object" or "properties" in out:
        out["type"] = "object"
        values = node.get("additionalProperties")
        if not out.get("properties") and values not in (None, False):  # a map (``dict[str, float]``): keep it one
            out["properties"] = {}
            out["additionalProperties"] = (
                strict_schema(values, root, depth + 1) if isinstance(values, dict) else dict(MAP_VALUE)
            )
            return out
        out.setdefault("properties", {})
        out["additionalProperties"] = False
        if "required" in out:
            out["required"] = [r for r in out["required"] if r in out["properties"]]
    return out


def _without_descriptions(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_descriptions(v) for k, v in schema.items() if k != "description"}
    if isinstance(schema, list):
        return [_without_descriptions(v) for v in schema]
    return schema


def tool_specs(tools: Sequence[Mapping[str, Any]]) -> list[ToolSpec]:
    """OpenAI-format function definitions (``convert_to_openai_tool``) to strict tool specs."""
    specs = []
    for tool in tools:
        function = tool.get("function", tool)
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        specs.append(
            ToolSpec(
                name=str(function["name"]),
                description=str(function.get("description") or "").strip(),
                parameters=strict_schema(parameters),
            )
        )
    return specs


def answer_limit(messages: Sequence[Any]) -> int:
    """The bound on the next answer: :data:`ANSWER_LIMIT`, or lower when the last message asks for it (under
    :data:`ANSWER_LIMIT_KEY` in its ``additional_kwargs``)."""
    if not messages:
        return ANSWER_LIMIT
    extra = getattr(messages[-1], "additional_kwargs", None) or {}
    asked = extra.get(ANSWER_LIMIT_KEY)
    return min(int(asked), ANSWER_LIMIT) if isinstance(asked, int) and asked > 0 else ANSWER_LIMIT


def decision_schema(specs: Sequence[ToolSpec], answer_limit: int = ANSWER_LIMIT) -> dict[str, Any]:
    """The one schema the model's output must fit (an answer of at most ``answer_limit`` characters)."""
    branches: list[dict[str, Any]] = [
        {
            "type": "object",
            "properties": {"tool": {"const": spec.name}, "arguments": _without_descriptions(spec.parameters)},
            "required": ["tool", "arguments"],
            "additionalProperties": False,
        }
        for spec in specs
    ]
    branches.append(
        {
            "type": "object",
            "properties": {
                "tool": {"const": FINAL_ANSWER},
                "answer": {"type": "string", "minLength": 1, "maxLength": answer_limit},
            },
            "required": ["tool", "answer"],
            "additionalProperties": False,
        }
    )
    return {"anyOf": branches}


def _render(schema: Mapping[str, Any], depth: int = 0) -> str:
    if "anyOf" in schema:
        return " | ".join(_render(b, depth + 1) for b in schema["anyOf"])
    if "enum" in schema:
        return "|".join(json.dumps(v) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    kind = schema.get("type")
    if kind == "object" and not schema.get("properties") and isinstance(schema.get("additionalProperties"), dict):
        return f"{{<name>: {_render(schema['additionalProperties'], depth + 1)}, ...}}"
    if kind == "object":
        required = set(schema.get("required", []))
        fields = []
        for name, sub in schema.get("properties", {}).items():
            mark = "" if name in required else "?"
            note = f" ({sub['description']})" if isinstance(sub, dict) and sub.get("description") else ""
            fields.append(f"{name}{mark}: {_render(sub, depth + 1)}{note}")
        return "{" + ", ".join(fields) + "}"
    if kind == "array":
        return f"[{_render(schema.get('items', {}), depth + 1)}]"
    bounds = []
    for key, sign in (("minimum", ">="), ("maximum", "<="), ("minLength", "len>="), ("maxLength", "len<=")):
        if key in schema and not (key == "maxLength" and schema[key] == DEFAULT_STRING_LIMIT):
            bounds.append(f"{sign}{schema[key]}")
    if schema.get("format"):
        bounds.append(str(schema["format"]))
    return str(kind or "any") + (f" {' '.join(bounds)}" if bounds else "")


def tool_catalogue(specs: Sequence[ToolSpec]) -> str:
    """The tools in a compact, stable text form for the system prompt (stable text keeps the prompt cache warm)."""
    lines = []
    for spec in specs:
        summary = " ".join(spec.description.split())
        lines.append(f"- {spec.name}: {summary}\n  arguments: {_render(spec.parameters)}")
    return "\n".join(lines)


_EXAMPLES = (
    ("get_ticker", "What is the last ETH/USD price?", {"symbol": "ETH/USD"}),
    ("propose_order", "sell 0.5 ETH/USD", {"order": {"symbol": "ETH/USD", "side": "sell", "quantity": 0.5}}),
    ("propose_order", "buy 2 LTC/USD", {"order": {"symbol": "LTC/USD", "side": "buy", "quantity": 2}}),
)


def output_instructions(specs: Sequence[ToolSpec] = ()) -> str:
    """How to reply, with worked examples for the tools that are bound (stable text: it stays in the cache)."""
    names = {s.name for s in specs}
    lines = [
        "Reply with exactly one JSON object and nothing else:",
        '- to call a tool: {"tool": "<tool name>", "arguments": {...}}',
        f'- to answer the user: {{"tool": "{FINAL_ANSWER}", "answer": "<your answer>"}}',
        "Call a tool whenever the answer needs data or the user asks for an action; an order exists only once "
        "propose_order has returned its approval id. Put in the arguments only what the user said or a tool "
        "returned; omit every optional argument the user did not mention (never invent dates, prices or limits). "
        "After a tool result, answer with the figures exactly as the tool returned them.",
    ]
    examples = [(q, json.dumps({"tool": t, "arguments": a})) for t, q, a in _EXAMPLES if t in names]
    if examples:
        lines.append("Examples:")
        lines += [f"User: {q}\nYou: {reply}" for q, reply in examples]
    return "\n".join(lines)


def parse_decision(text: str, specs: Sequence[ToolSpec], answer_limit: int = ANSWER_LIMIT) -> Decision:
    """Parse and validate constrained output; raise :class:`ConstrainedOutputError` with the reason."""
    try:
        decision = Decision.model_validate_json(text)
    except ValidationError as error:
        raise ConstrainedOutputError(f"the model's output is not a valid decision: {_first_error(error)}") from None
    if decision.tool == FINAL_ANSWER:
        if not decision.answer or not decision.answer.strip():
            raise ConstrainedOutputError("the model's final answer is empty")
        if len(decision.answer) >= answer_limit:
            return decision.model_copy(update={"answer": whole_sentences(decision.answer)})
        return decision
    by_name = {s.name: s for s in specs}
    spec = by_name.get(decision.tool)
    if spec is None:
        raise ConstrainedOutputError(f"the model chose an unknown tool {decision.tool!r}")
    arguments = decision.arguments or {}
    try:
        jsonschema.validate(arguments, spec.parameters)
    except jsonschema.ValidationError as error:
        raise ConstrainedOutputError(f"arguments for {spec.name} do not fit its schema: {error.message}") from None
    return decision.model_copy(update={"arguments": arguments})


def whole_sentences(text: str) -> str:
    """``text`` up to its last complete sentence (all of it when it has none)."""
    ends = [i for i, ch in enumerate(text) if ch in ".!?\n" and (i + 1 == len(text) or text[i + 1].isspace())]
    return text[: ends[-1] + 1].rstrip() if ends and ends[-1] > len(text) // 3 else text


def whole_clauses(text: str) -> str:
    """A text with no sentence end cut back to its last complete clause and closed ("... a Sharpe of 1.45, a max
    drawdown of" -> "... a Sharpe of 1.45.")."""
    if text.rstrip().endswith((".", "!", "?")):
        return text
    cut = max(text.rfind(", "), text.rfind("; "))
    return text[:cut].rstrip() + "." if cut > len(text) // 3 else text


def cut_at_a_bound(text: str) -> bool:
    """The answer stopped at one of the length bounds, mid-sentence (the grammar counts a JSON escape as one
    character, so a little short of the bound counts too)."""
    ended = text.rstrip().endswith((".", "!", "?", ")", '"'))
    return not ended and any(bound - 16 <= len(text) <= bound for bound in ANSWER_BOUNDS)


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc']) or 'output'}: {first['msg']}"
