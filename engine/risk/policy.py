"""The risk policy: a small YAML language of limits, per account and per symbol, with defaults.

```yaml
version: 3                       # int or str; every verdict records it
defaults:                        # apply to every account and symbol unless overridden
  max_order_notional: 10000
  allowed_order_types: [market, limit]
  max_quote_age_seconds: {sandbox: 300, live: 120}   # per mode; a plain number limits every mode
accounts:
  main:
    max_order_notional: 50000    # account scope beats defaults
    symbols:
      BTC/USDT:
        max_position_qty: 0.5    # symbol scope beats account scope
```

Each limit is resolved on its own: symbol scope, then account scope, then defaults; an unset limit is not checked.
Notional limits are in the traded symbol's quote currency; equity, exposure and loss limits in the account's
valuation currency. ``allowed_symbols`` and the monitor's VaR settings exist at account and default scope only.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from engine.errors import ConfigError
from engine.execution.models import OrderType, canonical_decimal, is_symbol
from engine.risk.models import BreakerLimits, Scope, VarMethod
from engine.settings import TradingMode

if TYPE_CHECKING:
    from engine.risk.rules import CompiledRules

DEFAULT_POLICY_PATH: Final = Path(__file__).with_name("default_policy.yaml")

MINUTES_PER_HOUR: Final = 60
MINUTES_PER_DAY: Final = 24 * MINUTES_PER_HOUR
WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW_RE: Final = re.compile(
    r"^\s*(?:(?P<days>[A-Za-z,\-\s]+?)\s+)?(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$"
)


def _minute_of_day(text: str, *, allow_end_of_day: bool) -> int:
    hours, minutes = (int(part) for part in text.split(":"))
    if minutes >= MINUTES_PER_HOUR:
        raise ValueError(f"bad time {text}: minutes must be below 60")
    total = hours * MINUTES_PER_HOUR + minutes
    if total > MINUTES_PER_DAY or (total == MINUTES_PER_DAY and not allow_end_of_day):
        raise ValueError(f"bad time {text}: must be 00:00..23:59 (24:00 only as an end)")
    return total


def _parse_days(text: str) -> tuple[int, ...]:
    days: set[int] = set()
    for part in text.replace(" ", "").lower().split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            raise ValueError(f"bad weekday in {part!r}: use {', '.join(WEEKDAYS)} or a range like mon-fri")
        start = WEEKDAYS.index(first)
        stop = WEEKDAYS.index(last) if last else start
        span = (stop - start) % len(WEEKDAYS)
        days.update((start + i) % len(WEEKDAYS) for i in range(span + 1))
    if not days:
        raise ValueError("no weekdays given")
    return tuple(sorted(days))


def _days_text(days: tuple[int, ...]) -> str:
    """Sorted weekday numbers as text, runs of three or more as ranges: ``mon-fri``, ``sat,sun``."""
    runs: list[list[int]] = []
    for day in days:
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts: list[str] = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{WEEKDAYS[run[0]]}-{WEEKDAYS[run[-1]]}")
        else:
            parts.extend(WEEKDAYS[d] for d in run)
    return ",".join(parts)


class TradingWindow(BaseModel):
    """A UTC time window, optionally on some weekdays, written ``"08:00-17:00"`` or ``"mon-fri 08:00-17:00"``.

    A window whose end is not after its start runs past midnight (``"22:00-02:00"``); its weekdays name the day it
    starts on. ``24:00`` is allowed as an end.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    days: tuple[int, ...] = Field(description="0 = Monday .. 6 = Sunday")
    start_minute: int = Field(ge=0, lt=MINUTES_PER_DAY)
    end_minute: int = Field(ge=0, le=MINUTES_PER_DAY)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        match = _WINDOW_RE.match(value)
        if match is None:
            raise ValueError(f"bad trading window {value!r}: write 'HH:MM-HH:MM' or 'mon-fri HH:MM-HH:MM' (UTC)")
        start = _minute_of_day(match["start"], allow_end_of_day=False)
        end = _minute_of_day(match["end"], allow_end_of_day=True)
        if start == end:
            raise ValueError(f"bad trading window {value!r}: empty (for a whole day write 00:00-24:00)")
        days = _parse_days(match["days"]) if match["days"] else tuple(range(len(WEEKDAYS)))
        return {"days": days, "start_minute": start, "end_minute": end}

    @field_validator("days")
    @classmethod
    def _valid_days(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(d < 0 or d >= len(WEEKDAYS) for d in value):
            raise ValueError("days must be weekday numbers 0 (Monday) .. 6 (Sunday)")
        return tuple(sorted(set(value)))

    @property
    def text(self) -> str:
        def hhmm(minute: int) -> str:
            return f"{minute // MINUTES_PER_HOUR:02d}:{minute % MINUTES_PER_HOUR:02d}"

        span = f"{hhmm(self.start_minute)}-{hhmm(self.end_minute)}"
        if len(self.days) == len(WEEKDAYS):
            return span
        return f"{_days_text(self.days)} {span}"

    @model_serializer
    def _to_text(self) -> str:
        return self.text

    def contains(self, ts: datetime) -> bool:
        """Whether the UTC instant ``ts`` (timezone-aware) falls inside the window."""
        minute = ts.hour * MINUTES_PER_HOUR + ts.minute
        weekday = ts.weekday()
        if self.start_minute < self.end_minute:
            return weekday in self.days and self.start_minute <= minute < self.end_minute
        if minute >= self.start_minute:
            return weekday in self.days
        return minute < self.end_minute and (weekday - 1) % len(WEEKDAYS) in self.days


PositiveSeconds = Annotated[float, Field(gt=0)]
QuoteAgeLimit = PositiveSeconds | dict[TradingMode, PositiveSeconds]
"""``max_quote_age_seconds``: a number (every mode) or a mapping from trading mode to seconds."""


class SymbolLimits(BaseModel):
    """Limits that may be set at every scope (symbol, account, default). Unset means not checked."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    allowed_modes: tuple[TradingMode, ...] | None = None
    allowed_order_types: tuple[OrderType, ...] | None = None
    trading_windows: tuple[TradingWindow, ...] | None = Field(
        default=None, description="UTC windows an order may be placed in; an empty list allows none"
    )
    max_quote_age_seconds: QuoteAgeLimit | None = Field(
        default=None,
        description="seconds a last price may be old: one number for every mode, or per mode "
        "({sandbox: 300, live: 120}: modes not named are not limited, and say the quote's age)",
    )
    price_collar_pct: Decimal | None = Field(default=None, gt=0, description="limit price within N% of last")
    max_order_qty: Decimal | None = Field(default=None, gt=0)
    min_order_notional: Decimal | None = Field(default=None, ge=0)
    max_order_notional: Decimal | None = Field(default=None, ge=0)
    max_position_qty: Decimal | None = Field(default=None, ge=0)
    max_position_notional: Decimal | None = Field(default=None, ge=0)
    allow_short: bool | None = None
    max_open_positions: int | None = Field(default=None, ge=0)
    max_gross_exposure: Decimal | None = Field(default=None, ge=0)
    max_leverage: Decimal | None = Field(default=None, gt=0)
    max_orders_per_minute: int | None = Field(default=None, ge=0)
    max_daily_loss: Decimal | None = Field(default=None, ge=0)
    max_drawdown: Decimal | None = Field(default=None, gt=0, le=1, description="fraction below peak equity")


class Limits(SymbolLimits):
    """Limits at account or default scope: the symbol-scope ones, the symbol allow-list and the monitor's VaR."""

    allowed_symbols: tuple[str, ...] | None = Field(default=None, description="omit to allow every symbol")
    max_var: Decimal | None = Field(default=None, gt=0, description="monitor only: VaR as a fraction of equity")
    var_confidence: float | None = Field(default=None, gt=0, lt=1)
    var_method: VarMethod | None = None

    @field_validator("allowed_symbols")
    @classmethod
    def _symbols(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for symbol in value or ():
            if not is_symbol(symbol):
                raise ValueError(f"{symbol!r} is not a ccxt unified symbol like BTC/USDT")
        return value


class AccountPolicy(Limits):
    """One account's limits and its per-symbol overrides."""

    symbols: dict[str, SymbolLimits] = Field(default_factory=dict)

    @field_validator("symbols")
    @classmethod
    def _symbol_keys(cls, value: dict[str, SymbolLimits]) -> dict[str, SymbolLimits]:
        for symbol in value:
            if not is_symbol(symbol):
                raise ValueError(f"{symbol!r} is not a ccxt unified symbol like BTC/USDT")
        return value


SYMBOL_SCOPE_KEYS: Final = tuple(SymbolLimits.model_fields)
ACCOUNT_SCOPE_KEYS: Final = tuple(AccountPolicy.model_fields)


class ResolvedLimit(BaseModel):
    """The value a limit takes for one (account, symbol), and the scope it came from."""

    model_config = ConfigDict(frozen=True)

    value: Any
    scope: Scope


class RiskPolicy(BaseModel):
    """A versioned risk policy. Build it with :meth:`from_yaml`, :meth:`from_file` or :func:`load_default_policy`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int | str
    description: str | None = None
    defaults: Limits = Field(default_factory=Limits)
    accounts: dict[str, AccountPolicy] = Field(default_factory=dict)

    _compiled: dict[tuple[str, str], CompiledRules] = PrivateAttr(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        """Equal when the policies say the same (the compiled-rules cache does not count)."""
        if not isinstance(other, RiskPolicy):
            return NotImplemented
        return self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash(self.model_dump_json())

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | str | date):
            raise ValueError("version must be an integer or a string")
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, str) and not value.strip():
            raise ValueError("version must not be empty")
        return value

    @field_validator("accounts")
    @classmethod
    def _account_names(cls, value: dict[str, AccountPolicy]) -> dict[str, AccountPolicy]:
        for name in value:
            if not name or name != name.strip():
                raise ValueError(f"bad account name {name!r}")
        return value

    # ---- loading ----------------------------------------------------------------------------------------------

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "risk policy") -> RiskPolicy:
        """Parse and validate a policy; raises ConfigError naming the line or the key path of each problem."""
        try:
            data = yaml.load(text, Loader=_DecimalSafeLoader)  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(error, "problem", None) or str(error)
            raise ConfigError(f"{source}: invalid YAML{where}: {problem}") from None
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: expected a mapping with version, defaults and accounts at the top")
        return cls.from_dict(data, source=source)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "risk policy") -> RiskPolicy:
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise ConfigError(f"{source}: {describe_policy_errors(error)}") from None

    @classmethod
    def from_file(cls, path: Path | str) -> RiskPolicy:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"cannot read risk policy {path}: {error.strerror or error}") from None
        return cls.from_yaml(text, source=str(path))

    def to_yaml(self) -> str:
        """The policy as YAML that :meth:`from_yaml` reads back to an equal policy (amounts exactly)."""
        data = _plain(self.model_dump(exclude_none=True, exclude_defaults=True))
        data["version"] = self.version
        return yaml.dump(data, Dumper=_DecimalSafeDumper, sort_keys=False, allow_unicode=True)

    # ---- resolution -------------------------------------------------------------------------------------------

    def resolve(self, account: str, symbol: str) -> dict[str, ResolvedLimit]:
        """Every limit that applies to ``symbol`` in ``account``, with the scope each came from."""
        account_policy = self.accounts.get(account)
        symbol_limits = account_policy.symbols.get(symbol) if account_policy is not None else None
        resolved: dict[str, ResolvedLimit] = {}
        for key in ACCOUNT_SCOPE_KEYS:
            if key == "symbols":
                continue
            for scope, limits in (
                (Scope.SYMBOL, symbol_limits),
                (Scope.ACCOUNT, account_policy),
                (Scope.DEFAULT, self.defaults),
            ):
                value = getattr(limits, key, None) if limits is not None else None
                if value is not None:
                    resolved[key] = ResolvedLimit(value=value, scope=scope)
                    break
        return resolved

    def breaker_limits(self, account: str) -> BreakerLimits:
        """The monitor's circuit-breaker limits for ``account`` (account scope, then defaults)."""
        account_policy = self.accounts.get(account)

        def pick(key: str) -> Any:
            if account_policy is not None and getattr(account_policy, key) is not None:
                return getattr(account_policy, key)
            return getattr(self.defaults, key)

        values = {
            key: pick(key) for key in ("max_daily_loss", "max_drawdown", "max_var", "var_confidence", "var_method")
        }
        return BreakerLimits(**{k: v for k, v in values.items() if v is not None})

    def compiled(self, account: str, symbol: str) -> CompiledRules:
        """The rules for (account, symbol), compiled once and cached on this policy."""
        key = (account, symbol)
        # straight to pydantic's private storage: attribute access to a private attribute costs microseconds
        private = self.__pydantic_private__
        cache: dict[tuple[str, str], CompiledRules] = private["_compiled"] if private else self._compiled
        rules = cache.get(key)
        if rules is None:
            from engine.risk.rules import compile_rules

            rules = compile_rules(self, account, symbol)
            cache[key] = rules
        return rules


def load_default_policy() -> RiskPolicy:
    """The bundled conservative policy for dry-run trading (``engine/risk/default_policy.yaml``)."""
    return RiskPolicy.from_file(DEFAULT_POLICY_PATH)


# ---- YAML with exact decimals ---------------------------------------------------------------------------------


_MERGE_TAG: Final = "tag:yaml.org,2002:merge"


class _DecimalSafeLoader(yaml.SafeLoader):
    """A SafeLoader that reads floats as Decimal (``0.1`` is exactly 0.1) and refuses duplicate keys (plain YAML
    keeps the last one silently: a second ``max_order_notional`` or a second block for an account would win)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:  # "<<: *defaults" merges are YAML's own way to override: allowed
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal | float:
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        return loader.construct_yaml_float(node)  # .inf, .nan: rejected later as non-finite
    return value if value.is_finite() else loader.construct_yaml_float(node)


_DecimalSafeLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)


class _DecimalSafeDumper(yaml.SafeDumper):
    """A SafeDumper that writes Decimal as a plain number (``0.05``, not a string)."""


def _represent_decimal(dumper: yaml.SafeDumper, value: Decimal) -> yaml.ScalarNode:
    text = canonical_decimal(value)
    if "." not in text:
        return dumper.represent_int(int(text))
    return dumper.represent_scalar("tag:yaml.org,2002:float", text)


_DecimalSafeDumper.add_representer(Decimal, _represent_decimal)


def _plain(value: Any) -> Any:
    """Model dump (python mode) to YAML-safe values: enums to their values, tuples to lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    return value


# ---- error messages -------------------------------------------------------------------------------------------

_DEFAULT_SCOPE_KEYS: Final = tuple(Limits.model_fields)
_KNOWN_KEYS: Final = (*ACCOUNT_SCOPE_KEYS, *RiskPolicy.model_fields)
_MESSAGES: Final = {
    "missing": "required key is missing",
    "model_type": "expected a mapping of keys and values",
    "model_attributes_type": "expected a mapping of keys and values",
    "dict_type": "expected a mapping",
}


def _scopes_of(key: str) -> str:
    scopes = []
    if key in SYMBOL_SCOPE_KEYS:
        scopes.append("symbol")
    if key in ACCOUNT_SCOPE_KEYS:
        scopes.append("account")
    if key in _DEFAULT_SCOPE_KEYS:
        scopes.append("default")
    return " and ".join(scopes)


def describe_policy_errors(error: ValidationError) -> str:
    """One line per problem, each naming its key path (``accounts.main.symbols.BTC/USDT.max_qty: unknown key``)."""
    lines: list[str] = []
    seen: set[str] = set()
    for item in error.errors():
        parts = [str(p) for p in item["loc"]]
        path = ".".join(parts) or "(top level)"
        if path in seen:
            continue
        seen.add(path)
        if item["type"] == "extra_forbidden":
            key = parts[-1] if parts else ""
            if key in ACCOUNT_SCOPE_KEYS:
                hint = f" here (allowed at {_scopes_of(key)} scope only)"
            else:
                close = difflib.get_close_matches(key, _KNOWN_KEYS, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
            message = f"unknown key{hint}"
        else:
            message = _MESSAGES.get(item["type"]) or str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"{path}: {message}")
    return "; ".join(lines)
