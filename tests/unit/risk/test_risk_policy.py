"""The policy language: loading, clear errors naming the key path, resolution by scope, the default policy."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.execution.models import OrderType
from engine.risk import DEFAULT_POLICY_PATH, RiskPolicy, Scope, TradingWindow, load_default_policy

from .stubs import NOW

POLICY = """
version: 3
defaults:
  max_order_notional: 10000
  max_order_qty: 5
  price_collar_pct: 2.5
  allowed_order_types: [market, limit]
  max_drawdown: 0.2
  max_var: 0.04
accounts:
  main:
    max_order_notional: 50000
    max_drawdown: 0.1
    symbols:
      BTC/USDT:
        max_order_notional: 75000
        max_position_qty: 0.5
  hedge:
    allowed_symbols: [ETH/USDT]
"""


def test_limits_resolve_symbol_then_account_then_defaults() -> None:
    policy = RiskPolicy.from_yaml(POLICY)
    btc = policy.resolve("main", "BTC/USDT")
    assert (btc["max_order_notional"].value, btc["max_order_notional"].scope) == (Decimal(75000), Scope.SYMBOL)
    assert (btc["max_position_qty"].value, btc["max_position_qty"].scope) == (Decimal("0.5"), Scope.SYMBOL)
    assert (btc["max_drawdown"].value, btc["max_drawdown"].scope) == (Decimal("0.1"), Scope.ACCOUNT)
    assert (btc["max_order_qty"].value, btc["max_order_qty"].scope) == (Decimal(5), Scope.DEFAULT)
    eth = policy.resolve("main", "ETH/USDT")
    assert (eth["max_order_notional"].value, eth["max_order_notional"].scope) == (Decimal(50000), Scope.ACCOUNT)
    assert "max_position_qty" not in eth
    unknown = policy.resolve("someone", "BTC/USDT")
    assert (unknown["max_order_notional"].value, unknown["max_order_notional"].scope) == (Decimal(10000), Scope.DEFAULT)
    assert "allowed_symbols" not in unknown
    assert policy.resolve("hedge", "BTC/USDT")["allowed_symbols"].value == ("ETH/USDT",)


def test_numbers_are_read_exactly_as_decimals() -> None:
    policy = RiskPolicy.from_yaml(POLICY)
    assert policy.defaults.price_collar_pct == Decimal("2.5")
    assert policy.accounts["main"].symbols["BTC/USDT"].max_position_qty == Decimal("0.5")
    tiny = RiskPolicy.from_yaml("version: 1\ndefaults:\n  max_order_qty: 0.1\n")
    assert tiny.defaults.max_order_qty == Decimal("0.1")  # not 0.1000000000000000055511151231257827
    assert policy.defaults.allowed_order_types == (OrderType.MARKET, OrderType.LIMIT)


def test_breaker_limits_resolve_account_then_defaults() -> None:
    policy = RiskPolicy.from_yaml(POLICY)
    main = policy.breaker_limits("main")
    assert main.max_drawdown == Decimal("0.1")
    assert main.max_var == Decimal("0.04")
    assert main.var_confidence == 0.99  # the default confidence
    assert main.max_daily_loss is None
    assert policy.breaker_limits("nobody").max_drawdown == Decimal("0.2")


def test_yaml_round_trip_keeps_the_policy() -> None:
    policy = RiskPolicy.from_yaml(POLICY)
    again = RiskPolicy.from_yaml(policy.to_yaml())
    assert again == policy
    assert hash(again) == hash(policy)


def test_version_may_be_a_string_or_a_date() -> None:
    assert RiskPolicy.from_yaml("version: 2024-05-01-a\n").version == "2024-05-01-a"
    assert RiskPolicy.from_yaml("version: 2024-05-01\n").version == "2024-05-01"
    assert RiskPolicy.from_yaml("version: 12\n").version == 12


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "version: 1\ndefaults:\n  max_order_notional: [1, 2\n",
            "risk policy: invalid YAML at line 4, column 1: expected ',' or ']', but got '<stream end>'",
        ),
        (
            "version: 1\naccounts:\n  main: {max_order_qty: 5}\n  main: {max_order_qty: 1}\n",
            "risk policy: invalid YAML at line 4, column 3: duplicate key 'main'",
        ),
        ("- a\n- b\n", "risk policy: expected a mapping with version, defaults and accounts at the top"),
        ("defaults: {}\n", "risk policy: version: required key is missing"),
        ("version: 1\ndefault: {}\n", "risk policy: default: unknown key (did you mean defaults?)"),
        (
            "version: 1\naccounts:\n  main:\n    symbols:\n      BTC/USDT:\n        max_qty: 1\n",
            "risk policy: accounts.main.symbols.BTC/USDT.max_qty: unknown key (did you mean max_order_qty?)",
        ),
        (
            "version: 1\naccounts:\n  main:\n    symbols:\n      BTC/USDT:\n        allowed_symbols: [BTC/USDT]\n",
            "risk policy: accounts.main.symbols.BTC/USDT.allowed_symbols: unknown key here "
            "(allowed at account and default scope only)",
        ),
        (
            "version: 1\ndefaults:\n  symbols: {}\n",
            "risk policy: defaults.symbols: unknown key here (allowed at account scope only)",
        ),
        (
            "version: 1\naccounts:\n  main:\n    max_order_notional: lots\n",
            "risk policy: accounts.main.max_order_notional: Input should be a valid decimal",
        ),
        (
            "version: 1\ndefaults:\n  max_order_notional: -5\n",
            "risk policy: defaults.max_order_notional: Input should be greater than or equal to 0",
        ),
        (
            "version: 1\ndefaults:\n  max_drawdown: 1.5\n",
            "risk policy: defaults.max_drawdown: Input should be less than or equal to 1",
        ),
        (
            "version: 1\ndefaults:\n  allowed_order_types: [market, iceberg]\n",
            "risk policy: defaults.allowed_order_types.1: Input should be 'market', 'limit', 'stop' or 'stop_limit'",
        ),
        (
            "version: 1\ndefaults:\n  trading_windows: ['mon-fry 08:00-09:00']\n",
            "risk policy: defaults.trading_windows.0: bad weekday in 'mon-fry': use mon, tue, wed, thu, fri, sat, "
            "sun or a range like mon-fri",
        ),
        (
            "version: 1\naccounts:\n  main:\n    symbols:\n      BTCUSDT: {}\n",
            "risk policy: accounts.main.symbols: 'BTCUSDT' is not a ccxt unified symbol like BTC/USDT",
        ),
        ("version: true\n", "risk policy: version: version must be an integer or a string"),
        (
            "version: 1\ndefaults:\n  max_order_notional: .inf\n",
            "risk policy: defaults.max_order_notional: Input should be a finite number",
        ),
        ("version: 1\naccounts:\n  main:\n", "risk policy: accounts.main: expected a mapping of keys and values"),
    ],
)
def test_bad_policies_are_named_by_line_or_key_path(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        RiskPolicy.from_yaml(text)
    assert str(raised.value) == message


def test_yaml_merge_keys_may_override() -> None:
    text = "version: 1\nshared: &base {max_order_qty: 1}\n"
    with pytest.raises(ConfigError, match="shared: unknown key"):
        RiskPolicy.from_yaml(text)
    merged = RiskPolicy.from_yaml("version: 1\ndefaults: {<<: {max_order_qty: 1, max_leverage: 2}, max_order_qty: 3}\n")
    assert (merged.defaults.max_order_qty, merged.defaults.max_leverage) == (Decimal(3), Decimal(2))


def test_every_problem_is_reported_at_once() -> None:
    text = "version: 1\ndefaults:\n  max_order_qty: -1\n  max_leverage: 0\n  colour: red\n"
    with pytest.raises(ConfigError) as raised:
        RiskPolicy.from_yaml(text)
    message = str(raised.value)
    for path in ("defaults.max_order_qty", "defaults.max_leverage", "defaults.colour: unknown key"):
        assert path in message


def test_from_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "risk.yaml"
    path.write_text("version: 1\ndefaults:\n  max_orders: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"risk\.yaml: defaults\.max_orders: unknown key"):
        RiskPolicy.from_file(path)
    with pytest.raises(ConfigError, match="cannot read risk policy"):
        RiskPolicy.from_file(tmp_path / "missing.yaml")


# ---- trading windows -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("08:00-17:00", "08:00-17:00"),
        ("mon-fri 08:00-17:00", "mon-fri 08:00-17:00"),
        ("Sat,Sun 10:00-12:30", "sat,sun 10:00-12:30"),
        ("fri-mon 22:00-02:00", "mon,fri-sun 22:00-02:00"),
        ("mon,wed 00:00-24:00", "mon,wed 00:00-24:00"),
    ],
)
def test_trading_windows_parse_and_print(text: str, canonical: str) -> None:
    window = TradingWindow.model_validate(text)
    assert window.text == canonical
    assert TradingWindow.model_validate(window.model_dump()) == window


@pytest.mark.parametrize(
    "text", ["25:00-26:00", "08:00-08:00", "08:60-09:00", "24:00-01:00", "sometime", "xyz 08:00-09:00"]
)
def test_bad_trading_windows_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="bad"):
        TradingWindow.model_validate(text)


def test_trading_window_membership() -> None:
    window = TradingWindow.model_validate("wed 11:00-12:00")
    assert window.contains(NOW.replace(hour=11, minute=59))
    assert not window.contains(NOW)  # 12:00 is the (exclusive) end


# ---- the default policy --------------------------------------------------------------------------------------


def test_the_default_policy_is_conservative_and_dry_run_only() -> None:
    policy = load_default_policy()
    assert DEFAULT_POLICY_PATH.name == "default_policy.yaml"
    limits = policy.resolve("paper", "BTC/USDT")
    assert limits["allowed_modes"].value == ("dry-run", "sandbox")
    assert set(limits["allowed_symbols"].value) == {"BTC/USDT", "ETH/USDT", "BTC/USD", "ETH/USD"}
    assert OrderType.STOP not in limits["allowed_order_types"].value
    assert limits["max_leverage"].value == Decimal(1)
    assert limits["allow_short"].value is False
    for key in ("max_order_notional", "max_position_notional", "max_daily_loss", "max_drawdown", "price_collar_pct"):
        assert key in limits
    assert policy.breaker_limits("paper").max_var is not None
