"""The scenario format: what a person says, what the agent must (and must not) do, and how each part is matched.

A dataset is a YAML file holding ``scenarios:`` (a list), or a folder of such files. Every scenario is validated
by the pydantic models below (the published JSON Schema, ``evals/schema/scenario.schema.json``, is generated from
them); a malformed one fails with one line naming the file, the scenario id and the field.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine.errors import ValidationFailedError

Category = Literal[
    "market_data",
    "backtests",
    "optimisation",
    "walk_forward",
    "comparisons",
    "indicators",
    "knowledge",
    "order_proposals",
    "cancels",
    "portfolio_risk",
    "no_tool",
    "missing_data",
    "refusals",
    "adversarial",
]
CATEGORIES: tuple[str, ...] = Category.__args__  # type: ignore[attr-defined]

Scalar = str | int | float | bool | None
Number = Annotated[Decimal, Field(description="a number (written as a YAML number or string)")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- argument matchers --------------------------------------------------------------------------------------------


class Exact(_Strict):
    """Equal after normalisation (strings compare case-insensitively, numbers as numbers)."""

    exact: Scalar | list[Scalar]


class OneOf(_Strict):
    """Any one of these values (each compared as ``exact``)."""

    one_of: list[Scalar] = Field(min_length=1)


class Approx(_Strict):
    """A number within ``abs`` or ``rel`` of ``number`` (both unset: equal)."""

    number: Number
    abs: Number | None = Field(None, ge=0)
    rel: Number | None = Field(None, ge=0, description="relative tolerance, 0.01 = 1 %")


class SymbolIs(_Strict):
    """The same market however written: BTC, bitcoin, btc/usdt, BTCUSD. ``strict_quote`` false (the default) takes
    the dollar quotes USD/USDT/USDC as one, and a base asset alone (BTC) as any of its dollar pairs."""

    symbol: str
    strict_quote: bool = False


class TimeframeIs(_Strict):
    """The same bar size however written: 1h, 60m, 1H, hourly; 1d, 24h, daily."""

    timeframe: str


class Contains(_Strict):
    """A string (or list of strings) containing this text, case-insensitively."""

    contains: str = Field(min_length=1)


class Present(_Strict):
    """The argument is given (any value)."""

    present: Literal[True]


class Absent(_Strict):
    """The argument is not given (or null): the user did not say it."""

    absent: Literal[True]


class Items(_Strict):
    """A list whose elements match these matchers, in any order (``exact_length`` to forbid extra elements)."""

    items: list[Matcher]
    exact_length: bool = False


Matcher = Exact | OneOf | Approx | SymbolIs | TimeframeIs | Contains | Present | Absent | Items
MatcherSpec = Matcher | Scalar
"""A matcher, or a plain value meaning ``exact``."""
Items.model_rebuild()


# -- what to expect -----------------------------------------------------------------------------------------------


class ExpectedCall(_Strict):
    """A tool call the turn must make, with the arguments that matter (dotted paths: ``order.symbol``); arguments
    not listed may take any value."""

    tool: str = Field(min_length=1)
    args: dict[str, MatcherSpec] = Field(default_factory=dict)
    any_of_tools: list[str] = Field(
        default_factory=list, description="other tools that also count (e.g. get_ohlcv for a price question)"
    )


class AnswerFact(_Strict):
    """A figure that must appear in the answer: the value at ``path`` of a result of ``tool`` in this run."""

    tool: str
    path: str = Field(min_length=1, description="dotted path into the tool's structured result: rows.-1.close")
    rel: Number = Field(Decimal("0.005"), ge=0, description="relative tolerance of the written figure")
    abs: Number | None = Field(None, ge=0)
    unit: str | None = Field(None, description="e.g. USD, %; shown in the report")
    scale: Number = Field(Decimal(1), description="multiply the value before matching (100: a fraction shown as %)")


class AnswerSpec(_Strict):
    """What the final answer must and must not say."""

    facts: list[AnswerFact] = Field(default_factory=list)
    contains_any: list[str] = Field(default_factory=list, description="at least one of these (case-insensitive)")
    not_contains: list[str] = Field(default_factory=list, description="none of these (case-insensitive)")
    refusal: bool = Field(False, description="the answer declines (or the agent's guard refused)")
    no_invented_figures: bool = Field(True, description="every figure comes from a tool result or the user")
    no_execution_claim: bool = Field(True, description="no claim that an order was executed when no fill exists")


class Turn(_Strict):
    """One user message and what the agent must do in reply."""

    user: str = Field(min_length=1)
    calls: list[ExpectedCall] = Field(default_factory=list, description="calls that must be made")
    ordered: bool = Field(False, description="the calls must be made in this order")
    forbid: list[str] = Field(default_factory=list, description="tools that must not be called in this turn")
    no_tools: bool = Field(False, description="the right behaviour is to call no tool at all")
    answer: AnswerSpec = Field(default_factory=AnswerSpec)

    @model_validator(mode="after")
    def _consistent(self) -> Turn:
        if self.no_tools and self.calls:
            raise ValueError("no_tools and calls contradict each other")
        return self


class Note(_Strict):
    title: str = Field(min_length=1)
    text: str = Field(min_length=1)
    tags: list[str] = Field(default_factory=list)


class Position(_Strict):
    """A position to hold before the scenario starts (bought through the real approval path on the paper venue)."""

    symbol: str = "BTC/USD"
    quantity: Number = Field(gt=0)
    price: Number = Field(gt=0)
    account: str = "paper"


class ToolInjection(_Strict):
    """Text appended to a tool's result by the rewriting proxy MCP server (the real server is untouched)."""

    tool: str
    text: str = Field(min_length=1)


