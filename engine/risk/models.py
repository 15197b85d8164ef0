"""Inputs and outputs of the pre-trade check: market snapshot, trading controls, rule results, verdict."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, field_validator
from pydantic_core import CoreSchema, core_schema
from typing_extensions import TypedDict

from engine.data.quote import Quote

BreakerName = Literal["max_daily_loss", "max_drawdown", "max_var"]
LimitValue = Decimal | int | float | bool | str | tuple[str, ...]


class Scope(StrEnum):
    """Where the limit behind a rule result came from (resolution: symbol, then account, then default)."""

    SYMBOL = "symbol"
    ACCOUNT = "account"
    DEFAULT = "default"
    SYSTEM = "system"
    """Not a policy limit: the kill switch and the circuit breakers."""


class MarketSnapshot(BaseModel):
    """What the market looks like to a check: last prices (and their times) by ccxt symbol, and fx rates.

    ``quotes`` holds the full :class:`~engine.data.quote.Quote` behind each price when it came from the
    market-data provider (series, age, replayed): build it with :meth:`from_quotes`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    last_prices: dict[str, Decimal] = Field(default_factory=dict)
    price_times: dict[str, datetime] = Field(
        default_factory=dict, description="when each last price was observed (for max_quote_age_seconds)"
    )
    fx_rates: dict[str, Decimal] = Field(
        default_factory=dict, description='explicit conversion rates by pair, e.g. {"USD/USDT": 1}'
    )
    quotes: dict[str, Quote] = Field(default_factory=dict, description="where each last price came from")

    @classmethod
    def from_quotes(cls, quotes: dict[str, Quote], fx_rates: dict[str, Decimal] | None = None) -> MarketSnapshot:
        """Prices, their times and their quotes, keyed by the symbol each was asked for."""
        return cls(
            last_prices={s: q.price for s, q in quotes.items()},
            price_times={s: q.ts for s, q in quotes.items()},
            fx_rates=dict(fx_rates or {}),
            quotes=dict(quotes),
        )

    @field_validator("last_prices", "fx_rates")
    @classmethod
    def _positive(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for key, price in value.items():
            if price <= 0:
                raise ValueError(f"{key}: price must be positive, got {price}")
        return value

    @field_validator("price_times")
    @classmethod
    def _aware(cls, value: dict[str, datetime]) -> dict[str, datetime]:
        for key, ts in value.items():
            if ts.tzinfo is None or ts.utcoffset() is None:
                raise ValueError(f"{key}: price time must be timezone-aware (UTC)")
        return value


class BreakerTrip(BaseModel):
    """A circuit breaker the monitor tripped: orders that do not reduce a position are blocked until reset."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    breaker: BreakerName
    account: str | None = Field(description="the account it applies to; None trips every account")
    reason: str
    limit: Decimal
    observed: Decimal
    tripped_at: datetime


class TradingControls(BaseModel):
    """The switches a check must honour besides the policy. Callers pass it explicitly on every check."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kill_switch_engaged: bool
    kill_switch_reason: str | None = None
    breakers: tuple[BreakerTrip, ...] = ()


class _RuleResultFields(TypedDict):
    rule: str
    passed: bool
    reason: str
    limit: LimitValue | None
    observed: LimitValue | None
    scope: Scope


class RuleResult(NamedTuple):
    """One rule's outcome: its name, whether it passed, a sentence for a person, the limit and what was seen.

    A named tuple, because a check builds twenty of them in microseconds; to pydantic (verdicts, JSON, schemas)
    it is an object with these six fields.
    """

    rule: str
    passed: bool
    reason: str
    limit: LimitValue | None
    observed: LimitValue | None
    scope: Scope

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        fields = handler.generate_schema(_RuleResultFields)
        from_fields = core_schema.no_info_after_validator_function(lambda data: cls(**data), fields)
        return core_schema.json_or_python_schema(
            json_schema=from_fields,
            python_schema=core_schema.union_schema([core_schema.is_instance_schema(cls), from_fields]),
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda result: result._asdict(), return_schema=fields
            ),
        )


class Verdict(BaseModel):
    """The outcome of a pre-trade check: allowed only if every rule passed. Records the policy version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    allowed: bool
    policy_version: int | str
    account: str
    symbol: str
    checked_at: datetime
    results: tuple[RuleResult, ...]
    notes: tuple[str, ...] = Field(
        default=(), description="what the approver should know beyond the rules (e.g. a replayed price)"
    )

    @classmethod
    def trusted(
        cls,
        *,
        allowed: bool,
        policy_version: int | str,
        account: str,
        symbol: str,
        checked_at: datetime,
        results: tuple[RuleResult, ...],
        notes: tuple[str, ...] = (),
    ) -> Verdict:
        """Build a verdict from values the check made itself, without re-validating them.

        The same as ``model_construct`` with every field given, at a fraction of its cost (the check's budget is
        tens of microseconds); a unit test holds it equal to a validated verdict.
        """
        verdict = cls.__new__(cls)
        object.__setattr__(
            verdict,
            "__dict__",
            {
                "allowed": allowed,
                "policy_version": policy_version,
                "account": account,
                "symbol": symbol,
                "checked_at": checked_at,
                "results": results,
                "notes": notes,
            },
        )
        object.__setattr__(verdict, "__pydantic_fields_set__", set(_VERDICT_FIELDS))
        object.__setattr__(verdict, "__pydantic_extra__", None)
        object.__setattr__(verdict, "__pydantic_private__", None)
        return verdict

    @property
    def failures(self) -> tuple[RuleResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    @property
    def failed_rules(self) -> tuple[str, ...]:
        return tuple(r.rule for r in self.results if not r.passed)

    def summary(self) -> str:
        """One line: 'allowed (20 rules passed, policy 3)' or the reasons of every failed rule, then the notes."""
        noted = "".join(f"; note: {note}" for note in self.notes)
        if self.allowed:
            return f"allowed ({len(self.results)} rules passed, policy {self.policy_version}){noted}"
        reasons = "; ".join(r.reason for r in self.results if not r.passed)
        return f"rejected by policy {self.policy_version}: {reasons}{noted}"


_VERDICT_FIELDS: Final = frozenset(Verdict.model_fields)

VarMethod = Literal["historical", "parametric"]
DEFAULT_VAR_CONFIDENCE = 0.99
"""Confidence level of the VaR breaker when the policy names a max_var but no var_confidence."""


class BreakerLimits(BaseModel):
    """The limits the risk monitor trips circuit breakers on, for one account (resolved account > defaults)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_daily_loss: Decimal | None = Field(default=None, ge=0, description="valuation currency")
    max_drawdown: Decimal | None = Field(default=None, gt=0, le=1, description="fraction below peak equity")
    max_var: Decimal | None = Field(default=None, gt=0, description="one-period VaR, fraction of equity")
    var_confidence: float = Field(default=DEFAULT_VAR_CONFIDENCE, gt=0, lt=1)
    var_method: VarMethod = "historical"
