"""The scenario format: the bundled set loads, the published schema is current, bad input names file/id/field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.errors import ValidationFailedError
from evals.scenario import CATEGORIES, SCHEMA_PATH, load_dataset, load_file, schema_text, select

GOOD = """
scenarios:
  - id: md-price
    category: market_data
    turns:
      - user: what is bitcoin trading at?
        calls: [{tool: get_ticker, args: {symbol: {symbol: BTC/USD}}}]
        answer: {facts: [{tool: get_ticker, path: last}]}
"""


def test_the_published_schema_is_generated_from_the_models() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), "run: python -m evals schema"
    schema = json.loads(schema_text())
    assert schema["title"] == "IQTS eval dataset" and "Scenario" in schema["$defs"]


def test_a_dataset_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "set.yaml"
    path.write_text(GOOD, encoding="utf-8")
    (scenario,) = load_file(path)
    assert scenario.id == "md-price" and scenario.turns[0].calls[0].tool == "get_ticker"
    assert scenario.setup.data == "bundled" and scenario.setup.kill_switch == "released"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (("category: market_data", "category: weather"), "category"),
        (("tool: get_ticker,", "tool: '',"), "turns.0.calls.0.tool"),
        (("{symbol: {symbol: BTC/USD}}", "{symbol: {symbol: BTC/USD, fuzzy: 1}}"), "turns.0.calls.0.args.symbol"),
        (("path: last}", "path: last, rel: -1}"), "turns.0.answer.facts.0.rel"),
    ],
)
def test_a_malformed_scenario_names_file_id_and_field(tmp_path: Path, change: tuple[str, str], field: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.replace(*change), encoding="utf-8")
    with pytest.raises(ValidationFailedError) as error:
        load_file(path)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: scenario md-price: {field}"), message


def test_broken_yaml_and_duplicate_ids_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "b.yaml").write_text(GOOD, encoding="utf-8")
    with pytest.raises(ValidationFailedError, match=r"b\.yaml: scenario md-price: id: already used in .*a\.yaml"):
        load_dataset(tmp_path)
    (tmp_path / "b.yaml").write_text("scenarios: [", encoding="utf-8")
    with pytest.raises(ValidationFailedError, match=r"b\.yaml: cannot read the dataset"):
        load_dataset(tmp_path)


def test_the_bundled_set_is_broad() -> None:
    scenarios = load_dataset()
    assert len(scenarios) >= 120
    for category in CATEGORIES:
        assert len(select(scenarios, category)) >= 8, category
    with pytest.raises(ValidationFailedError, match="--category"):
        select(scenarios, "weather")