class Setup(_Strict):
    """The world before the first turn."""

    data: Literal["bundled", "none"] = Field("bundled", description="the bundled BTC/ETH/LTC history, or no data")
    notes: list[Note] = Field(default_factory=list)
    positions: list[Position] = Field(default_factory=list)
    open_order: Position | None = Field(None, description="an open (unfilled) limit order to exist, for cancels")
    kill_switch: Literal["engaged", "released"] = "released"
    inject: ToolInjection | None = None
    backtests: list[dict[str, Any]] = Field(
        default_factory=list, description="run_backtest arguments to run before the scenario (stored runs)"
    )


class Injection(_Strict):
    """An injection attempt and how to see it obeyed: a canary word in any output, or a call to one of ``tools``."""

    where: Literal["user", "note", "tool_result"]
    canary: str | None = Field(None, min_length=4)
    tools: list[str] = Field(default_factory=list)


class EndState(_Strict):
    """What must hold when the last turn is over (counted from after the setup)."""

    approvals: int | None = Field(None, ge=0, description="approval requests created")
    max_approvals: int | None = Field(
        None, ge=0, description="at most this many may be created without counting as unrequested (either is right)"
    )
    orders: int | None = Field(None, ge=0, description="orders submitted to a venue")
    kill_switch: Literal["engaged", "released"] | None = None


class Scenario(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{1,63}$")
    category: Category
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    setup: Setup = Field(default_factory=Setup)
    turns: list[Turn] = Field(min_length=1)
    injection: Injection | None = None
    end_state: EndState = Field(default_factory=EndState)

    @property
    def proposes(self) -> bool:
        """Whether a proposal is the expected behaviour somewhere in the scenario."""
        return any(c.tool in PROPOSAL_TOOLS for t in self.turns for c in t.calls)


class Dataset(_Strict):
    scenarios: list[Scenario] = Field(min_length=1)


PROPOSAL_TOOLS = frozenset({"propose_order", "propose_cancel"})

DEFAULT_DATASET = Path(__file__).resolve().parent / "datasets"
SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "scenario.schema.json"


def render(scenario: Scenario, values: dict[str, str]) -> Scenario:
    """The scenario with ``{order_id}``-style placeholders filled by what the setup made."""
    if not values:
        return scenario
    text = scenario.model_dump_json()
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return Scenario.model_validate_json(text)


def json_schema() -> dict[str, Any]:
    """The published JSON Schema of a dataset file."""
    schema = Dataset.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "IQTS eval dataset"
    return schema


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def _where(error: ValidationError, raw: Any) -> tuple[str, str]:
    """(scenario id, field path) of the first error."""
    item = error.errors()[0]
    loc = list(item["loc"])
    scenario = "?"
    if len(loc) >= 2 and loc[0] == "scenarios" and isinstance(loc[1], int):
        try:
            scenario = str(raw["scenarios"][loc[1]].get("id") or f"#{loc[1] + 1}")
        except (KeyError, IndexError, TypeError, AttributeError):
            scenario = f"#{loc[1] + 1}"
        loc = loc[2:]
    # drop the union-branch names pydantic inserts (Exact, OneOf, ...), keep the path the author wrote
    field = ".".join(str(p) for p in loc if not (isinstance(p, str) and p[:1].isupper())) or "(scenario)"
    return scenario, f"{field}: {item['msg']}"


def load_file(path: Path) -> list[Scenario]:
    """One dataset file's scenarios; any problem is a ValidationFailedError naming file, scenario and field."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ValidationFailedError(f"{path}: cannot read the dataset{where}: {problem}") from None
    if isinstance(raw, list):
        raw = {"scenarios": raw}
    try:
        return Dataset.model_validate(raw).scenarios
    except ValidationError as error:
        scenario, detail = _where(error, raw)
        raise ValidationFailedError(f"{path}: scenario {scenario}: {detail}") from None


def load_dataset(path: Path | None = None) -> list[Scenario]:
    """A file, or every ``*.yaml`` in a folder (sorted); ids must be unique across the set."""
    target = path or DEFAULT_DATASET
    if target.is_dir():
        files = sorted(target.glob("*.yaml"))
        if not files:
            raise ValidationFailedError(f"{target}: no *.yaml dataset files")
    elif target.is_file():
        files = [target]
    else:
        raise ValidationFailedError(f"{target}: no such dataset file or folder")
    scenarios: list[Scenario] = []
    seen: dict[str, Path] = {}
    for file in files:
        for scenario in load_file(file):
            if scenario.id in seen:
                raise ValidationFailedError(f"{file}: scenario {scenario.id}: id: already used in {seen[scenario.id]}")
            seen[scenario.id] = file
            scenarios.append(scenario)
    return scenarios


def select(
    scenarios: list[Scenario],
    category: str | None = None,
    limit: int | None = None,
    ids: list[str] | None = None,
) -> list[Scenario]:
    if ids:
        known = {s.id for s in scenarios}
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise ValidationFailedError(f"--scenario: no scenario {', '.join(unknown)} in the dataset")
        scenarios = [s for s in scenarios if s.id in set(ids)]
    if category is not None:
        if category not in CATEGORIES:
            raise ValidationFailedError(f"--category {category!r}: expected one of {', '.join(CATEGORIES)}")
        scenarios = [s for s in scenarios if s.category == category]
    return scenarios[:limit] if limit else scenarios
